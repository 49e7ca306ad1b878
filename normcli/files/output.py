"""Writing results: choosing the format by suffix and naming outputs.

Every file is written through :func:`normcli.files.atomic.atomic_write`, so an
existing file is only replaced with ``force=True`` and an interrupted write
never leaves a partial file.  An output that is also an input is refused even
with ``force`` (:func:`check_not_input`, :func:`plan_outputs`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from normcli.errors import OutputError
from normcli.files.atomic import StagedWrites, atomic_write
from normcli.files.npy import write_npy
from normcli.files.npz import write_npz
from normcli.files.sources import Source

__all__ = [
    "OUTPUT_SUFFIXES",
    "write_array",
    "encode_to",
    "stage_array",
    "output_path_for",
    "plan_outputs",
    "check_not_input",
]

#: Output file types chosen by suffix (compared case-insensitively).
OUTPUT_SUFFIXES = (".npy", ".npz", ".png", ".tif", ".tiff")
_OUTPUT_TEXT = ", ".join(OUTPUT_SUFFIXES)


def _output_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise OutputError(
            path,
            f"unsupported output type {suffix or '(no suffix)'!r} (supported: {_OUTPUT_TEXT})",
        )
    return suffix


def write_array(
    path: str | os.PathLike[str],
    arr: np.ndarray | Mapping[str, np.ndarray],
    *,
    force: bool = False,
    png_bits: int = 8,
) -> None:
    """Write an array to `path` in the format given by its suffix.

    Parameters
    ----------
    path : path-like
        ``.npy`` (``allow_pickle=False``), ``.npz`` (uncompressed; one array
        stored as ``arr_0``, or a mapping name -> array), ``.png`` (see
        :func:`normcli.files.png.to_png_array`: each channel rescaled to the
        full range, 1 channel gray, 3 RGB, others a labelled grid) or
        ``.tif``/``.tiff`` (the values, float32).
    arr : numpy.ndarray or mapping of str to numpy.ndarray
        A mapping is only accepted for ``.npz``.
    force : bool, optional
        Replace an existing file.
    png_bits : {8, 16}
        Bit depth of PNG output.

    Raises
    ------
    OutputError
        Unsupported suffix (naming the supported ones), target exists
        without `force`, directory missing, permission denied, disk full...
    ValueError
        Bad `png_bits`, mapping for a non-``.npz`` output, array that cannot
        be written (object dtype; wrong shape for PNG).
    """
    _output_suffix(Path(path))
    with atomic_write(path, force=force) as f:
        encode_to(f, path, arr, png_bits=png_bits)


def encode_to(
    f: BinaryIO,
    path: str | os.PathLike[str],
    arr: np.ndarray | Mapping[str, np.ndarray],
    *,
    png_bits: int = 8,
    image=None,
) -> None:
    """Write ``arr`` to the open file ``f`` in the format of ``path``'s suffix.

    ``image``: a :class:`normcli.files.pixels.ImageOut` (mapping to pixels,
    alpha) for ``.png``/``.tif`` outputs; by default each channel is
    stretched to the full range (PNG) and there is no alpha.
    """
    target = Path(path)
    suffix = _output_suffix(target)
    if png_bits not in (8, 16):
        raise ValueError(f"png_bits must be 8 or 16, got {png_bits!r}")
    if isinstance(arr, Mapping) and suffix != ".npz":
        raise ValueError(f"several arrays can only be written to .npz, not {suffix}")
    try:
        if suffix in (".png", ".tif", ".tiff"):
            from normcli.files.pixels import encode_image  # Pillow only for images

            if image is None:
                f.write(encode_image(arr, suffix=suffix, bits=png_bits))
            else:
                f.write(encode_image(arr, suffix=suffix, mapping=image.mapping, bits=png_bits,
                                     alpha=image.alpha, alpha_full=image.alpha_full,
                                     last_is_alpha=image.last_is_alpha))
        elif suffix == ".npy":
            write_npy(f, arr)
        else:
            write_npz(f, arr)
    except OSError as e:
        text = (e.strerror or str(e)).strip() or type(e).__name__
        raise OutputError(target, text) from None


def stage_array(
    staged: StagedWrites,
    path: str | os.PathLike[str],
    arr: np.ndarray | Mapping[str, np.ndarray],
    *,
    force: bool = False,
    png_bits: int = 8,
    image=None,
) -> None:
    """Like :func:`write_array`, but put in place only by ``staged.commit()``."""
    suffix = _output_suffix(Path(path))
    # .npy: a header and the data, written unbuffered (fewest system calls)
    with staged.open(path, force=force, raw=suffix == ".npy") as f:
        encode_to(f, path, arr, png_bits=png_bits, image=image)


def output_path_for(
    source: Source,
    out_dir: str | os.PathLike[str],
    suffix: str | None = None,
    *,
    mkdir: bool = False,
) -> Path:
    """Where the result for `source` goes inside `out_dir`.

    Parameters
    ----------
    source : Source
    out_dir : path-like
    suffix : str, optional
        Replace the suffix of :attr:`Source.relname` (``".png"``, ...).
    mkdir : bool, optional
        Create the parent directories (``out_dir`` and, for ``.npz``
        members, the ``stem/`` subdirectory).

    Returns
    -------
    pathlib.Path
        ``out_dir / source.relname`` with the new suffix, e.g.
        ``out/a.npy``, ``out/x/conv1.png``.

    Examples
    --------
    >>> s = Source("x.npz:conv1", "x/conv1.npy", Path("x.npz"), "npz", "conv1")
    >>> output_path_for(s, "out", ".png").as_posix()
    'out/x/conv1.png'
    """
    rel = Path(*source.relname.split("/"))
    if suffix is not None:
        if suffix.lower() not in OUTPUT_SUFFIXES:
            raise ValueError(f"suffix must be one of {_OUTPUT_TEXT}, got {suffix!r}")
        rel = rel.with_suffix(suffix)
    if rel.is_absolute() or ".." in rel.parts:  # relname is sanitised; belt and braces
        raise OutputError(source.label, f"unsafe output name {source.relname!r}")
    out = Path(out_dir) / rel
    if mkdir:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(out.parent, (e.strerror or str(e)).strip()) from None
    return out


class _InputSet:
    """The input files, for fast "is this output an input?" checks."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self.sources = [s for s in sources if s.path is not None]
        self.ids: dict[tuple[int, int], str] = {}
        for s in self.sources:
            try:
                st = os.stat(s.path)
            except OSError:
                continue
            self.ids[(st.st_dev, st.st_ino)] = s.label
        self._real: dict[str, str] | None = None

    def find(self, out: str | os.PathLike[str]) -> str | None:
        try:
            st = os.stat(out)
        except FileNotFoundError:  # names no file, so no input (the usual case: cheap),
            if ".." not in Path(out).parts:  # unless it is one once resolved on paper
                return None
            return self._resolved().get(os.path.normcase(os.path.realpath(out)))
        except OSError:  # cannot tell by inode: compare resolved paths
            return self._resolved().get(os.path.normcase(os.path.realpath(out)))
        return self.ids.get((st.st_dev, st.st_ino))

    def _resolved(self) -> dict[str, str]:
        if self._real is None:
            self._real = {os.path.normcase(os.path.realpath(s.path)): s.label
                          for s in self.sources}
        return self._real


