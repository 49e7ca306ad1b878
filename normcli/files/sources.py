"""Turning command-line input arguments into loadable sources.

:func:`expand_inputs` is cheap: it checks that every argument exists, lists
directories and the arrays inside ``.npz`` files (without decompressing
them) and returns one :class:`Source` per input array.  Nothing is read
until :meth:`Source.load` is called, so a command can report every missing
file before doing any work and process large inputs one at a time.

Arguments
---------
``file.npy``, an image (``.png``, ``.jpg``, ``.tif``, ``.webp``, ``.bmp``, ``.gif``)
    One source (a TIFF: one per full-resolution page, ``file.tif:page2``).
``file.npz``
    One source per array; the label is ``file.npz:name``.
a directory
    Its ``.npy``, ``.npz`` and image files (suffixes compared
    case-insensitively), sorted by name; with ``recursive``, its subfolders'
    too.  What is skipped (other files, subfolders, hidden files) is counted
    (:func:`normcli.files.walk.walk_inputs`).  A directory without any
    supported file is an error.
``-``
    Standard input (at most once), its type told by its first bytes: a
    ``.npy``, an ``.npz``, or an image.

Output names
------------
:attr:`Source.relname` is where the result goes inside an output directory
(see :func:`normcli.files.output.output_path_for`): the file name for a
file or a directory entry (``a.npy``), ``stem/name.npy`` for an ``.npz``
member (``x.npz:conv1`` -> ``x/conv1.npy``) and ``stdin.npy`` for ``-``.
An image's result keeps its type where the type can hold it (PNG, TIFF);
JPEG, WebP, BMP and GIF inputs give PNG outputs (``a.jpg`` -> ``a.png``),
never a second lossy encoding.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from normcli.files.npy import open_error, read_npy, read_npy_into
from normcli.files.npz import read_npz_member

__all__ = [
    "SUPPORTED_SUFFIXES",
    "STDIN_LABEL",
    "Source",
    "expand_inputs",
    "load_inputs",
    "count_nonfinite",
]

#: Input file types, in the order they are listed in messages.
SUPPORTED_SUFFIXES = (".npy", ".npz", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp",
                      ".gif")
#: Label of the ``-`` input.
STDIN_LABEL = "<stdin>"


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
        ``"npy"``, ``"npz"`` (a member), ``"png"``, ``"image"`` (the other
        image types), ``"stdin"``, or ``"array"`` (standard input, read).
    member : str or None
        The array name inside the ``.npz``; the page index of a TIFF page.
    decoded : normcli.files.images.Decoded or None
        An image read from standard input.
    """

    label: str
    relname: str
    path: Path | None
    kind: str
    member: str | None = None
    stream: BinaryIO | None = field(default=None, compare=False, repr=False)
    array: np.ndarray | None = field(default=None, compare=False, repr=False)
    decoded: object | None = field(default=None, compare=False, repr=False)

    @property
    def is_image(self) -> bool:
        """Whether this input is an image (read as ``(C, H, W)``, alpha apart)."""
        return self.kind in ("png", "image") or self.decoded is not None

    def decode(self, *, raw_png: bool = False, max_bytes: int | None = None,
               color: str | None = None, with_alpha: bool = False):
        """An image input as a :class:`normcli.files.images.Decoded` (colour
        channels and alpha apart); see :func:`normcli.files.images.read_image`."""
        if self.decoded is not None:
            return self.decoded
        if not self.is_image:
            raise ValueError(f"{self.label} is not an image")
        from normcli.files.images import read_image  # Pillow only when an image is read

        page = int(self.member) if self.member is not None else None
        return read_image(self.path, raw=raw_png, max_bytes=max_bytes, source=self.label,
                          color=color, with_alpha=with_alpha, page=page)

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
        out: np.ndarray | None = None, color: str | None = None, with_alpha: bool = False,
    ) -> tuple[np.ndarray, tuple[int, ...] | None]:
        """:meth:`load`, and the :meth:`state` of the file as it was read.

        A ``.npy`` file is read with :func:`~normcli.files.npy.read_npy_into`
        (fewest system calls; the state comes from the open file itself).
        """
        if self.kind == "npy":
            arr, st = read_npy_into(self.path, out, max_bytes=max_bytes, mmap=mmap,
                                    source=self.label)
            return arr, _state(st)
        arr = self.load(raw_png=raw_png, max_bytes=max_bytes, mmap=mmap, out=out, color=color,
                        with_alpha=with_alpha)
        return arr, self.state()

    def load(
        self,
        *,
        raw_png: bool = False,
        max_bytes: int | None = None,
        mmap: bool = False,
        out: np.ndarray | None = None,
        color: str | None = None,
        with_alpha: bool = False,
    ) -> np.ndarray:
        """Read and check the array.

        Parameters
        ----------
        raw_png : bool, optional
            For image inputs, return the stored ``uint8``/``uint16`` values
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
        color, with_alpha
            For images: see :func:`normcli.files.images.read_image`.

        Returns
        -------
        numpy.ndarray
            ``.npy``/``.npz``: as stored (any shape with at least one
            dimension, bool/int/float); an image: its colour channels
            ``(C, H, W)`` (alpha too, last, with ``with_alpha``).

        Raises
        ------
        InputError
        """
        if self.kind == "npy":
            return read_npy(self.path, max_bytes=max_bytes, mmap=mmap, source=self.label, out=out)
        if self.kind == "npz":
            return read_npz_member(self.path, self.member, max_bytes=max_bytes, source=self.label)
        if self.is_image:
            return self.decode(raw_png=raw_png, max_bytes=max_bytes, color=color,
                               with_alpha=with_alpha).colour
        if self.kind == "array":
            return self.array
        if self.kind == "stdin":
            from normcli.files.walk import read_stdin

            (source,) = read_stdin(self, raw=raw_png, max_bytes=max_bytes, color=color,
                                   with_alpha=with_alpha, single=True)
            return source.load()
        raise ValueError(f"unknown source kind {self.kind!r}")  # pragma: no cover


def _state(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def expand_inputs(
    paths: Sequence[str | os.PathLike[str]], *, stdin: BinaryIO | None = None
) -> list[Source]:
    """Check the input arguments and list the arrays they contain.

    Parameters
    ----------
    paths : sequence of str or path-like
        Files, directories, or ``"-"`` for standard input.
    stdin : binary file object, optional
        Stream to use for ``"-"`` (default: ``sys.stdin.buffer`` when loaded).

    Returns
    -------
    list of Source
        In argument order; directory entries sorted by name; ``.npz``
        members in archive order.  (:func:`normcli.files.walk.walk_inputs`
        also walks subfolders, reads lists of paths and counts what it skips.)

    Raises
    ------
    InputError
        ``"no such file"``, unsupported suffix (naming the supported ones),
        empty directory, bad ``.npz``, ``-`` given twice.
    ValueError
        If `paths` is empty or a single string.
    """
    from normcli.files.walk import walk_inputs

    return walk_inputs(paths, stdin=stdin).sources


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
