"""Turning command-line input arguments into loadable sources.

:func:`expand_inputs` is cheap: it checks that every argument exists, lists
directories and the arrays inside ``.npz`` files (without decompressing
them) and returns one :class:`Source` per input array.  Nothing is read
until :meth:`Source.load` is called, so a command can report every missing
file before doing any work and process large inputs one at a time.

Arguments
---------
``file.npy`` / ``file.png``
    One source.
``file.npz``
    One source per array; the label is ``file.npz:name``.
a directory
    Its ``.npy``, ``.npz`` and ``.png`` files (suffixes compared
    case-insensitively), sorted by name.  Not recursive: subdirectories,
    hidden files (``.name``) and other files are skipped.  A directory
    without any supported file is an error.
``-``
    One ``.npy`` array read from standard input (at most once).

Output names
------------
:attr:`Source.relname` is where the result goes inside an output directory
(see :func:`normcli.files.output.output_path_for`): the file name for a
file or a directory entry (``a.npy``), ``stem/name.npy`` for an ``.npz``
member (``x.npz:conv1`` -> ``x/conv1.npy``) and ``stdin.npy`` for ``-``.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from normcli.errors import InputError
from normcli.files.npy import open_error, read_npy, read_npy_into, read_npy_stream
from normcli.files.npz import npz_members, read_npz_member

__all__ = [
    "SUPPORTED_SUFFIXES",
    "STDIN_LABEL",
    "Source",
    "expand_inputs",
    "load_inputs",
    "count_nonfinite",
]

#: Input file types, in the order they are listed in messages.
SUPPORTED_SUFFIXES = (".npy", ".npz", ".png")
#: Label of the ``-`` input.
STDIN_LABEL = "<stdin>"
_SUPPORTED_TEXT = ", ".join(SUPPORTED_SUFFIXES)


@dataclass(frozen=True)
class Source:
    """One input array, not yet loaded.

    Attributes
    ----------
    label : str
        Names the input in messages and tables: the path as given
        (``features/a.npy``), ``x.npz:conv1`` or ``<stdin>``.
    relname : str
        Relative output name (``/``-separated) when writing into an output
        directory: ``a.npy``, ``x/conv1.npy``, ``stdin.npy``.
    path : pathlib.Path or None
        The file (the ``.npz`` for a member), ``None`` for stdin.
    kind : str
        ``"npy"``, ``"npz"`` (a member), ``"png"`` or ``"stdin"``.
    member : str or None
        The array name inside the ``.npz``.
    """

    label: str
    relname: str
    path: Path | None
    kind: str
    member: str | None = None
    stream: BinaryIO | None = field(default=None, compare=False, repr=False)
    array: np.ndarray | None = field(default=None, compare=False, repr=False)

    def loaded(self, **options: object) -> Source:
        """This source with its array read now, so that it can be loaded again.

        Standard input can only be read once: a command that reads its inputs
        twice (batch statistics, then normalization) or on worker threads
        reads ``-`` first, in the main thread, through this.
        """
        if self.kind != "stdin":
            return self
        return dataclasses.replace(self, kind="array", array=self.load(**options))

    def state(self) -> tuple[int, ...] | None:
        """What identifies this version of the file: inode, size, modification time.

        Two equal states (taken after each of two reads) mean the file was not
        replaced or rewritten in between, as far as the file system can tell.
        ``None`` for standard input, read once and kept.

        Raises
        ------
        InputError
            The file is gone or cannot be examined.
        """
        if self.path is None or self.kind == "array":
            return None
        try:
            return _state(os.stat(self.path))
        except OSError as e:
            raise open_error(self.label, e) from None

    def read(
        self, *, raw_png: bool = False, max_bytes: int | None = None, mmap: bool = False,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[int, ...] | None]:
        """:meth:`load`, and the :meth:`state` of the file as it was read.

        A ``.npy`` file is read with :func:`~normcli.files.npy.read_npy_into`
        (fewest system calls; the state comes from the open file itself).
        """
        if self.kind == "npy":
            arr, st = read_npy_into(self.path, out, max_bytes=max_bytes, mmap=mmap,
                                    source=self.label)
            return arr, _state(st)
        arr = self.load(raw_png=raw_png, max_bytes=max_bytes, mmap=mmap, out=out)
        return arr, self.state()

    def load(
        self,
        *,
        raw_png: bool = False,
        max_bytes: int | None = None,
        mmap: bool = False,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Read and check the array.

        Parameters
        ----------
        raw_png : bool, optional
            For PNG inputs, return the stored ``uint8``/``uint16`` values
            instead of ``float32`` in ``[0, 1]``.
        max_bytes : int, optional
            Size limit (default: ``NORMCLI_MAX_BYTES`` or 2 GiB).
        mmap : bool, optional
            Memory-map ``.npy`` files (see :func:`normcli.files.npy.read_npy`);
            ignored for other kinds.
        out : numpy.ndarray, optional
            A buffer to read a ``.npy`` file's data into when they fit it
            exactly (see :func:`normcli.files.npy.read_npy`); the result is
            then a view of `out`.  Ignored for other kinds.

        Returns
        -------
        numpy.ndarray
            ``.npy``/``.npz``: as stored (any shape with at least one
            dimension, bool/int/float); PNG: ``(C, H, W)``.

        Raises
        ------
        InputError
        """
        if self.kind == "npy":
            return read_npy(self.path, max_bytes=max_bytes, mmap=mmap, source=self.label, out=out)
        if self.kind == "npz":
            return read_npz_member(self.path, self.member, max_bytes=max_bytes, source=self.label)
        if self.kind == "png":
            from normcli.files.png import read_png  # Pillow only when a PNG is read

            return read_png(self.path, raw=raw_png, max_bytes=max_bytes, source=self.label)
        if self.kind == "array":
            return self.array
        if self.kind == "stdin":
            stream = self.stream if self.stream is not None else sys.stdin.buffer
            isatty = getattr(stream, "isatty", None)
            if isatty is not None and isatty():
                raise InputError(self.label, "is a terminal; pipe a .npy file into it")
            return read_npy_stream(stream, source=self.label, max_bytes=max_bytes)
        raise ValueError(f"unknown source kind {self.kind!r}")  # pragma: no cover


