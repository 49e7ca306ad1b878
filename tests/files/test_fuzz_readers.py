"""Fuzzing the readers: mutated .npy, .npz and PNG files (hypothesis).

Every input, however broken, must either load as a sane array (bool, integer
or float; native-endian; C-contiguous; within the size limit) or raise
:class:`normcli.errors.InputError` with a one-line message naming the file.
Anything else - another exception, a MemoryError, a hang - is a bug.

The mutations are structure-aware where blind flipping would stop at the
first checksum: PNG chunks are re-checksummed after a mutation (so the
decoder sees the damage), ``.npz`` members are re-zipped after their bytes
are mutated, and ``.npy`` headers are rewritten from lists of exotic values
(object, complex, structured, datetime, string, float128, float16, ``>i8``;
negative, huge and non-integer shapes; Fortran order; non-dict headers).

A longer random run of the same idea is ``tools/fuzz_atheris.py``.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat
from PIL import Image

from normcli.errors import InputError
from normcli.files import encode_png, expand_inputs, read_npy, read_npy_stream
from normcli.files import npz as npzmod
from normcli.files.npy import read_npy_into

#: Bad inputs tried, by kind; reported at the end of the module (see _report_counts).
COUNTS: Counter[str] = Counter()
LIMIT = 1 << 20  # bytes: small, so a mutated size is refused rather than allocated
SLOW = 5.0  # seconds: one input taking longer than this counts as a hang
FUZZ = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------ seeds


def npy_bytes(arr: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    npformat.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


def npy_with_header(text: str | bytes, data: bytes = b"", version=(1, 0)) -> bytes:
    """A .npy file with a hand-written header (padded as numpy pads it)."""
    h = text.encode("latin-1") if isinstance(text, str) else text
    prefix = 10 if version == (1, 0) else 12
    h = h + b" " * ((-(prefix + len(h) + 1)) % 64) + b"\n"
    size = struct.pack("<H" if version == (1, 0) else "<I", len(h) % (1 << 32))
    return b"\x93NUMPY" + bytes(version) + size + h + data


def zip_bytes(members: dict[str, bytes], deflate: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def pil_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


_rng = np.random.default_rng(7)
NPY_SEEDS = [
    npy_bytes(_rng.standard_normal((2, 3, 4)).astype(np.float32)),
    npy_bytes(np.asfortranarray(np.arange(24, dtype=">i8").reshape(2, 3, 4))),
    npy_bytes(np.array([[True, False], [False, True]])),
    npy_bytes(_rng.integers(0, 255, (3, 5, 5), dtype=np.uint8)),
    npy_bytes(np.linspace(-2, 2, 12, dtype=np.float16).reshape(3, 4)),
    npy_bytes(np.arange(6.0).reshape(1, 2, 3), version=(2, 0)),
    npy_bytes(np.arange(6.0).reshape(1, 2, 3), version=(3, 0)),
]
PNG_SEEDS = [
    encode_png(_rng.integers(0, 255, (5, 7), dtype=np.uint8)),
    encode_png(_rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)),
    encode_png(_rng.integers(0, 65535, (4, 5), dtype=np.uint16)),
    encode_png(_rng.integers(0, 65535, (3, 4, 3), dtype=np.uint16)),
    encode_png(_rng.integers(0, 65535, (3, 4, 4), dtype=np.uint16)),
    encode_png(_rng.integers(0, 65535, (3, 4, 2), dtype=np.uint16)),
    pil_png(Image.new("P", (6, 4), 3)),
    pil_png(Image.new("1", (9, 3), 1)),
    pil_png(Image.new("RGBA", (3, 3), (1, 2, 3, 4))),
]

# Exotic header values: dtypes normcli must refuse (or accept, for the plain
# ones), shapes it must refuse, and header texts that are not a dict at all.
DESCRS = [
    "'|O'", "'<c16'", "'<c8'", "[('a', '<i4')]", "[('a', '<f8'), ('b', '|O')]",
    "'<M8[s]'", "'<m8[ns]'", "'<U4'", "'|S4'", "'|V8'", "'<f16'", "'<g'", "'>f16'",
    "'<f2'", "'>i8'", "'<i8'", "'|b1'", "'|u1'", "'>f4'", "('<i4', (2,))", "'bogus'",
    "'<f3'", "3", "None", "{'names': ['a'], 'formats': ['<i4']}", "'T'", "'<q'", "'?'",
]
SHAPES = [
    "(2,)", "(2, 3)", "(10**12,)", "(1000000000000,)", "(-1,)", "(2, -3)", "()", "(0,)",
    "(3, 0)", "(1e3,)", "(True,)", "(2**63,)", "(2**64, 2**64)", "[2]", "'x'", "(1,) * 40",
    "(1,) * 70", "(4294967296, 4294967296)", "(None,)", "(2.0,)", "((2,),)",
    "(" + "1, " * 64 + ")", "(" + "1, " * 65 + ")", "(" + "1, " * 200 + ")",  # numpy: <= 64
]
FORTRAN = ["False", "True", "1", "0", "'yes'", "None"]
HEADER_TEXTS = [
    "[1, 2]", "1", "{}", "{'descr': '<i4'}", "lambda: 0", "__import__('os')",
    "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
    "(" * 3000, "{'a': " * 200, "\xff\xfe", "{'descr': '<i4', 'fortran_order': False, "
    "'shape': (1,)}\x00", "{'descr': b'<i4', 'fortran_order': False, 'shape': (1,)}",
    "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), 'descr': '|O'}",
]


# -------------------------------------------------------------- mutations


@st.composite
def byte_mutations(draw, data: bytes, max_ops: int = 4) -> bytes:
    """Flip, overwrite, insert, delete, duplicate bytes or truncate."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and b:
            b[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01, 0x20, 0x27, 0x28]))
        elif op == "insert":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del b[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del b[pos:]
        elif op == "dup":
            b[pos:pos] = b[pos : pos + draw(st.integers(1, 32))]
    return bytes(b)


@st.composite
def _bad_npy(draw) -> bytes:
    """A mutated or rewritten .npy file."""
    how = draw(st.sampled_from(["bytes", "header", "text", "data"]))
    if how == "bytes":
        COUNTS["npy: mutated bytes"] += 1
        return draw(byte_mutations(draw(st.sampled_from(NPY_SEEDS))))
    if how == "header":
        COUNTS["npy: exotic header"] += 1
        descr, fortran = draw(st.sampled_from(DESCRS)), draw(st.sampled_from(FORTRAN))
        shape = draw(st.sampled_from(SHAPES))
        text = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
        data = b"\x00" * draw(st.sampled_from([0, 1, 7, 8, 16, 48, 4096]))
        version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0)]))
        return npy_with_header(text, data, version)
    if how == "text":
        COUNTS["npy: non-dict header"] += 1
        version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0), (4, 0), (0, 9)]))
        return npy_with_header(draw(st.sampled_from(HEADER_TEXTS)), b"\x00" * 8, version)
    # right header, wrong amount of data
    COUNTS["npy: wrong data size"] += 1
    seed = draw(st.sampled_from(NPY_SEEDS))
    cut = draw(st.integers(-40, 40))
    return seed[:cut] if cut < 0 else seed + b"\x01" * cut


