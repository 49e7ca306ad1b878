"""Safe reading and writing of ``.npz`` files: zip archives of ``.npy`` members.

Every member is checked like a ``.npy`` file (:mod:`normcli.files.npy`).  The
zip directory is trusted for nothing but where a member is and how large it
claims to be, and that size is checked against the limit before anything is
decompressed; decompression never produces more than it.

Reading N members costs O(N), not O(N^2): the zip directory of an archive is
parsed once (by :mod:`zipfile`) and kept, keyed by the file's identity (device,
inode, size, modification and change times, from ``fstat`` of each read's own
descriptor, so a replaced or rewritten archive is parsed afresh); each member
is then read from its offset.  An archive changed in the last
:data:`SETTLED_NS` nanoseconds is parsed afresh for every member: file
times have a granularity (a few milliseconds on Linux, 2 s on FAT), so a
rewrite within the same tick could keep every field of the identity (the
"racy git" problem).  The parsed directories are immutable, so threads share
them freely.  Members stored (numpy's ``savez``) or deflated
(``savez_compressed``) are read here, checked as :mod:`zipfile` checks them
(local header, name, CRC-32, entries that overlap); other compression methods,
which numpy never writes, through :mod:`zipfile`.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from normcli.errors import InputError
from normcli.files.limits import MAX_BYTES_ENV, resolve_max_bytes
from normcli.files.npy import (
    MAX_HEADER_BYTES,
    _check_writable,
    _short,
    open_error,
    open_input,
    read_npy_stream,
)

__all__ = ["npz_members", "read_npz_member", "write_npz"]


class _CorruptMember(Exception):
    """A member's bytes do not match its zip directory entry (becomes an InputError)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One file of a zip archive, as its central directory describes it."""

    filename: str  # as zipfile names it (the member's name)
    orig_filename: str  # as stored (the local header must say the same)
    offset: int  # of the local header
    method: int  # 0 stored, 8 deflated, others: through zipfile
    compressed: int
    size: int
    crc: int
    flags: int
    end: int  # where the next entry, or the central directory, starts


@dataclass(frozen=True, slots=True)
class _Directory:
    entries: tuple[_Entry, ...]  # in archive order
    by_name: dict[str, _Entry]  # the last of equal names, as zipfile.getinfo


#: Parsed directories by file identity, most recently used last.
_DIRECTORIES: OrderedDict[tuple[int, ...], _Directory] = OrderedDict()
_DIRECTORIES_LOCK = threading.Lock()
#: Entries kept in the cache over all archives (the newest archive is always kept).
_CACHED_ENTRIES = 1 << 20
#: An archive's directory is kept once the file has not changed for this long
#: (more than any file system's timestamp granularity).
SETTLED_NS = 2_000_000_000


def _directory(fd: int, st: os.stat_result, source: object) -> _Directory:
    """The parsed zip directory of the open archive ``fd`` (``st``: its fstat)."""
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _DIRECTORIES_LOCK:
        found = _DIRECTORIES.get(key)
        if found is not None:
            _DIRECTORIES.move_to_end(key)
            return found
    directory = _parse_directory(fd, source)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) <= SETTLED_NS:
        return directory  # changed just now: the same identity could soon hold other bytes
    with _DIRECTORIES_LOCK:
        _DIRECTORIES[key] = directory
        total = sum(len(d.entries) for d in _DIRECTORIES.values())
        while total > _CACHED_ENTRIES and len(_DIRECTORIES) > 1:
            _, old = _DIRECTORIES.popitem(last=False)
            total -= len(old.entries)
    return directory


def _parse_directory(fd: int, source: object) -> _Directory:
    import zipfile

    try:
        with io.FileIO(fd, closefd=False) as raw, zipfile.ZipFile(raw) as zf:
            infos = zf.infolist()
            start_dir = zf.start_dir
    except OSError as e:
        raise open_error(source, e) from None
    except Exception as e:  # BadZipFile, LargeZipFile, ValueError, EOFError, ...
        raise InputError(
            source, f"not a valid .npz file ({_short(str(e) or type(e).__name__)})"
        ) from None
    # Each entry's data must end before the next entry starts (as zipfile checks
    # since Python 3.12): entries that share data are a zip bomb's trick.
    ends = {}
    end = start_dir
    for info in sorted(infos, key=lambda i: i.header_offset, reverse=True):
        ends[id(info)] = end
        end = info.header_offset
    entries = tuple(
        _Entry(i.filename, i.orig_filename, i.header_offset, i.compress_type, i.compress_size,
               i.file_size, i.CRC, i.flag_bits, ends[id(i)])
        for i in infos
    )
    return _Directory(entries, {e.filename: e for e in entries})


