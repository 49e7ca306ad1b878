"""A run's inputs: named, read, checked, and told apart from the caller's mistakes.

:func:`open_sources` expands the arguments (directories, ``.npz`` members,
``-``) without reading anything but standard input; :func:`load_checked` reads
one input and refuses NaN/Inf unless allowed; :func:`data_error` turns the
numeric core's complaint about an input's data into an error naming the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from normcli._gather import Sliced
from normcli.errors import InputError, ParameterError
from normcli.files import MAX_BYTES_ENV, Source, count_nonfinite, resolve_max_bytes
from normcli.files.walk import Expansion, read_stdin, walk_inputs
from normcli.ops import _memory
from normcli.ops.arrays import compute_dtype
from normcli.runs.options import RunOptions

__all__ = [
    "open_inputs",
    "open_sources",
    "choose_jobs",
    "load_checked",
    "read_input",
    "read_unchecked",
    "check_finite",
    "data_error",
    "check_memory",
    "load_stack",
    "SMALL_INPUT_BYTES",
]


def open_inputs(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                options: RunOptions) -> Expansion:
    """The inputs, expanded (folders walked with ``recursive``, ``files_from``
    read), and what their folders held that is not an input; nothing is read
    yet but standard input, which is read now in the calling thread (it can be
    read only once, and Ctrl-C must reach a read that waits for it).  One path
    (a ``str`` or ``os.PathLike``) is one input, not a sequence of characters."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    try:
        inputs = list(inputs)
    except TypeError:
        inputs = [inputs]  # (refused below, by its type)
    for path in inputs:
        if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
            raise ParameterError(f"inputs hold {path!r}, not a path (str or os.PathLike)",
                                 param="inputs", value=path)
    stdin = options.stdin if options.stdin is not None else sys.stdin.buffer
    found = walk_inputs(inputs, recursive=options.recursive,
                        files_from=options.files_from, null=options.null, stdin=stdin)
    sources = []
    for s in found.sources:
        if s.kind == "stdin":
            sources.extend(read_stdin(s, raw=options.raw_png, color=options.color,
                                      with_alpha=options.include_alpha))
        else:
            sources.append(s)
    if not sources:
        raise InputError(options.files_from or "inputs", "no inputs")
    return Expansion(Sliced(sources), found.skipped)


def open_sources(inputs: Sequence[str | os.PathLike[str]], options: RunOptions) -> list[Source]:
    """:func:`open_inputs`' sources alone."""
    return open_inputs(inputs, options).sources


#: Below this mean size of .npy inputs, one job is faster than several: the
#: per-file Python work, serialized by the GIL, outweighs the numpy work that
#: runs in parallel (measured on 2 cores, 400 files: at 256 KiB one job was
#: 10% faster for lrn and batchnorm, at 512 KiB two jobs were 10-25% faster).
SMALL_INPUT_BYTES = 384 << 10


def choose_jobs(jobs: int | None, sources: Sequence[Source]) -> int | None:
    """``jobs`` as given, else one job for many small ``.npy`` inputs (judged from
    up to 64 of them), else None (the cores)."""
    if jobs is not None or len(sources) < 2:
        return jobs
    sample = [s for s in sources[:64] if s.kind == "npy"]
    if len(sample) < min(len(sources), 64):
        return None  # images, .npz members, stdin: their size on disk says little
    try:
        mean = sum(os.stat(s.path).st_size for s in sample) / len(sample)
    except OSError:
        return None  # (the read will name the file)
    return 1 if mean < SMALL_INPUT_BYTES else None


def load_checked(source: Source, options: RunOptions, *, mmap: bool = False) -> np.ndarray:
    """Load one input and refuse NaN/Inf unless ``allow_nonfinite``."""
    arr = source.load(mmap=mmap, **options.image_options())
    if options.channels_last and source.is_image:
        arr = np.moveaxis(arr, 0, -1)  # images are read (C, H, W); asked for (H, W, C)
    check_finite(source, options, arr)
    return arr