def _lie_about_size(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size of every member in the local and central headers."""
    b = bytearray(data)
    packed = struct.pack("<I", size & 0xFFFFFFFF)
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (i := b.find(sig, start)) >= 0:
            b[i + off : i + off + 4] = packed
            start = i + 4
    return bytes(b)


@st.composite
def _bad_npz(draw) -> bytes:
    """A .npz whose members are mutated, exotic, not arrays, or bombs."""
    how = draw(st.sampled_from(["member", "bytes", "names", "bomb", "lie"]))
    deflate = draw(st.booleans())
    if how == "member":
        COUNTS["npz: mutated member"] += 1
        member = draw(st.one_of(bad_npy(), st.sampled_from(NPY_SEEDS)))
        return zip_bytes({"a.npy": NPY_SEEDS[0], "b.npy": member}, deflate)
    if how == "bytes":
        COUNTS["npz: mutated zip bytes"] += 1
        seed = zip_bytes({"a.npy": NPY_SEEDS[0], "b.npy": NPY_SEEDS[1]}, deflate)
        return draw(byte_mutations(seed, max_ops=3))
    if how == "names":
        COUNTS["npz: members that are not arrays"] += 1
        names = draw(
            st.sampled_from(
                [
                    {"a.txt": b"hello"},
                    {"a.npy": NPY_SEEDS[0], "notes": b"x"},
                    {"dir/": b""},
                    {"../evil.npy": NPY_SEEDS[0]},
                    {"/abs.npy": NPY_SEEDS[0]},
                    {".npy": NPY_SEEDS[0]},
                    {"pickle.npy": b"\x80\x04\x95" + b"\x00" * 20},
                    {"x.npy": b""},
                    {},
                ]
            )
        )
        return zip_bytes(names, deflate)
    if how == "bomb":
        # A header claiming 256 MiB of zeros, deflated to a few hundred KiB.
        COUNTS["npz: zip bomb"] += 1
        header = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (33554432,), }")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open("bomb.npy", "w", force_zip64=True) as f:
                f.write(header)
                chunk = b"\x00" * (1 << 22)
                for _ in range(64):
                    f.write(chunk)
        return buf.getvalue()
    # a directory that lies about the uncompressed size
    COUNTS["npz: lying sizes"] += 1
    seed = zip_bytes({"a.npy": NPY_SEEDS[draw(st.integers(0, len(NPY_SEEDS) - 1))]}, deflate)
    return _lie_about_size(seed, draw(st.sampled_from([0, 1, 100, 2**31, 2**32 - 1])))


_BOMB_CACHE: dict[str, bytes] = {}


def _cached(name: str, make) -> bytes:
    if name not in _BOMB_CACHE:
        _BOMB_CACHE[name] = make()
    return _BOMB_CACHE[name]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a (valid) PNG into (type, payload) pairs."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def png_join(chunks: list[tuple[bytes, bytes]], bad_crc: int | None = None) -> bytes:
    parts = [b"\x89PNG\r\n\x1a\n"]
    for i, (ctype, payload) in enumerate(chunks):
        crc = zlib.crc32(ctype + payload) ^ (1 if i == bad_crc else 0)
        parts.append(struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc))
    return b"".join(parts)


@st.composite
def _bad_png(draw) -> bytes:
    """A PNG with flipped bytes, rewritten IHDR, bad CRCs, truncated IDAT, bombs..."""
    seed = draw(st.sampled_from(PNG_SEEDS))
    chunks = png_chunks(seed)
    how = draw(
        st.sampled_from(["bytes", "recrc", "ihdr", "crc", "idat", "chunks", "bomb", "inflate"])
    )
    if how == "bytes":
        COUNTS["png: mutated bytes"] += 1
        return draw(byte_mutations(seed))
    if how == "recrc":
        # damage a chunk's payload but keep its CRC right: the decoder sees it
        COUNTS["png: mutated chunk, valid CRC"] += 1
        i = draw(st.integers(0, len(chunks) - 1))
        ctype, payload = chunks[i]
        chunks[i] = (ctype, draw(byte_mutations(payload, max_ops=3)))
        return png_join(chunks)
    if how == "ihdr":
        COUNTS["png: rewritten IHDR"] += 1
        w, h, depth, colour, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
        w = draw(st.sampled_from([w, 0, 1, 100000, 2**31 - 1, 2**31, 2**32 - 1]))
        h = draw(st.sampled_from([h, 0, 1, 100000, 2**31 - 1, 2**32 - 1]))
        depth = draw(st.sampled_from([depth, 1, 2, 4, 8, 16, 0, 3, 32]))
        colour = draw(st.sampled_from([colour, 0, 2, 3, 4, 6, 1, 5, 7]))
        comp = draw(st.sampled_from([comp, comp, 1]))
        filt = draw(st.sampled_from([filt, filt, 1]))
        inter = draw(st.sampled_from([inter, inter, 1, 2]))
        chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, comp, filt, inter))
        return png_join(chunks)
    if how == "crc":
        COUNTS["png: bad CRC"] += 1
        return png_join(chunks, bad_crc=draw(st.integers(0, len(chunks) - 1)))
    if how == "idat":
        COUNTS["png: truncated IDAT"] += 1
        i = next(j for j, c in enumerate(chunks) if c[0] == b"IDAT")
        payload = chunks[i][1]
        chunks[i] = (b"IDAT", payload[: draw(st.integers(0, max(len(payload) - 1, 0)))])
        if draw(st.booleans()):  # and sometimes the file itself ends there
            return png_join(chunks)[: draw(st.integers(8, len(seed)))]
        return png_join(chunks)
    if how == "chunks":
        COUNTS["png: chunks dropped/duplicated/huge"] += 1
        op = draw(st.sampled_from(["drop", "dup", "huge", "swap", "unknown"]))
        i = draw(st.integers(0, len(chunks) - 1))
        if op == "drop":
            del chunks[i]
        elif op == "dup":
            chunks.insert(i, chunks[i])
        elif op == "swap" and i + 1 < len(chunks):
            chunks[i], chunks[i + 1] = chunks[i + 1], chunks[i]
        elif op == "unknown":
            chunks.insert(max(i, 1), (draw(st.sampled_from([b"tEXt", b"zzZz", b"IHDR", b"PLTE",
                                                             b"tRNS"])), b"\x00" * 5))
        data = png_join(chunks)
        if op == "huge":  # a chunk claiming 2 GiB or more
            pos = 33
            length = draw(st.sampled_from([2**31 - 1, 2**31, 2**32 - 1]))
            data = data[:pos] + struct.pack(">I", length) + data[pos + 4:]
        return data
    if how == "bomb":
        # 10000 x 10000 gray: 100 MB of pixels from ~100 KB of IDAT
        COUNTS["png: decompression bomb"] += 1

        def make() -> bytes:
            ihdr = struct.pack(">IIBBBBB", 10000, 10000, 8, 0, 0, 0, 0)
            raw = zlib.compress(b"\x00" * (10001 * 10000), 9)
            return png_join([(b"IHDR", ihdr), (b"IDAT", raw), (b"IEND", b"")])

        return _cached("bomb", make)
    # a small image whose IDAT inflates to far more than it needs
    COUNTS["png: over-long IDAT"] += 1
    w, h = struct.unpack(">II", chunks[0][1][:8])
    extra = _cached("inflate", lambda: zlib.compress(b"\x00" * (64 << 20), 9))
    return png_join([chunks[0], (b"IDAT", extra), (b"IEND", b"")])


class Blob(bytes):
    """File contents with a short repr, for readable falsifying examples."""

    def __repr__(self) -> str:
        head = bytes(self[:48])
        return f"Blob({head!r}{'...' if len(self) > 48 else ''}, {len(self)} bytes)"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis's pretty-printer
        printer.text(repr(self))


def bad_npy() -> st.SearchStrategy[Blob]:
    return _bad_npy().map(Blob)


def bad_npz() -> st.SearchStrategy[Blob]:
    return _bad_npz().map(Blob)


def bad_png() -> st.SearchStrategy[Blob]:
    return _bad_png().map(Blob)


# ------------------------------------------------------------------ checks


def fast_tmpdir() -> str | None:
    """A RAM-backed folder when there is one: thousands of small writes stay fast."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="normcli-fuzz-", dir=fast_tmpdir()) as d:
        yield Path(d)


def check_loads_or_refuses(path: Path, label: str | None = None) -> list[np.ndarray]:
    """Expand and load `path`: sane arrays, or one InputError naming it."""
    label = str(path) if label is None else label
    start = time.perf_counter()
    arrays = []
    try:
        for source in expand_inputs([path]):
            arr = source.load(max_bytes=LIMIT)
            assert isinstance(arr, np.ndarray)
            assert arr.dtype.kind in "biuf", arr.dtype
            assert arr.dtype.isnative and arr.flags.c_contiguous
            assert arr.ndim >= 1 and arr.size >= 1
            assert arr.nbytes <= LIMIT
            arrays.append(arr)
    except InputError as e:
        message = str(e)
        assert "\n" not in message and "Traceback" not in message, message
        assert message.startswith(label), (label, message)
        assert len(message) < 600, message
        assert e.problem.strip(), message
        arrays = []
    elapsed = time.perf_counter() - start
    assert elapsed < SLOW, f"{path.name} took {elapsed:.1f} s"
    return arrays


@FUZZ
@given(data=bad_npy())
def test_npy_reader_survives(workdir, data):
    path = workdir / "fuzz.npy"
    path.write_bytes(data)
    arrays = check_loads_or_refuses(path)
    for mmap in (False, True):  # the mmap path checks the same header
        try:
            a = read_npy(path, max_bytes=LIMIT, mmap=mmap)
        except InputError:
            assert not arrays
            continue
        assert arrays
        if mmap:
            del a  # release the mapping before the file is rewritten
            continue
        # differential check against numpy's own (pickle-free) loader
        try:
            expected = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception:
            continue
        if expected.dtype.kind == "b":
            np.testing.assert_array_equal(a, expected.view(np.uint8) != 0)
        else:
            np.testing.assert_array_equal(a, expected)
    # the stream reader (stdin, .npz members) agrees with the file reader
    try:
        s = read_npy_stream(io.BytesIO(data), source=path, max_bytes=LIMIT)
    except InputError as e:
        assert not arrays, e
    else:
        assert arrays and np.array_equal(s, arrays[0], equal_nan=True)
    # so does the streamed batchnorm's reader, into a buffer of the right size or not
    for size in ({arrays[0].nbytes, 16} if arrays else {16}):
        out = np.empty(size, np.uint8)
        try:
            got, _ = read_npy_into(path, out.view(arrays[0].dtype) if arrays and
                                   size == arrays[0].nbytes else out, max_bytes=LIMIT)
        except InputError as e:
            assert not arrays, e
            assert "\n" not in str(e) and str(e).startswith(str(path))
        else:
            assert arrays and np.array_equal(np.asarray(got), arrays[0], equal_nan=True)


_NPZ_NAMES = itertools.count()


def zipfile_reads(path: Path, name: str) -> np.ndarray | None:
    """A member as zipfile itself reads it, with the same .npy checks (None: refused).
    The oracle for normcli's own member reader."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(name + ".npy")
            if info.flag_bits & 1 or info.file_size > LIMIT + (1 << 16) + 16:
                return None
            with zf.open(info) as fp:
                return read_npy_stream(fp, max_bytes=LIMIT)
    except (InputError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError, OSError):
        return None


@settings(FUZZ, max_examples=600)
@given(data=bad_npz())
def test_npz_reader_survives(workdir, data):
    """... and reads every member exactly as zipfile does, or refuses it where zipfile
    would; the one difference allowed: overlapping members, refused whatever zipfile
    (before Python 3.12) does."""
    path = workdir / "fuzz.npz"
    path.write_bytes(data)
    check_loads_or_refuses(path)  # just written: each member parses the directory
    # Now with the directory kept across members (a file of its own, so no
    # other example's directory can be taken for this one's).
    path = workdir / f"fuzz-{next(_NPZ_NAMES)}.npz"
    path.write_bytes(data)
    settled, npzmod.SETTLED_NS = npzmod.SETTLED_NS, -(1 << 62)
    try:
        sources = expand_inputs([path])
    except InputError:
        return
    finally:
        npzmod.SETTLED_NS = settled
    for source in sources:
        expected = zipfile_reads(path, source.member)
        try:
            got = source.load(max_bytes=LIMIT)
        except InputError as e:
            assert expected is None or "Overlapped entries" in str(e), (str(e), expected)
            continue
        assert expected is not None, source.label
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype


@FUZZ
@given(data=bad_png())
def test_png_reader_survives(workdir, data):
    path = workdir / "fuzz.png"
    path.write_bytes(data)
    arrays = check_loads_or_refuses(path)
    for arr in arrays:
        assert arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4)
        assert arr.dtype == np.float32 and 0.0 <= arr.min() and arr.max() <= 1.0


@settings(FUZZ, max_examples=300)
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".npy", ".npz", ".png"]))
def test_random_bytes_are_refused(workdir, data, suffix):
    COUNTS["random bytes"] += 1
    path = workdir / f"random{suffix}"
    path.write_bytes(data)
    check_loads_or_refuses(path)


@pytest.mark.parametrize(
    "descr",
    ["'|O'", "'<c16'", "[('a', '<i4')]", "'<M8[s]'", "'<m8[s]'", "'<U4'", "'|S4'", "'|V8'",
     "('<i4', (2,))"],
)
def test_exotic_dtypes_are_refused_by_name(workdir, descr):
    """Each refused dtype gets a message that says what it is and what is allowed."""
    COUNTS["npy: exotic header"] += 1
    path = workdir / "exotic.npy"
    path.write_bytes(
        npy_with_header(f"{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}",
                        b"\x00" * 64)
    )
    with pytest.raises(InputError, match="unsupported dtype .*allowed: bool"):
        read_npy(path)


@pytest.mark.parametrize("descr", ["'<f2'", "'>i8'", "'>f4'", "'|b1'", "'<g'"])
def test_plain_dtypes_in_any_byte_order_load(workdir, descr):
    dtype = np.dtype(eval(descr))  # noqa: S307 - a literal from the list above
    arr = (np.arange(6) % 2).astype(dtype).reshape(2, 3)
    for fortran in (False, True):
        path = workdir / "plain.npy"
        path.write_bytes(npy_bytes(np.asfortranarray(arr) if fortran else arr))
        out = read_npy(path)
        assert out.dtype.isnative and out.flags.c_contiguous
        np.testing.assert_array_equal(out, arr)


def test_pickle_is_never_loaded(workdir):
    """An object array saved with pickles: refused, and the pickle is never run."""
    marker = workdir / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    buf = io.BytesIO()
    np.save(buf, np.array([Evil()], dtype=object), allow_pickle=True)
    path = workdir / "evil.npy"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="pickled Python objects"):
        read_npy(path)
    npz = workdir / "evil.npz"
    npz.write_bytes(zip_bytes({"x.npy": buf.getvalue()}))
    check_loads_or_refuses(npz)
    assert not marker.exists()


def test_every_exotic_header_combination(workdir):
    """All DESCRS x SHAPES x fortran_order x data sizes, through the file and stream readers."""
    path = workdir / "grid.npy"
    for descr in DESCRS:
        for shape in SHAPES:
            for fortran in ("False", "True"):
                for size in (0, 8, 48):
                    COUNTS["npy: exotic header (grid)"] += 1
                    text = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
                    data = npy_with_header(text, b"\x00" * size)
                    path.write_bytes(data)
                    check_loads_or_refuses(path)
                    try:
                        read_npy_stream(io.BytesIO(data), source="s", max_bytes=LIMIT)
                    except InputError as e:
                        assert str(e).startswith("s: ") and "\n" not in str(e)


def test_rewritten_ihdr_sample(workdir):
    """A deterministic sample of IHDR rewrites (sizes, depths, colour types, interlace)."""
    rng = np.random.default_rng(2024)
    path = workdir / "ihdr.png"
    widths = [1, 3, 7, 100000, 2**31 - 1, 2**31, 2**32 - 1, 0]
    depths = [1, 2, 4, 8, 16, 0, 3, 32]
    colours = [0, 2, 3, 4, 6, 1, 5]
    for _ in range(600):
        seed = PNG_SEEDS[rng.integers(len(PNG_SEEDS))]
        chunks = png_chunks(seed)
        fields = (int(rng.choice(widths)), int(rng.choice(widths)), int(rng.choice(depths)),
                  int(rng.choice(colours)), 0, 0, int(rng.choice([0, 0, 1, 2])))
        chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", *fields))
        COUNTS["png: rewritten IHDR (sample)"] += 1
        path.write_bytes(png_join(chunks))
        check_loads_or_refuses(path)


def test_png_seeds_with_a_smaller_ihdr_or_no_plte_are_refused(workdir):
    """Each seed with one row or one column fewer in IHDR than its data hold, and
    each palette seed without its PLTE: refused (Pillow read them).  (A column fewer
    may need as many bytes: 6 or 5 pixels of 1 bit both take a byte.)"""
    from normcli.files import read_png
    from normcli.files.pngcodec import image_data_size, read_header

    path = workdir / "rows.png"
    for seed in PNG_SEEDS:
        chunks = png_chunks(seed)
        w, h, *rest = struct.unpack(">IIBBBBB", chunks[0][1])
        for width, height in [(w, h - 1), (w - 1, h)]:
            ihdr = (b"IHDR", struct.pack(">IIBBBBB", width, height, *rest))
            data = png_join([ihdr, *chunks[1:]])
            if not width or not height or image_data_size(read_header(data)) == \
                    image_data_size(read_header(seed)):
                continue
            COUNTS["png: IHDR smaller than the data"] += 1
            path.write_bytes(data)
            with pytest.raises(InputError, match="more data than the header allows"):
                read_png(path)
        if rest[1] == 3:
            COUNTS["png: palette without PLTE"] += 1
            path.write_bytes(png_join([c for c in chunks if c[0] != b"PLTE"]))
            with pytest.raises(InputError, match="palette image without a PLTE chunk"):
                read_png(path)


def test_npz_member_with_an_empty_name(workdir):
    """Found by tools/fuzz_atheris.py: ZipInfo.is_dir() raised IndexError on an empty name."""
    COUNTS["npz: members that are not arrays"] += 1
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo(""), NPY_SEEDS[0])
    path = workdir / "empty-name.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="not a .npy array"):
        expand_inputs([path])


# --------------------------------------------------------- special files

#: Paths that are not regular files, as an attacker plants them.
SPECIAL = ["fifo", "symlink to /dev/zero", "/dev/null", "symlink to /dev/null", "socket",
           "directory"]


def _special(path: Path, kind: str) -> Path:
    """Make ``path`` a special file of ``kind`` (return /dev/null for that kind)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()  # the socket file stays
    elif kind == "directory":
        path.mkdir()
    elif kind == "/dev/null":
        return Path("/dev/null")
    else:
        path.symlink_to(kind.rsplit(" ", 1)[1])
    return path


def _readers(suffix: str):
    """Every way normcli reads a file of type ``suffix``."""
    from normcli.files import npz_members, read_layers, read_npz_member, read_png

    return {
        ".onnx": [read_layers], ".prototxt": [read_layers],
        ".npy": [read_npy, lambda p: read_npy(p, mmap=True),
                 lambda p: read_npy_into(p, np.empty(4, np.float32)),
                 lambda p: read_npy_into(p, None)],
        ".npz": [npz_members, lambda p: read_npz_member(p, "a"),
                 lambda p: read_npz_member(p, "mean", metadata=True)],
        ".png": [read_png, lambda p: read_png(p, raw=True)],
    }[suffix]


def _without_hanging(read, path: Path, timeout: float = 10.0):
    """``read(path)``'s exception (None if it returned); a call still blocked after
    ``timeout`` seconds fails the test (after unblocking it, if it waits on a FIFO)."""
    import threading

    outcome = []

    def call():
        try:
            read(path)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - reported below
            outcome.append(e)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if path.is_fifo():  # let the blocked open() return
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"reading {path} did not return within {timeout} s")
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
@pytest.mark.parametrize("kind, suffix", [
    (kind, suffix) for kind in SPECIAL for suffix in (".npy", ".npz", ".png", ".onnx", ".prototxt")
    if kind != "/dev/null" or suffix in (".npy", ".npz", ".png")])  # (a model: by its suffix)
