"""From input arguments to sources: files, folders (recursive or not), lists, stdin.

:func:`walk_inputs` expands the arguments into :class:`~normcli.files.Source`
objects, reading nothing but the directories, the ``.npz`` directories and
the TIFF page tables, and counts what it leaves out, so that nothing is ever
skipped without a word:

* files of other types (counted by suffix: ``.txt``, ``.json``, ...);
* subfolders, unless ``recursive`` (then they are walked, symlinked ones too,
  each real folder once: a symlink loop is counted and not followed);
* hidden files and folders (``.name``, which is also how normcli's own
  temporary files are named), broken symlinks and special files (FIFOs,
  sockets, devices).

``files_from``: a file (or ``"-"``, standard input) listing paths, one per
line or separated by NUL characters (``null=True``, as ``find -print0``
writes); each is expanded as an argument would be.  A relative path in the
list keeps its folders in the output name (``data/a/x.jpg`` goes to
``OUT/data/a/x.jpg``); an absolute path or one with ``..`` keeps its name.

Standard input (``-``) is read by :func:`read_stdin`, its type told by its
first bytes (:func:`normcli.files.images.sniff`).
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from normcli.errors import InputError
from normcli.files.images import IMAGE_SUFFIXES, sniff
from normcli.files.npy import open_error
from normcli.files.npz import npz_members
from normcli.files.sources import STDIN_LABEL, SUPPORTED_SUFFIXES, Source

__all__ = ["Expansion", "walk_inputs", "read_stdin", "read_path_list", "iter_path_list",
           "output_name", "MAX_LISTED"]

_SUPPORTED_TEXT = ", ".join(SUPPORTED_SUFFIXES)


@dataclass
class Expansion:
    """The sources of some arguments, and what was left out of their folders.

    ``skipped`` counts, by kind (``".txt files"``, ``"subfolders"``,
    ``"hidden files"``, ``"symlink loops"``, ...), the directory entries that
    are not inputs.
    """

    sources: list[Source] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def skipped_text(self) -> str | None:
        """``"8 .txt files, 2 subfolders (searched with -r)"``, or None."""
        if not self.skipped:
            return None
        parts = []
        for what, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            name = what if n != 1 else _singular(what)
            parts.append(f"{n:,} {name}")
        return ", ".join(parts)


def _singular(what: str) -> str:
    return {"subfolders (use -r to include them)": "subfolder (use -r to include it)",
            "symlink loops": "symlink loop", "broken symlinks": "broken symlink",
            "special files": "special file"}.get(what, what.replace(" files", " file")
                                                  .replace(" folders", " folder"))


def output_name(name: str) -> str:
    """The output name of an input file: images whose type cannot hold a result
    exactly (JPEG, WebP, BMP, GIF) become ``.png``; everything else keeps its name.

    >>> output_name("a/photo.JPG"), output_name("scan.tif"), output_name("x.npy")
    ('a/photo.png', 'scan.tif', 'x.npy')
    """
    stem, suffix = os.path.splitext(name)
    if IMAGE_SUFFIXES.get(suffix.lower()) in ("jpeg", "webp", "bmp", "gif"):
        return stem + ".png"
    return name


def _kind(suffix: str) -> str | None:
    if suffix == ".npy":
        return "npy"
    if suffix == ".npz":
        return "npz"
    fmt = IMAGE_SUFFIXES.get(suffix)
    if fmt is None:
        return None
    return "png" if fmt == "png" else "image"


def _safe_relpart(name: str) -> str:
    parts = name.replace("\\", "/").split("/")
    return "/".join(p if p not in ("", ".", "..") else "_" for p in parts)


def file_sources(path: Path, label: str, relname: str, kind: str | None = None) -> list[Source]:
    """The sources of one file: itself, an ``.npz``'s members, a TIFF's pages."""
    suffix = os.path.splitext(path.name)[1].lower()
    kind = kind or _kind(suffix)
    if kind is None:
        raise InputError(label, f"unsupported file type {suffix or '(no suffix)'!r} "
                         f"(supported: {_SUPPORTED_TEXT})")
    if kind == "npz":
        stem = relname[: -len(suffix)] if suffix else relname
        return [Source(f"{label}:{name}", f"{stem or '_'}/{_safe_relpart(name)}.npy", path,
                       "npz", name)
                for name in npz_members(path, source=label)]
    if kind == "image" and IMAGE_SUFFIXES.get(suffix) == "tiff":
        from normcli.files.tiff import tiff_pages

        pages = tiff_pages(path, source=label)
        if len(pages) == 1:
            return [Source(label, relname, path, "image", str(pages[0]))]
        stem = relname[: -len(suffix)]
        return [Source(f"{label}:page{p}", f"{stem}/page{p}{suffix}", path, "image", str(p))
                for p in pages]
    return [Source(label, output_name(relname), path, kind)]


def _sniffed_kind(path: Path) -> str | None:
    """The kind of a file whose name does not say, from its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    found = sniff(head)
    if found in ("npy", "npz"):
        return found
    return None if found is None else ("png" if found == "png" else "image")


