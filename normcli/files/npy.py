"""Safe reading and writing of ``.npy`` files (``.npz`` archives: :mod:`normcli.files.npz`).

Reading never unpickles and never allocates memory for the data before the
header has been parsed and checked:

* only a regular file is read (:func:`open_input`: a FIFO, a device or a
  symlink to one is refused at once, without blocking);
* the header (format version 1.0, 2.0 or 3.0) is read and parsed with
  :func:`numpy.lib.format.read_magic` / ``read_array_header_1_0`` /
  ``read_array_header_2_0``; any failure becomes an
  :class:`~normcli.errors.InputError`;
* the dtype must be bool, a signed or unsigned integer or a float
  (:data:`ALLOWED_KINDS`); object (pickled), structured, complex, string,
  datetime and void arrays are refused;
* the array must have at least one dimension (at most :data:`MAX_DIMS`) and
  at least one element;
* the claimed data size must not exceed the limit (see
  :mod:`normcli.files.limits`) and must match the rest of the file exactly:
  a short file is ``"truncated"``, extra bytes are ``"trailing data"``.

Big-endian and Fortran-ordered files are accepted; the returned array is
always native-endian and C-contiguous (except with ``mmap=True``, see
:func:`read_npy`).

>>> import io
>>> import numpy as np
>>> buf = io.BytesIO()
>>> write_npy_stream(buf, np.arange(3, dtype=">i2"))
>>> _ = buf.seek(0)
>>> read_npy_stream(buf, source="example")
array([0, 1, 2], dtype=int16)
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from normcli.errors import InputError
from normcli.files.limits import MAX_BYTES_ENV, resolve_max_bytes

__all__ = [
    "ALLOWED_KINDS",
    "MAX_HEADER_BYTES",
    "MAX_DIMS",
    "NpyHeader",
    "read_npy_header",
    "read_npy",
    "read_npy_into",
    "read_npy_stream",
    "write_npy_stream",
    "write_npy",
    "describe_dtype",
    "open_error",
    "open_input",
    "nonblocking",
]

#: dtype kinds accepted on input: bool, signed int, unsigned int, float.
ALLOWED_KINDS = "biuf"
_ALLOWED_TEXT = "bool, signed or unsigned integers, floats"
#: Largest ``.npy`` header accepted (bytes); numpy writes at most a few hundred.
MAX_HEADER_BYTES = 65536
#: Most dimensions a numpy array can have (numpy 2: 64; numpy 1: 32).
MAX_DIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
_MAGIC_PREFIX = b"\x93NUMPY"
_KIND_NAMES = {
    "c": "complex",
    "O": "pickled Python objects",
    "U": "unicode strings",
    "S": "byte strings",
    "M": "datetimes",
    "m": "timedeltas",
    "V": "void/structured",
    "T": "strings",
}


def describe_dtype(dtype: np.dtype) -> str:
    """Name a dtype for an error message, e.g. ``"complex128 (complex)"``.

    >>> describe_dtype(np.dtype([("a", "<i4")]))
    "structured dtype [('a', '<i4')]"
    """
    if dtype.names is not None:
        text = f"structured dtype {dtype.descr}"
        return text if len(text) <= 120 else text[:117] + "..."
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"subarray dtype {(base.str, shape)}"
    kind = _KIND_NAMES.get(dtype.kind, dtype.kind)
    name = "object" if dtype.kind == "O" else dtype.name
    return f"{name} ({kind})"


def open_error(source: object, error: OSError) -> InputError:
    """Turn an :class:`OSError` from opening/reading an input into an InputError."""
    if isinstance(error, FileNotFoundError):
        return InputError(source, "no such file")
    if isinstance(error, IsADirectoryError):
        return InputError(source, "is a directory")
    if isinstance(error, PermissionError):
        return InputError(source, "permission denied")
    if error.errno == errno.ENXIO:  # opening a socket (or a device without its driver)
        return InputError(source, "not a regular file")
    return InputError(source, (error.strerror or str(error)).strip() or type(error).__name__)


#: How inputs are opened: without waiting (opening a FIFO would wait for a writer),
#: never as the controlling terminal, not inherited by child processes.
_NONBLOCKING = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_OPEN_FLAGS = (os.O_RDONLY | _NONBLOCKING | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))


def nonblocking(path: str | os.PathLike[str], flags: int) -> int:
    """An ``opener`` for :func:`open` that never waits, for a FIFO's writer or a
    device: ``open(path, "rb", opener=nonblocking)``, then check ``os.fstat`` of the
    file (:func:`open_input` does both)."""
    return os.open(path, flags | _NONBLOCKING)


def read_bounded(path: str | os.PathLike[str], limit: int, *, what: str) -> bytes:
    """The whole of a small input file (a model, a prototxt), refused as
    :func:`open_input` refuses what is not a regular file, and when it holds more
    than ``limit`` bytes (checked before reading, and again by what was read:
    the file may grow meanwhile).  ``what`` names the kind of file in messages."""
    fd, st = open_input(path, path)
    with os.fdopen(fd, "rb") as f:
        if st.st_size > limit:
            raise InputError(path, f"{st.st_size} bytes is over the limit of {limit} for "
                             f"{what} (set {MAX_BYTES_ENV} to raise it)")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise open_error(path, e) from None
    if len(data) > limit:
        raise InputError(path, f"over the limit of {limit} bytes for {what} (set "
                         f"{MAX_BYTES_ENV} to raise it)")
    return data


def open_input(path: str | os.PathLike[str], source: object) -> tuple[int, os.stat_result]:
    """Open an input file for reading; refuse anything but a regular file, at once.

    The file is opened without blocking and examined with ``fstat`` on the open
    descriptor: a FIFO, a device (``/dev/zero`` would be read for ever), a socket
    or a symlink to one is refused without being read, even when the path was
    swapped for it after an earlier check.  (``O_NONBLOCK`` has no effect on
    reading a regular file; see open(2).)

    Returns the descriptor, which the caller closes, and its ``os.fstat``.

    Raises
    ------
    InputError
        ``"not a regular file"``, ``"is a directory"``, ``"no such file"``, ...
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise open_error(source, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(source, "is a directory" if stat.S_ISDIR(st.st_mode)
                             else "not a regular file")
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise open_error(source, e) from None
        raise
    return fd, st


@dataclass(frozen=True)
class NpyHeader:
    """A checked ``.npy`` header.

    Attributes
    ----------
    version : tuple of int
        Format version, ``(1, 0)``, ``(2, 0)`` or ``(3, 0)``.
    shape : tuple of int
    dtype : numpy.dtype
        As stored (may be big-endian).
    fortran_order : bool
    offset : int
        Bytes before the data (magic + header).
    """

    version: tuple[int, int]
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def nbytes(self) -> int:
        """Size of the data that follows the header."""
        n = self.dtype.itemsize
        for s in self.shape:
            n *= s
        return n


def _read_up_to(fp: BinaryIO, n: int) -> bytes:
    """Read `n` bytes, fewer only at end of file (handles short reads)."""
    chunks = []
    left = n
    while left > 0:
        chunk = fp.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_HEADER_LOCK = threading.Lock()

#: The header numpy writes for plain arrays, e.g.
#: ``{'descr': '<f4', 'fortran_order': False, 'shape': (96, 55, 55), }``.
#: Such headers are parsed here, without the lock and ``ast.literal_eval``
#: (about 50 µs, which matters over thousands of small files); anything else
#: goes to numpy's parser.
_PLAIN_HEADER = re.compile(
    rb"\{'descr': '([<>|=][biuf][1-9][0-9]?)', 'fortran_order': (True|False), "
    rb"'shape': \(((?:(?:0|[1-9][0-9]*), )*(?:0|[1-9][0-9]*),?)?\), \} *\n"
)


def _parse_plain(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    """``(shape, fortran_order, dtype)`` of a plain numpy header, else None."""
    m = _PLAIN_HEADER.fullmatch(header)
    if m is None:
        return None
    dims = m.group(3) or b""
    if dims and b"," not in dims:
        return None  # "(3)" is an int, not a shape: numpy's parser says so
    shape = tuple(int(d) for d in dims.split(b",") if d.strip())
    try:
        dtype = np.dtype(m.group(1).decode("ascii"))
    except TypeError:
        return None
    return shape, m.group(2) == b"True", dtype


def _parse_with_numpy(version: tuple[int, int], raw: bytes, source: object):
    """``(shape, fortran_order, dtype)`` by numpy's own header reader."""
    reader = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
    try:
        # One header at a time: numpy parses it with ast.literal_eval, and CPython
        # 3.11's AST construction is not thread-safe ("SystemError: AST constructor
        # recursion depth mismatch", python/cpython#106905); nor is catch_warnings.
        with _HEADER_LOCK, warnings.catch_warnings():
            # Python 2 era headers need extra filtering; numpy warns about it.
            warnings.simplefilter("ignore", UserWarning)
            return reader(io.BytesIO(raw), max_header_size=MAX_HEADER_BYTES)
    except Exception as e:  # the parser can raise anything (ValueError, MemoryError, ...)
        text = str(e)
        if not isinstance(e, ValueError) or text.startswith("malformed node"):
            text = "cannot parse the header text (expected a Python dict literal)"
        raise InputError(source, f"invalid .npy header: {_short(text)}") from None


def read_npy_header(
    fp: BinaryIO, *, source: object, max_bytes: int | None = None, metadata: bool = False
) -> NpyHeader:
    """Read and check a ``.npy`` header from the current position of `fp`.

    Reads exactly the magic string and the header, nothing more, so `fp`
    may be a pipe; no memory proportional to the data is allocated.

    Parameters
    ----------
    fp : binary file object
        Positioned at the start of the ``.npy`` data.
    source : object
        Names the input in error messages.
    max_bytes : int, optional
        Size limit for the data (default: ``NORMCLI_MAX_BYTES`` or 2 GiB).
    metadata : bool, optional
        Also accept 0-d arrays and unicode strings (``dtype.kind == "U"``):
        the small fields of a saved-statistics file, never feature maps.

    Returns
    -------
    NpyHeader

    Raises
    ------
    InputError
        Bad magic, unsupported version, unparsable header, refused dtype,
        0-d or empty array, or data over the size limit.
    """
    limit = resolve_max_bytes(max_bytes)
    magic = _read_up_to(fp, npformat.MAGIC_LEN)
    if not magic:
        raise InputError(source, "not a .npy file (empty)")
    if len(magic) < npformat.MAGIC_LEN or not magic.startswith(_MAGIC_PREFIX):
        raise InputError(source, "not a .npy file (bad magic)")
    version = npformat.read_magic(io.BytesIO(magic))
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise InputError(
            source,
            f"unsupported .npy format version {version[0]}.{version[1]} (supported: 1.0, 2.0, 3.0)",
        )
    fmt = "<H" if version == (1, 0) else "<I"
    size_bytes = _read_up_to(fp, struct.calcsize(fmt))
    if len(size_bytes) < struct.calcsize(fmt):
        raise InputError(source, "truncated: file ends inside the .npy header")
    (header_len,) = struct.unpack(fmt, size_bytes)
    if header_len > MAX_HEADER_BYTES:
        raise InputError(
            source, f"invalid .npy header: length {header_len} is over {MAX_HEADER_BYTES} bytes"
        )
    header = _read_up_to(fp, header_len)
    if len(header) < header_len:
        raise InputError(
            source,
            f"truncated: file ends inside the .npy header "
            f"({len(header)} of {header_len} header bytes)",
        )
    if version == (3, 0):
        # Version 3 only differs from 2 by allowing UTF-8 (for structured
        # field names, which are refused anyway): parse ASCII headers as 2.0.
        try:
            header.decode("ascii")
        except UnicodeDecodeError:
            raise InputError(
                source,
                "invalid .npy header: non-ASCII text (only structured dtypes need it, "
                f"and only {_ALLOWED_TEXT} are supported)",
            ) from None
        version = (2, 0)
    parsed = _parse_plain(header)
    if parsed is None:
        parsed = _parse_with_numpy(version, size_bytes + header, source)
    shape, fortran_order, dtype = parsed
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
        raise InputError(
            source,
            f"invalid .npy header: shape {_short(repr(shape), 80)} must be non-negative ints",
        )
    if len(shape) > MAX_DIMS:
        raise InputError(source, f"invalid .npy header: {len(shape)} dimensions "
                         f"(numpy allows at most {MAX_DIMS})")
    kinds = ALLOWED_KINDS + ("U" if metadata else "")
    if dtype.kind not in kinds or dtype.names is not None or dtype.subdtype is not None:
        raise InputError(
            source, f"unsupported dtype {describe_dtype(dtype)}; allowed: {_ALLOWED_TEXT}"
        )
    hdr = NpyHeader(
        version=version,
        shape=tuple(shape),
        dtype=dtype,
        fortran_order=fortran_order,
        offset=npformat.MAGIC_LEN + len(size_bytes) + header_len,
    )
    if len(shape) == 0 and not metadata:
        raise InputError(source, "0-d array (a single scalar); need at least 1 dimension")
    if 0 in shape:
        raise InputError(source, f"empty array (shape {hdr.shape}); need at least one element")
    if hdr.nbytes > limit:
        raise InputError(
            source,
            f"array of shape {_short(repr(hdr.shape), 80)} {dtype.name} needs {hdr.nbytes} bytes, "
            f"over the limit of {limit} (set {MAX_BYTES_ENV} to raise it)",
        )
    return hdr


def _readinto_exact(fp: BinaryIO, buf: memoryview) -> int:
    """Fill `buf` from `fp`; return the number of bytes read (short at EOF)."""
    got = 0
    total = len(buf)
    readinto = getattr(fp, "readinto", None)
    while got < total:
        if readinto is not None:
            n = readinto(buf[got:])
        else:
            chunk = fp.read(min(total - got, 1 << 24))
            n = len(chunk)
            buf[got : got + n] = chunk
        if not n:
            break
        got += n
    return got


def _finish(raw: np.ndarray, hdr: NpyHeader) -> np.ndarray:
    """Turn the raw bytes into a native-endian C-contiguous array."""
    if hdr.dtype.kind == "b":
        # Bytes other than 0/1 would make an invalid numpy bool: normalise.
        flat = raw != 0
    else:
        flat = raw.view(hdr.dtype)
        if not hdr.dtype.isnative:
            flat.byteswap(inplace=True)
            flat = flat.view(hdr.dtype.newbyteorder("="))
    arr = flat.reshape(hdr.shape, order="F" if hdr.fortran_order else "C")
    # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def _check_length(source: object, claimed: int, have: int, *, known: bool = True) -> None:
    """The one check that the data after a header are exactly as long as it claims.

    ``have`` is the number of data bytes found: from the file's size, or counted
    while reading (a file that shrinks meanwhile comes out short).  ``known=False``
    for a stream read one byte past the claimed size, which cannot tell how much
    more it holds.
    """
    claims = f"header claims {claimed} bytes of data"
    if have < claimed:
        raise InputError(source, f"truncated: {claims}, file has {have}")
    if have > claimed:
        raise InputError(source, f"trailing data: {claims}, "
                         + (f"file has {have}" if known else "the input has more"))


def _read_data(fp: BinaryIO, hdr: NpyHeader, buf: memoryview, source: object) -> None:
    """Fill ``buf`` (``hdr.nbytes`` long) with the data that follow the header in `fp`."""
    _check_length(source, hdr.nbytes, _readinto_exact(fp, buf))


def read_npy_stream(
    stream: BinaryIO,
    *,
    source: object = "<stdin>",
    max_bytes: int | None = None,
    metadata: bool = False,
) -> np.ndarray:
    """Read one ``.npy`` array from a (possibly non-seekable) binary stream.

    The header is read and checked first; then exactly the claimed number of
    bytes is read.  The stream must end right after them.

    Parameters
    ----------
    stream : binary file object
        E.g. ``sys.stdin.buffer`` or a member opened from a zip file.
    source : object, optional
        Names the input in error messages.
    max_bytes : int, optional
        Size limit for the data (default: ``NORMCLI_MAX_BYTES`` or 2 GiB).

    Returns
    -------
    numpy.ndarray
        Native-endian, C-contiguous.

    Raises
    ------
    InputError
        See :func:`read_npy_header`; also ``"truncated: ..."`` when the
        stream ends early and ``"trailing data ..."`` when it has extra bytes.
    """
    try:
        hdr = read_npy_header(stream, source=source, max_bytes=max_bytes, metadata=metadata)
        raw = np.empty(hdr.nbytes, dtype=np.uint8)
        _read_data(stream, hdr, memoryview(raw), source)
        _check_length(source, hdr.nbytes, hdr.nbytes + len(stream.read(1)), known=False)
    except OSError as e:
        raise open_error(source, e) from None
    return _finish(raw, hdr)


def read_npy(
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    mmap: bool = False,
    source: object = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read a ``.npy`` file, refusing pickles, odd dtypes and bad sizes.

    Parameters
    ----------
    path : path-like
    max_bytes : int, optional
        Size limit for the data (default: ``NORMCLI_MAX_BYTES`` or 2 GiB).
    mmap : bool, optional
        Map the file read-only instead of reading it (after the same
        checks).  The array is then returned **as stored**: it may be
        big-endian or Fortran-ordered, it is read-only, and a bool array is
        not normalised to 0/1.
    source : object, optional
        Names the input in error messages (default: `path`).
    out : numpy.ndarray, optional
        A C-contiguous buffer to read into, reused across files: when the
        data are native-endian, C-ordered numbers of ``out.dtype`` and fill
        ``out`` exactly, they are read straight into it (no allocation, no
        page faults) and the result is a view of `out`.  Other files are
        read as without `out`.  Takes precedence over `mmap`.

    Returns
    -------
    numpy.ndarray
        Native-endian and C-contiguous (unless `mmap`).

    Raises
    ------
    InputError
        See :func:`read_npy_header`; also ``"no such file"``,
        ``"truncated: header claims N bytes of data, file has M"`` and
        ``"trailing data: ..."``.
    """
    source = path if source is None else source
    fd, st = open_input(path, source)
    try:
        with os.fdopen(fd, "rb") as fp:
            hdr = read_npy_header(fp, source=source, max_bytes=max_bytes)
            _check_length(source, hdr.nbytes, st.st_size - hdr.offset)
            if out is not None and _fills(out, hdr):
                _read_data(fp, hdr, memoryview(out.reshape(-1).view(np.uint8)), source)
                return out.reshape(hdr.shape)
            if mmap and hdr.dtype.kind != "b":  # bools are normalised to 0/1: read them
                return np.memmap(  # this very file: the map outlives the descriptor
                    fp,
                    dtype=hdr.dtype,
                    mode="r",
                    offset=hdr.offset,
                    shape=hdr.shape,
                    order="F" if hdr.fortran_order else "C",
                )
            raw = np.empty(hdr.nbytes, dtype=np.uint8)
            _read_data(fp, hdr, memoryview(raw), source)
    except OSError as e:
        raise open_error(source, e) from None
    return _finish(raw, hdr)


def read_npy_into(
    path: str | os.PathLike[str],
    out: np.ndarray | None,
    *,
    max_bytes: int | None = None,
    mmap: bool = False,
    source: object = None,
) -> tuple[np.ndarray, os.stat_result]:
    """:func:`read_npy` with ``out``, in as few system calls as possible, and the
    ``os.fstat`` of the file that was read (to tell later whether it changed).

    Reading thousands of small files, each system call is a few microseconds
    and lets another thread take the GIL: this opens the file, reads its first
    4 KiB (the header), checks its size, reads the data into ``out`` and
    closes it; five calls where Python's buffered file objects make about ten.
    Files whose data do not fit ``out`` (or whose header is longer) go through
    :func:`read_npy`, with the same checks and messages.
    """
    source = path if source is None else source
    if not _POSITIONAL_READS:  # (Windows): the portable reader, then the file's state
        arr = read_npy(path, max_bytes=max_bytes, mmap=mmap, source=source, out=out)
        try:
            return arr, os.stat(path)
        except OSError as e:
            raise open_error(source, e) from None
    try:  # open_input(), inline: this is the per-file path of streamed runs
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise open_error(source, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(source, "is a directory" if stat.S_ISDIR(st.st_mode)
                             else "not a regular file")
        head = os.pread(fd, _HEAD_BYTES, 0)
        if out is None or len(head) < _header_end(head) < st.st_size:
            return read_npy(path, max_bytes=max_bytes, mmap=mmap, source=source, out=out), st
        hdr = read_npy_header(io.BytesIO(head), source=source, max_bytes=max_bytes)
        have = st.st_size - hdr.offset
        if have != hdr.nbytes or not _fills(out, hdr):  # read_npy names the problem
            return read_npy(path, max_bytes=max_bytes, mmap=mmap, source=source, out=out), st
        view = memoryview(out.reshape(-1).view(np.uint8))
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], hdr.offset + got)
            if not n:  # the file shrank while we read it
                break
            got += n
        if got != hdr.nbytes:
            _check_length(source, hdr.nbytes, got)
        return out.reshape(hdr.shape), st
    except OSError as e:
        raise open_error(source, e) from None
    finally:
        os.close(fd)


#: How much of a file :func:`read_npy_into` reads for the header.
_HEAD_BYTES = 4096
#: os.pread and os.preadv exist on Linux, the BSDs and macOS, not on Windows.
_POSITIONAL_READS = hasattr(os, "pread") and hasattr(os, "preadv")


def _header_end(head: bytes) -> int:
    """Where the header that starts ``head`` ends (0 if ``head`` cannot tell)."""
    if len(head) < 12 or not head.startswith(_MAGIC_PREFIX):
        return 0
    if head[6] == 1:
        return 10 + int.from_bytes(head[8:10], "little")
    return 12 + int.from_bytes(head[8:12], "little")


def _fills(out: np.ndarray, hdr: NpyHeader) -> bool:
    """Whether the data of `hdr` can be read as they are into `out`."""
    return (out.flags.c_contiguous and out.flags.writeable and out.dtype == hdr.dtype
            and hdr.dtype.isnative and hdr.dtype.kind != "b" and out.nbytes == hdr.nbytes
            and (not hdr.fortran_order or sum(s > 1 for s in hdr.shape) <= 1))


# ----------------------------------------------------------------- writing


def _check_writable(arr: object, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.hasobject:
        raise ValueError(f"{what}: cannot write an array of dtype object")
    return a


def write_npy_stream(stream: BinaryIO, arr: np.ndarray) -> None:
    """Write `arr` as ``.npy`` to a binary stream such as ``sys.stdout.buffer``.

    Works on pipes (no seeking, no ``tofile``).  Errors from the stream
    propagate unchanged (so a caller can treat :class:`BrokenPipeError`
    specially).

    Parameters
    ----------
    stream : binary file object
    arr : numpy.ndarray
        Any non-object array; written with ``allow_pickle=False``.
    """
    _write_array(stream, _check_writable(arr, "write_npy_stream"))
    stream.flush()


def _write_array(fp: BinaryIO, a: np.ndarray) -> None:
    """The header, then the data, through ``fp.write`` (one ``os.writev`` for an
    unbuffered ``io.FileIO``).

    numpy's ``write_array`` uses ``ndarray.tofile`` on real files (which needs
    a seekable descriptor, and whose short-write error has no errno, so a full
    disk could not be reported as "No space left on device"), and copies
    chunks through ``tobytes`` otherwise.  A C-contiguous array is written
    straight from its memory instead.
    """
    if not a.flags.c_contiguous:
        npformat.write_array(_WriteOnly(fp), a, allow_pickle=False)
        return
    header = io.BytesIO()
    npformat.write_array_header_1_0(header, npformat.header_data_from_array_1_0(a))
    chunks = [header.getbuffer(), memoryview(a.reshape(-1).view(np.uint8))]
    if isinstance(fp, io.FileIO) and hasattr(os, "writev"):  # unbuffered: one system call
        done = os.writev(fp.fileno(), chunks)
        starts = (0, len(chunks[0]))
        chunks = [c[max(0, done - start):] for c, start in zip(chunks, starts, strict=True)
                  if done - start < len(c)]
    for chunk in chunks:  # what is left (a raw stream may write less; None: nothing)
        done = 0
        while done < len(chunk):
            done += fp.write(chunk[done:]) or 0


class _WriteOnly:
    """Expose only ``write`` so numpy never calls ``tofile`` on a pipe; each write
    is completed (numpy ignores what a raw stream's short write returns)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):
            done += self._stream.write(view[done:]) or 0
        return done


def write_npy(fp: BinaryIO, arr: np.ndarray) -> None:
    """Write `arr` in ``.npy`` format to an open binary file (no pickles)."""
    _write_array(fp, _check_writable(arr, "write_npy"))


# The .npz functions lived here until they moved to normcli.files.npz; code that
# imports them from here still finds them (imported on first use: npz imports npy).
_MOVED_TO_NPZ = ("npz_members", "read_npz_member", "write_npz")


def __getattr__(name: str):
    if name in _MOVED_TO_NPZ:
        from normcli.files import npz

        return getattr(npz, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