def test_readers_refuse_what_is_not_a_regular_file(tmp_path, kind, suffix):
    """A FIFO would block the open for ever and /dev/zero be read for ever: every
    reader refuses them at once, with one line naming the path."""
    path = _special(tmp_path / f"special{suffix}", kind)
    for read in _readers(suffix):
        COUNTS[f"special file: {kind}"] += 1
        error = _without_hanging(read, path)
        assert isinstance(error, InputError), repr(error)
        problem = "is a directory" if kind == "directory" else "not a regular file"
        assert str(error) in (f"{path}: {problem}", f"{path}:a: {problem}",
                              f"{path}:mean: {problem}"), str(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".png"])
@pytest.mark.parametrize("kind", ["fifo", "symlink to /dev/zero"])
def test_input_swapped_for_a_special_file_after_listing(tmp_path, kind, suffix):
    """expand_inputs() saw a regular file; it is replaced before it is read."""
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, np.ones(3))
    elif suffix == ".npz":
        np.savez(path, a=np.ones(3))
    else:
        path.write_bytes(PNG_SEEDS[0])
    (source,) = expand_inputs([path])
    path.unlink()
    _special(path, kind)
    COUNTS[f"special file: {kind} (swapped)"] += 1
    for read in (lambda p: source.load(), lambda p: source.read(out=np.empty(3))):
        error = _without_hanging(read, path)
        assert isinstance(error, InputError), repr(error)
        assert str(error) == f"{source.label}: not a regular file"