class _Walker:
    def __init__(self, recursive: bool) -> None:
        self.recursive = recursive
        self.out = Expansion()
        self.visited: set[tuple[int, int]] = set()

    def directory(self, path: Path, label: str, rel: str, st: os.stat_result) -> int:
        """Add a folder's inputs; return how many."""
        self.visited.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise open_error(label, e) from None
        found = 0
        for entry in entries:
            name = entry.name
            child_label = os.path.join(label, name)
            child_rel = f"{rel}{name}"
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                is_dir = is_file = False
            if name.startswith("."):
                self.out.skipped["hidden folders" if is_dir else "hidden files"] += 1
                continue
            if is_dir:
                if not self.recursive:
                    self.out.skipped["subfolders (use -r to include them)"] += 1
                    continue
                try:
                    child = os.stat(entry.path)
                except OSError:
                    self.out.skipped["unreadable folders"] += 1
                    continue
                if (child.st_dev, child.st_ino) in self.visited:
                    self.out.skipped["symlink loops"] += 1
                    continue
                found += self.directory(Path(entry.path), child_label, child_rel + "/", child)
                continue
            if not is_file:
                broken = entry.is_symlink() and not os.path.exists(entry.path)
                self.out.skipped["broken symlinks" if broken else "special files"] += 1
                continue
            suffix = os.path.splitext(name)[1].lower()
            if suffix not in SUPPORTED_SUFFIXES:
                self.out.skipped[f"{suffix or '(no suffix)'} files"] += 1
                continue
            sources = file_sources(Path(entry.path), child_label, child_rel)
            self.out.sources.extend(sources)
            found += len(sources)
        return found

    def argument(self, label: str, rel: str | None) -> None:
        """One argument (or one listed path); ``rel``: its output name, or None
        for its base name (a folder's entries are named below it)."""
        path = Path(label)
        try:
            st = path.stat()
        except FileNotFoundError:
            broken = path.is_symlink()
            raise InputError(label, "no such file" + (" (broken symlink)" if broken else "")
                             ) from None
        except OSError as e:
            raise open_error(label, e) from None
        if stat.S_ISDIR(st.st_mode):
            before = dict(self.out.skipped)
            if not self.directory(path, label, "" if rel is None else rel.rstrip("/") + "/", st):
                mine = Counter(self.out.skipped)
                mine.subtract(before)
                what = Expansion(skipped=+mine).skipped_text()
                if what is None:
                    raise InputError(label, "directory is empty")
                raise InputError(label, f"directory has no .npy, .npz or image files (it holds "
                                 f"{what})")
            return
        if not stat.S_ISREG(st.st_mode):
            raise InputError(label, "not a regular file or directory")
        suffix = os.path.splitext(path.name)[1].lower()
        kind = _kind(suffix) or _sniffed_kind(path)
        self.out.sources.extend(file_sources(path, label, rel or path.name, kind))


