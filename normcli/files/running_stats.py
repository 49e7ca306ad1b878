"""Each framework's stored batch-norm statistics as ``.npz`` files.

The arrays carry the framework's own names (``running_mean``/``running_var``/
``num_batches_tracked`` for PyTorch, ``moving_mean``/``moving_variance`` for
Keras, ``mean_sum``/``var_sum``/``scale_factor`` for Caffe's three blobs, ...;
see :data:`normcli.ops.bn_conventions.BN_CONVENTIONS`), so that a state dict
exported with ``numpy.savez`` reads as it is.  Files normcli writes also hold
``convention`` and ``per``.

Reading goes through :func:`normcli.files.npz.read_npz_member` (no pickles,
sizes checked before anything is decompressed); every problem is an
:class:`~normcli.errors.InputError` naming the file.  Writing is atomic.
"""

from __future__ import annotations

import os

from normcli.errors import InputError, ParameterError
from normcli.files.atomic import atomic_write
from normcli.files.npz import npz_members, read_npz_member, write_npz
from normcli.ops.bn_conventions import BN_CONVENTIONS, RunningState, get_bn_convention

__all__ = ["read_running_stats", "write_running_stats"]

#: Stored statistics are small: a member over this many bytes is refused.
MAX_STATS_BYTES = 256 * 1024**2

_KNOWN = {"convention", "per"} | {k for c in BN_CONVENTIONS.values() for k in c.keys if k}


def read_running_stats(path: str | os.PathLike[str], convention: str | None = None, *,
                       per: str | None = None, max_bytes: int | None = None) -> RunningState:
    """Read a framework's stored statistics from ``path`` (an ``.npz``).

    Parameters
    ----------
    path : path-like
    convention : str, optional
        The framework that stored them (case-insensitive); may be left out
        for files that name it (``convention`` member).
    per : {"activation", "channel"}, optional
        Default: the file's ``per``, else 1-D statistics are per channel.
    max_bytes : int, optional
        Size limit per array (default 256 MiB).

    Raises
    ------
    InputError
        Not an ``.npz``, a missing or malformed array, shapes that differ,
        NaN, negative variances, or another framework's statistics.
    ParameterError
        An unknown convention name.
    """
    if convention is not None:
        get_bn_convention(convention)  # a bad name is the caller's error, not the file's
    limit = MAX_STATS_BYTES if max_bytes is None else max_bytes
    names = npz_members(path, source=path)
    data = {name: read_npz_member(path, name, max_bytes=limit, source=f"{path}:{name}",
                                  metadata=True)
            for name in names if name in _KNOWN}
    try:
        return RunningState.from_mapping(data, convention, per=per)
    except (ValueError, ParameterError) as e:
        raise InputError(path, f"not usable batch-norm statistics: {e}") from None


def write_running_stats(path: str | os.PathLike[str], state: RunningState, *,
                        force: bool = False) -> None:
    """Write ``state`` to ``path`` by its framework's names, atomically.

    Raises :class:`~normcli.errors.OutputError` (exists without ``force``,
    disk full, ...), leaving no partial file.
    """
    arrays = state.to_mapping()
    with atomic_write(path, force=force) as f:
        write_npz(f, arrays)