def check_not_input(out: str | os.PathLike[str], sources: Iterable[Source]) -> None:
    """Refuse to write `out` if it is one of the input files.

    The comparison is the one of :func:`normcli.files.atomic.same_file`:
    device and inode for existing files (hard links, symlinks), resolved
    paths otherwise.

    Raises
    ------
    OutputError
        ``"is also an input (refusing to overwrite it, even with --force)"``.
    """
    if _InputSet(sources).find(out) is not None:
        raise OutputError(out, "is also an input (refusing to overwrite it, even with --force)")


def plan_outputs(
    sources: Sequence[Source], out_dir: str | os.PathLike[str], suffix: str | None = None,
    *, also_inputs: Sequence[Source] = (),
) -> list[Path]:
    """Output paths for all sources, checked before anything is written.

    ``also_inputs``: other files the run reads (parameter files), which no
    output may replace either.

    Raises
    ------
    OutputError
        If two sources map to the same output (e.g. ``a/x.npy`` and
        ``b/x.npy``) or an output is one of the inputs.
    """
    inputs = _InputSet([*sources, *also_inputs])
    outs = [output_path_for(s, out_dir, suffix) for s in sources]
    seen: dict[str, Source] = {}
    for s, out in zip(sources, outs, strict=True):
        key = os.path.normcase(os.path.abspath(out))
        if key in seen:
            raise OutputError(out, f"both {seen[key].label} and {s.label} would be written here")
        seen[key] = s
        if inputs.find(out) is not None:
            raise OutputError(out, "is also an input (refusing to overwrite it, even with --force)")
    return outs