def _list_name(entry: str) -> str | None:
    """The output name of a listed relative path (its folders kept), or None."""
    p = PurePosixPath(entry.replace(os.sep, "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    parts = [part for part in p.parts if part != "."]
    return "/".join(parts) if parts else None


#: The most paths a list may hold (``--files-from``): a list longer than this
#: is refused as soon as it is read that far, as is one whose entry runs past
#: :data:`MAX_ENTRY` bytes, so that an endless stream (``yes data.npy |``)
#: ends in one line rather than in all the memory there is.  Eight times
#: ImageNet's 1.28 M images; a larger dataset is run in parts.
MAX_LISTED = 10_000_000
#: The longest entry of a list, in bytes (Linux's PATH_MAX is 4096).
MAX_ENTRY = 1 << 16
_CHUNK = 1 << 20


def iter_path_list(stream: BinaryIO, *, null: bool = False, label: str = ""):
    """The paths of a list, as they are read: one per line (a ``\\r\\n`` ending
    is allowed), or NUL-separated; blank entries are ignored.  A list that is
    a device (``/dev/zero``) is refused before it is read: it would never
    end; one of more than :data:`MAX_LISTED` paths, or with an entry longer
    than :data:`MAX_ENTRY` bytes, when it gets there."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, io.UnsupportedOperation):
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        raise InputError(label, "is a device, not a list of paths (a file or a pipe)")
    sep = b"\0" if null else b"\n"
    listed, rest = 0, b""
    while True:
        chunk = stream.read(_CHUNK)
        if not null and b"\0" in chunk:
            raise InputError(label, "holds NUL characters: a NUL-separated list needs -0")
        entries = (rest + chunk).split(sep)
        rest = entries.pop() if chunk else b""
        if len(rest) > MAX_ENTRY:
            raise InputError(label, f"holds an entry longer than {MAX_ENTRY:,} bytes: "
                             "not a list of paths")
        for e in entries:
            if not null and e.endswith(b"\r"):
                e = e[:-1]
            if e.strip():
                listed += 1
                if listed > MAX_LISTED:
                    raise InputError(label, f"lists more than {MAX_LISTED:,} paths: run the "
                                     "dataset in parts")
                yield os.fsdecode(e)
        if not chunk:
            return


def read_path_list(stream: BinaryIO, *, null: bool = False, label: str = "") -> list[str]:
    """:func:`iter_path_list` as a list."""
    return list(iter_path_list(stream, null=null, label=label))


def walk_inputs(
    paths: Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    files_from: str | os.PathLike[str] | None = None,
    null: bool = False,
    stdin: BinaryIO | None = None,
) -> Expansion:
    """Expand input arguments (and a list of paths) into sources; see the module docstring.

    Raises
    ------
    InputError
        A missing file, an unsupported explicit file, a folder without inputs,
        a bad ``.npz`` or TIFF, ``-`` given twice.
    ValueError
        A single string for ``paths``; no inputs at all (a
        :class:`~normcli.errors.UsageError`).
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ValueError("paths must be a sequence of paths, not a single path")
    paths = list(paths)
    if not paths and files_from is None:
        from normcli.errors import UsageError

        raise UsageError("no inputs given: name files or folders, or --files-from FILE",
                         param="inputs")
    if null and files_from is None:
        from normcli.errors import UsageError

        raise UsageError("-0/--null needs --files-from", param="null")
    walker = _Walker(recursive)
    seen_stdin = False
    for arg in paths:
        label = os.fspath(arg)
        if label == "-":
            if seen_stdin or os.fspath(files_from or "") == "-":
                from normcli.errors import UsageError  # (how it was called: exit 2)

                raise UsageError("-: standard input can only be read once", param="inputs")
            seen_stdin = True
            walker.out.sources.append(Source(STDIN_LABEL, "stdin.npy", None, "stdin",
                                             stream=stdin))
            continue
        walker.argument(label, None)
    if files_from is not None:
        list_label = os.fspath(files_from)
        if list_label == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            if getattr(stream, "isatty", lambda: False)():
                raise InputError("--files-from -", "standard input is a terminal; pipe the "
                                 "list of paths into it")
            listed = _expand_list(walker, stream, null, "--files-from -")
        else:
            try:
                with open(list_label, "rb") as f:
                    listed = _expand_list(walker, f, null, list_label)
            except OSError as e:
                raise open_error(list_label, e) from None
        if not listed:
            raise InputError(list_label if list_label != "-" else "--files-from -",
                             "lists no paths")
    return walker.out


def _expand_list(walker, stream: BinaryIO, null: bool, label: str) -> int:
    """Each path of the list expanded as it is read (a list of missing files
    stops at its first); how many there were."""
    listed = 0
    for entry in iter_path_list(stream, null=null, label=label):
        walker.argument(entry, _list_name(entry))
        listed += 1
    return listed


def read_stdin(source: Source, *, raw: bool = False, max_bytes: int | None = None,
               color: str | None = None, with_alpha: bool = False,
               single: bool = False) -> list[Source]:
    """Read standard input (``source``: the ``-`` input) and return its inputs,
    read: one ``.npy`` array, the members of an ``.npz``, or an image (every
    full-resolution page of a TIFF).  ``single``: refuse several."""
    from normcli.files.limits import resolve_max_bytes
    from normcli.files.npy import read_npy_stream

    label = source.label
    stream = source.stream if source.stream is not None else sys.stdin.buffer
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        raise InputError(label, "is a terminal; pipe a .npy, .npz or image file into it")
    head = _read_exactly(stream, 16)
    kind = sniff(head)
    if kind is None or kind == "npy":  # (.npy's reader names what is wrong)
        arr = read_npy_stream(_Prefixed(head, stream), source=label, max_bytes=max_bytes)
        return [dataclasses.replace(source, kind="array", array=arr, stream=None)]
    limit = resolve_max_bytes(max_bytes)
    data = head + _read_exactly(stream, limit + 1 - len(head))
    if len(data) > limit:
        raise InputError(label, f"standard input holds more than the limit of {limit} bytes")
    if kind == "npz":
        return _stdin_npz(source, data, limit, single)
    from normcli.files.images import decode_image

    pages = [None]
    if kind == "tiff":
        from normcli.files.tiff import _full_pages, _open

        with _open(io.BytesIO(data), label) as tif:
            pages = _full_pages(tif)
        if single and len(pages) > 1:
            raise InputError(label, f"holds a TIFF of {len(pages)} pages; read one at a time")
        pages = pages if len(pages) > 1 else [pages[0] if pages else None]
    out = []
    suffix = {"jpeg": ".png", "webp": ".png", "bmp": ".png", "gif": ".png",
              "tiff": ".tif"}.get(kind, f".{kind}")
    for p in pages:
        name = label if len(pages) == 1 else f"{label}:page{p}"
        decoded = decode_image(data, raw=raw, max_bytes=limit, source=name, color=color,
                               with_alpha=with_alpha, page=p)
        relname = f"stdin{suffix}" if len(pages) == 1 else f"stdin/page{p}{suffix}"
        out.append(dataclasses.replace(source, label=name, relname=relname, kind="array",
                                       array=decoded.colour, decoded=decoded, stream=None))
    return out


def _stdin_npz(source: Source, data: bytes, limit: int, single: bool) -> list[Source]:
    import tempfile

    from normcli.files.npy import read_npz_member

    # The .npz reader checks the zip directory of a file: give it one, briefly.
    with tempfile.NamedTemporaryFile(suffix=".npz") as tmp:
        tmp.write(data)
        tmp.flush()
        names = npz_members(tmp.name, source=source.label)
        if single and len(names) > 1:
            raise InputError(source.label, f"holds an .npz of {len(names)} arrays; give it "
                             "as a file, or one array")
        out = []
        for name in names:
            label = f"{source.label}:{name}"
            arr = read_npz_member(tmp.name, name, max_bytes=limit, source=label)
            out.append(dataclasses.replace(source, label=label,
                                           relname=f"stdin/{_safe_relpart(name)}.npy",
                                           kind="array", array=arr, stream=None))
    return out


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class _Prefixed(io.RawIOBase):
    """A stream that yields ``head`` and then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        chunk = self.stream.read(len(b))
        n = len(chunk)
        b[:n] = chunk
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            rest = self.stream.read()
            data, self.head = self.head + rest, b""
            return data
        return super().read(n)