def npz_members(path: str | os.PathLike[str], *, source: object = None) -> list[str]:
    """List the arrays of a ``.npz`` file without decompressing anything.

    Parameters
    ----------
    path : path-like
    source : object, optional
        Names the file in error messages (default: `path`).

    Returns
    -------
    list of str
        Array names in archive order (zip member names without ``.npy``).

    Raises
    ------
    InputError
        If the file is not a zip, is empty, has a member that is not a
        ``.npy`` file, or has duplicate members.
    """
    source = path if source is None else source
    fd, st = open_input(path, source)
    try:
        entries = _directory(fd, st, source).entries
    finally:
        os.close(fd)
    names: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.filename.endswith("/"):  # a directory; is_dir() fails on an empty name
            continue
        if not entry.filename.endswith(".npy"):
            raise InputError(
                f"{source}:{entry.filename}",
                "member is not a .npy array (only .npy members allowed)",
            )
        name = entry.filename[: -len(".npy")]
        if name in seen:
            raise InputError(f"{source}:{name}", "duplicate member in .npz file")
        seen.add(name)
        names.append(name)
    if not names:
        raise InputError(source, "the .npz file contains no arrays")
    return names


def read_npz_member(
    path: str | os.PathLike[str],
    name: str,
    *,
    max_bytes: int | None = None,
    source: object = None,
    metadata: bool = False,
) -> np.ndarray:
    """Read one array of a ``.npz`` file with all the ``.npy`` checks.

    The member's uncompressed size recorded in the zip directory is checked
    against the limit before anything is decompressed, and decompression
    never produces more than that size, so a zip bomb is refused cheaply.
    The archive's directory is parsed once for all its members (see the
    module docstring).

    Parameters
    ----------
    path : path-like
    name : str
        Array name as returned by :func:`npz_members`.
    max_bytes : int, optional
        Size limit for the data (default: ``NORMCLI_MAX_BYTES`` or 2 GiB).
    source : object, optional
        Names the member in error messages (default: ``"path:name"``).
    metadata : bool, optional
        Also accept 0-d arrays and strings (see :func:`read_npy_header`).

    Returns
    -------
    numpy.ndarray
        Native-endian, C-contiguous.

    Raises
    ------
    InputError
    """
    source = f"{path}:{name}" if source is None else source
    limit = resolve_max_bytes(max_bytes)
    fd, st = open_input(path, source)
    try:
        entry = _directory(fd, st, source).by_name.get(name + ".npy")
        if entry is None:
            raise InputError(source, "no such array in the .npz file")
        if entry.flags & 0x1:
            raise InputError(source, "encrypted .npz members are not supported")
        if entry.size > limit + MAX_HEADER_BYTES + 16:
            raise InputError(
                source,
                f"uncompressed size {entry.size} bytes is over the limit of {limit} "
                f"(set {MAX_BYTES_ENV} to raise it)",
            )
        with io.FileIO(fd, closefd=False) as raw:
            try:
                if entry.method in (0, 8):
                    stream = _MemberReader(raw, entry)
                    return read_npy_stream(stream, source=source, max_bytes=limit,
                                           metadata=metadata)
                return _read_with_zipfile(raw, entry, source, limit, metadata)
            except InputError:
                raise
            except (_CorruptMember, zlib.error, EOFError, NotImplementedError,
                    RuntimeError) as e:
                raise InputError(source, f"corrupted .npz member ({_short(str(e))})") from None
            except OSError as e:
                raise open_error(source, e) from None
    finally:
        os.close(fd)


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader


class _MemberReader:
    """The uncompressed bytes of one stored or deflated member of an open archive.

    The local header is checked as :meth:`zipfile.ZipFile.open` checks it; the
    data are read from their offset with the file's own position (each read of
    a member has a descriptor of its own) and their CRC-32 is checked once the
    size in the directory has been read, or the data end, as ``ZipExtFile``
    does.  Raises :class:`_CorruptMember` (zipfile's messages), ``zlib.error``
    and ``EOFError``.
    """

    def __init__(self, raw: io.FileIO, entry: _Entry) -> None:
        if entry.flags & 0x20:
            raise NotImplementedError("compressed patched data (flag bit 5)")
        if entry.flags & 0x40:
            raise NotImplementedError("strong encryption (flag bit 6)")
        raw.seek(entry.offset)
        head = raw.read(_LOCAL_HEADER.size)
        if len(head) != _LOCAL_HEADER.size:
            raise _CorruptMember("Truncated file header")
        fields = _LOCAL_HEADER.unpack(head)
        if fields[0] != b"PK\x03\x04":
            raise _CorruptMember("Bad magic number for file header")
        name = raw.read(fields[10])
        if name.decode("utf-8" if fields[3] & 0x800 else "cp437",
                       errors="replace") != entry.orig_filename:
            raise _CorruptMember(f"File name in directory {entry.orig_filename!r} and header "
                                 f"{name!r} differ.")
        start = entry.offset + _LOCAL_HEADER.size + fields[10] + fields[11]
        if start + entry.compressed > entry.end:
            raise _CorruptMember(f"Overlapped entries: {entry.orig_filename!r} "
                                 "(possible zip bomb)")
        raw.seek(start)
        self._raw = raw
        self._entry = entry
        self._inflate = zlib.decompressobj(-15) if entry.method == 8 else None
        self._compressed_left = entry.compressed
        self._left = entry.size  # uncompressed bytes still to come
        self._crc = 0
        self._done = False

    def readinto(self, buf: memoryview) -> int:
        if self._left <= 0 or self._done:
            self._end()
            return 0
        want = min(len(buf), self._left)
        if not want:
            return 0
        if self._inflate is None:
            n = self._raw.readinto(buf[: min(want, self._compressed_left)]) or 0
            if not n:
                raise EOFError("the archive ends inside the member")
            self._compressed_left -= n
            chunk = buf[:n]
        else:
            chunk = self._inflate_some(want)
            n = len(chunk)
            buf[:n] = chunk
        self._crc = zlib.crc32(chunk, self._crc)
        self._left -= n
        if self._left <= 0 or (self._inflate is None and self._compressed_left <= 0):
            self._end()
        return n

    def _inflate_some(self, want: int) -> bytes:
        """Up to ``want`` decompressed bytes; b"" (and the end checked) at the stream's end."""
        while True:
            if self._inflate.eof:  # (what follows the stream may stay in unconsumed_tail)
                self._end()
                return b""
            data = self._inflate.unconsumed_tail
            if not data:
                if self._compressed_left <= 0:
                    self._end()
                    return b""
                data = self._raw.read(min(self._compressed_left, 1 << 20))
                if not data:
                    raise EOFError("the archive ends inside the member")
                self._compressed_left -= len(data)
            out = self._inflate.decompress(data, want)
            if out:
                return out
            if len(self._inflate.unconsumed_tail) >= len(data) and not self._inflate.eof:
                raise _CorruptMember("deflate data that make no progress")  # (never seen)

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer before the end too: callers loop); b"" at the end."""
        buf = bytearray(max(0, min(n, self._left)))
        got = self.readinto(memoryview(buf)) if buf or n else 0
        return bytes(buf[:got])

    def _end(self) -> None:
        """The data are over: they must be those the directory's CRC-32 describes."""
        if not self._done:
            self._done = True
            if self._crc != self._entry.crc:
                raise _CorruptMember(f"Bad CRC-32 for file {self._entry.filename!r}")


def _read_with_zipfile(raw: io.FileIO, entry: _Entry, source: object, limit: int,
                       metadata: bool) -> np.ndarray:
    """A member compressed by another method than numpy's (bzip2, lzma): zipfile's reader."""
    import zipfile

    raw.seek(0)
    try:
        with zipfile.ZipFile(raw) as zf:
            info = zf.getinfo(entry.filename)
            with zf.open(info) as fp:
                return read_npy_stream(fp, source=source, max_bytes=limit, metadata=metadata)
    except zipfile.BadZipFile as e:
        raise _CorruptMember(str(e)) from None


# ----------------------------------------------------------------- writing


def write_npz(fp: BinaryIO, arrays: np.ndarray | Mapping[str, np.ndarray]) -> None:
    """Write one array (as ``arr_0``) or a mapping of name to array as ``.npz``.

    Members are stored uncompressed, like :func:`numpy.savez`.

    Raises
    ------
    ValueError
        If a name is not a non-empty string or an array has dtype object.
    """
    if isinstance(arrays, Mapping):
        items = dict(arrays)
        if not items:
            raise ValueError("write_npz: the mapping of arrays is empty")
        for key in items:
            if not isinstance(key, str) or not key or key.startswith("/"):
                raise ValueError(
                    f"write_npz: array names must be relative non-empty str, got {key!r}"
                )
    else:
        items = {"arr_0": arrays}
    import zipfile

    with zipfile.ZipFile(fp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in items.items():
            a = _check_writable(value, f"write_npz[{key!r}]")
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                npformat.write_array(member, a, allow_pickle=False)