def _state(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _safe_relpart(name: str) -> str:
    """Make an ``.npz`` member name usable as a relative path."""
    parts = name.replace("\\", "/").split("/")
    safe = [p if p not in ("", ".", "..") else "_" for p in parts]
    return "/".join(safe)


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _file_sources(path: Path, label: str) -> list[Source]:
    suffix = _suffix(path.name)
    if suffix == ".npy":
        return [Source(label, path.name, path, "npy")]
    if suffix == ".png":
        return [Source(label, path.name, path, "png")]
    if suffix == ".npz":
        stem = path.name[: -len(suffix)] or "_"
        return [
            Source(f"{label}:{name}", f"{stem}/{_safe_relpart(name)}.npy", path, "npz", name)
            for name in npz_members(path, source=label)
        ]
    raise InputError(
        label, f"unsupported file type {suffix or '(no suffix)'!r} (supported: {_SUPPORTED_TEXT})"
    )


def _dir_sources(path: Path, label: str) -> list[Source]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise open_error(label, e) from None
    if not entries:
        raise InputError(label, "directory is empty")
    sources: list[Source] = []
    for entry in entries:
        if entry.name.startswith(".") or _suffix(entry.name) not in SUPPORTED_SUFFIXES:
            continue
        try:
            if not entry.is_file():
                continue
        except OSError:
            continue
        sources.extend(_file_sources(Path(entry.path), os.path.join(label, entry.name)))
    if not sources:
        raise InputError(
            label, f"directory has no {_SUPPORTED_TEXT} files (it is not searched recursively)"
        )
    return sources


def expand_inputs(
    paths: Sequence[str | os.PathLike[str]], *, stdin: BinaryIO | None = None
) -> list[Source]:
    """Check the input arguments and list the arrays they contain.

    Parameters
    ----------
    paths : sequence of str or path-like
        Files, directories, or ``"-"`` for a ``.npy`` on standard input.
    stdin : binary file object, optional
        Stream to use for ``"-"`` (default: ``sys.stdin.buffer`` when loaded).

    Returns
    -------
    list of Source
        In argument order; directory entries sorted by name; ``.npz``
        members in archive order.

    Raises
    ------
    InputError
        ``"no such file"``, unsupported suffix (naming the supported ones),
        empty directory, bad ``.npz``, ``-`` given twice.
    ValueError
        If `paths` is empty or a single string.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ValueError("paths must be a sequence of paths, not a single path")
    if not paths:
        raise ValueError("no inputs given")
    sources: list[Source] = []
    seen_stdin = False
    for arg in paths:
        label = os.fspath(arg)
        if label == "-":
            if seen_stdin:
                raise InputError("-", "standard input can only be read once")
            seen_stdin = True
            sources.append(Source(STDIN_LABEL, "stdin.npy", None, "stdin", stream=stdin))
            continue
        path = Path(label)
        try:
            st = path.stat()
        except FileNotFoundError:
            broken = path.is_symlink()
            raise InputError(
                label, "no such file" + (" (broken symlink)" if broken else "")
            ) from None
        except OSError as e:
            raise open_error(label, e) from None
        if stat.S_ISDIR(st.st_mode):
            sources.extend(_dir_sources(path, label))
        elif stat.S_ISREG(st.st_mode):
            sources.extend(_file_sources(path, label))
        else:
            raise InputError(label, "not a regular file or directory")
    return sources


def load_inputs(
    paths: Sequence[str | os.PathLike[str]],
    *,
    raw_png: bool = False,
    max_bytes: int | None = None,
    stdin: BinaryIO | None = None,
) -> list[tuple[Source, np.ndarray]]:
    """Expand and load every input at once (see :func:`expand_inputs`).

    Returns
    -------
    list of (Source, numpy.ndarray)
    """
    return [
        (s, s.load(raw_png=raw_png, max_bytes=max_bytes)) for s in expand_inputs(paths, stdin=stdin)
    ]


def count_nonfinite(arr: np.ndarray, *, chunk: int = 1 << 22) -> int:
    """Count the NaN and infinite values of an array.

    Bool and integer arrays return 0 without looking at the data; float
    arrays are scanned in chunks, so the temporary memory is bounded.

    >>> count_nonfinite(np.array([1.0, np.nan, -np.inf]))
    2
    >>> count_nonfinite(np.arange(5))
    0
    """
    a = np.asarray(arr)
    if a.dtype.kind in "biu":
        return 0
    if a.dtype.kind not in "fc":
        raise ValueError(f"count_nonfinite: unsupported dtype {a.dtype}")
    flat = a.reshape(-1) if a.flags.c_contiguous else a.ravel(order="K")
    total = 0
    for start in range(0, flat.size, chunk):
        part = flat[start : start + chunk]
        total += part.size - int(np.count_nonzero(np.isfinite(part)))
    return total