def read_unchecked(source: Source, options: RunOptions, out: np.ndarray | None):
    """``(array, state)`` of one input, read into ``out`` where it fits (see
    :meth:`Source.read`), not checked for NaN/Inf: the caller does that."""
    arr, state = source.read(mmap=True, out=out, **options.image_options())
    if options.channels_last and source.is_image:
        arr = np.moveaxis(arr, 0, -1)
    return arr, state


def check_finite(source: Source, options: RunOptions, arr: np.ndarray) -> None:
    """Refuse an input holding NaN or Inf, unless ``allow_nonfinite``."""
    if options.allow_nonfinite:
        return
    bad = count_nonfinite(arr)
    if bad:
        raise InputError(
            source.label,
            f"holds {bad:,} NaN/Inf value{'s' if bad > 1 else ''} "
            "(pass --allow-nonfinite to process it anyway)",
        )


def read_input(source: Source, options: RunOptions):
    """``(x, decoded)``: one input as the normalizations see it (an image's
    colour channels, ``(C, H, W)`` or channels last), and the image as read
    (``None`` for an array)."""
    if source.is_image:
        if options.channel_axis is not None:
            from normcli.runs.layout import refuse_image

            raise refuse_image(source.label)
        decoded = source.decode(**options.image_options())
        x = decoded.colour
        if options.channels_last:
            x = np.moveaxis(x, 0, -1)
        check_finite(source, options, x)
        return x, decoded
    return load_checked(source, options), None


def check_memory(label: str, x: np.ndarray, *, results: int = 1) -> None:
    """Refuse, before any work, an input whose normalization would need more memory
    than the limit allows: the input as loaded and ``results`` arrays of its size
    in the compute type (a 1 GiB uint8 input has an 8 GiB float64 result).

    The limit is the one every reader applies to an input's data
    (``NORMCLI_MAX_BYTES``, default 2 GiB), so that it bounds a run's working
    memory too, not only what it reads.
    """
    limit = resolve_max_bytes()
    result = x.size * compute_dtype(x.dtype).itemsize
    held = 0 if isinstance(x, np.memmap) else x.nbytes
    needed = held + results * result
    if needed + _memory.idle_bytes() > limit:
        # the recycled output buffers (at most an eighth of the limit by default)
        # would take the run over it: give them back before this input's work
        _memory.release()
    if needed > limit:
        raise InputError(label, f"normalizing it needs about {needed:,} bytes of memory (the "
                         f"input and {results} {compute_dtype(x.dtype)} result"
                         f"{'s' if results > 1 else ''} of {result:,} bytes), over the limit "
                         f"of {limit:,} (set {MAX_BYTES_ENV} to raise it)")


def data_error(label: str, error: ParameterError) -> Exception:
    """The core's complaint about one input's data (``.param`` ``"x"``, or the
    batch of a streamed statistic), as an :class:`InputError` naming the input;
    any other parameter's error is the caller's, and is returned unchanged."""
    if error.param in ("x", "batch"):
        return InputError(label, str(error))
    return error


def load_stack(inputs: Sequence[str | os.PathLike[str]], options: RunOptions
               ) -> tuple[np.ndarray, str, list[Source]]:
    """``(array, label, sources)``: one input as stored, or several stacked along a
    new first axis (then ``label`` says so and names the first)."""
    sources = open_sources(inputs, options)
    arrays = [load_checked(s, options) for s in sources]
    if len(arrays) == 1:
        return arrays[0], sources[0].label, sources
    for s, a in zip(sources[1:], arrays[1:], strict=True):
        if a.shape != arrays[0].shape:
            raise InputError(s.label, f"has shape {a.shape} but {sources[0].label} has "
                             f"{arrays[0].shape}; stacked inputs need one shape")
    return np.stack(arrays), f"{len(arrays)} inputs stacked ({sources[0].label}, …)", sources
