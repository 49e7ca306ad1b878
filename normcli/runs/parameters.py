"""Parameters that come from files: ``gamma``/``beta`` arrays and saved statistics.

Read with the same checks as any input; an error about such a parameter names
its file (the numeric core says which parameter, ``ParameterError.param``).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from normcli.errors import InputError, ParameterError
from normcli.files import npz_members, read_npy, read_npz_member
from normcli.ops.batchnorm import BNParams, bn_params
from normcli.ops.moments import BatchStats

__all__ = [
    "is_path", "read_stats_file", "batchnorm_settings", "read_parameter_files",
    "with_saved_stats", "blame", "describe",
]

#: The fields of a saved-statistics file (``save_stats``) that are read back.
STATS_FIELDS = ("mean", "var", "var_unbiased", "count", "per")


def is_path(value: object) -> bool:
    """Whether a parameter's value names a file rather than holding numbers."""
    return isinstance(value, (str, os.PathLike))


def read_stats_file(path: str | os.PathLike[str], convention: str | None = None,
                    per: str | None = None) -> BatchStats:
    """Saved statistics, checked like any input: ``save_stats``'s ``.npz``, or a
    framework's stored running statistics (``convention`` given, or a file
    ``update_stats`` wrote, which names its convention; a ``save_stats`` file is
    read as such whatever the convention): then the mean and variance the
    framework normalizes with in inference
    (:meth:`~normcli.ops.bn_conventions.RunningState.statistics`), ``count`` 0."""
    path = os.fspath(path)
    members = npz_members(path)
    own = {"mean", "var", "count"} <= set(members) and "convention" not in members
    if not own and (convention is not None or "convention" in members):
        from normcli.files.running_stats import read_running_stats

        state = read_running_stats(path, convention, per=per)
        mean, var = state.statistics()
        return BatchStats(mean, var, 0, state.per)
    data = {
        name: read_npz_member(path, name, source=f"{path}:{name}", metadata=True)
        for name in members
        if name in STATS_FIELDS
    }
    try:
        return BatchStats.from_mapping(data)
    except ValueError as e:
        raise InputError(path, f"not usable statistics: {e}") from None


def batchnorm_settings(
    *, per: str, eps: float, gamma: object, beta: object, params: BNParams | None
) -> tuple[BNParams, dict[str, str]]:
    """The batch-norm settings given as values, checked (a mistake there is the
    caller's, found before any file is read), and the files ``gamma``/``beta``
    name: parameter -> path, for :func:`read_parameter_files` (they stand at 1
    and 0 until then)."""
    files = {name: os.fspath(v) for name, v in (("gamma", gamma), ("beta", beta))
             if is_path(v)}
    if params is not None and files:
        raise ParameterError(f"give params or {' and '.join(files)} files, not both",
                             param="params", value=params)
    given = {"gamma": 1.0 if "gamma" in files else gamma,
             "beta": 0.0 if "beta" in files else beta}
    return bn_params(params, per=per, eps=eps, **given), files


def read_parameter_files(settings: BNParams, files: dict[str, str]) -> BNParams:
    """``settings`` with ``gamma``/``beta`` read from their ``.npy`` files; a problem
    with their values is an :class:`InputError` naming the file."""
    if not files:
        return settings
    given = {"gamma": settings.gamma, "beta": settings.beta}
    for name, path in files.items():
        given[name] = read_npy(path, source=path)
    with blame(files):
        return bn_params(None, per=settings.per, eps=settings.eps, **given)


def with_saved_stats(settings: BNParams, files: dict[str, str], stats: object,
                     per: str | None, convention: str | None = None
                     ) -> tuple[BNParams, BatchStats | None, str | None]:
    """``(settings, saved, stats_file)``: the saved statistics (``stats``: a
    ``save_stats`` file or a BatchStats), read and checked against ``per`` (the
    ``per`` the caller gave, if any: the statistics' own otherwise), and the
    settings with that ``per`` and the ``gamma``/``beta`` files read."""
    stats_file = os.fspath(stats) if is_path(stats) else None
    saved = (read_stats_file(stats_file, convention, per) if stats_file is not None
             else stats)
    if saved is not None:
        if per is not None and per != saved.per:
            raise InputError(stats_file or "stats", f"holds statistics per {saved.per}, but "
                             f"--per {per} was given")
        settings = dataclasses.replace(settings, per=saved.per)
    return read_parameter_files(settings, files), saved, stats_file


class blame:
    """``with blame(files):`` turns a :class:`ParameterError` about a parameter that
    came from a file (``files``: parameter name -> path) into an
    :class:`InputError` naming that file."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def __enter__(self) -> blame:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if isinstance(value, ParameterError) and value.param in self.files:
            raise InputError(self.files[value.param], str(value)) from None


def describe(value: object) -> str:
    """A parameter for people: a number as ``%g``, a file by its name, an array by shape."""
    if is_path(value):
        return os.fspath(value)
    if np.ndim(value) == 0:
        return f"{float(value):g}"
    return "array " + "×".join(map(str, np.shape(value)))
