"""Tests for normcli.files.npy: safe .npy/.npz reading."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat

from normcli.errors import InputError
from normcli.files import npy as npymod
from normcli.files.limits import DEFAULT_MAX_BYTES, parse_size, resolve_max_bytes
from normcli.files.npy import read_npy, read_npy_header, read_npy_stream, write_npy_stream


def npy_bytes(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """Build a .npy file with an arbitrary header text."""
    fmt = "<H" if version == (1, 0) else "<I"
    prefix = npformat.MAGIC_PREFIX + bytes(version)
    raw = header.encode("utf-8" if version == (3, 0) else "latin-1")
    total = len(prefix) + struct.calcsize(fmt) + len(raw) + 1
    raw += b" " * (-total % 64) + b"\n"
    return prefix + struct.pack(fmt, len(raw)) + raw + data


def header(descr: str = "<f4", shape: object = (3,), fortran: bool = False) -> str:
    return f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


def save(path, arr, **kw):
    with open(path, "wb") as f:
        npformat.write_array(f, arr, allow_pickle=kw.pop("allow_pickle", False), **kw)
    return path


class ShortReads(io.RawIOBase):
    """A non-seekable stream that returns at most 7 bytes per read (like a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b) -> int:
        chunk = self._buf.read(min(len(b), 7))
        b[: len(chunk)] = chunk
        return len(chunk)


# ------------------------------------------------------------ good files


@pytest.mark.parametrize(
    "dtype", ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint64", "float16",
              "float32", "float64"]
)  # fmt: skip
def test_round_trip_dtypes(tmp_path, dtype):
    arr = (np.arange(24) % 5).astype(dtype).reshape(2, 3, 4)
    out = read_npy(save(tmp_path / "a.npy", arr))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_header_versions(tmp_path, version):
    arr = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    out = read_npy(save(tmp_path / "a.npy", arr, version=version))
    np.testing.assert_array_equal(out, arr)


def test_big_endian_and_fortran_become_native_c_contiguous(tmp_path):
    arr = np.arange(60, dtype=np.float64).reshape(3, 4, 5) / 7
    stored = np.asfortranarray(arr.astype(">f8"))
    path = save(tmp_path / "be.npy", stored)
    with open(path, "rb") as f:
        hdr = read_npy_header(f, source="x")
    assert hdr.fortran_order and hdr.dtype == np.dtype(">f8")
    out = read_npy(path)
    assert out.dtype.isnative and out.dtype == np.float64
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr)


def test_big_endian_ints(tmp_path):
    arr = np.array([1, -2, 30000], dtype=">i2")
    out = read_npy(save(tmp_path / "a.npy", arr))
    assert out.dtype == np.int16 and out.tolist() == [1, -2, 30000]


def test_bool_bytes_normalised(tmp_path):
    path = tmp_path / "b.npy"
    path.write_bytes(npy_bytes(header("|b1", (3,)), bytes([0, 1, 7])))
    out = read_npy(path)
    assert out.dtype == bool and out.tolist() == [False, True, True]
    assert out.view(np.uint8).tolist() == [0, 1, 1]


def test_mmap_returns_stored_array(tmp_path):
    arr = np.arange(10, dtype=">i4")
    out = read_npy(save(tmp_path / "m.npy", arr), mmap=True)
    assert isinstance(out, np.memmap) and not out.flags.writeable
    assert out.dtype == np.dtype(">i4")
    np.testing.assert_array_equal(out, np.arange(10))
    del out


def test_mmap_still_checks(tmp_path):
    path = tmp_path / "t.npy"
    path.write_bytes(npy_bytes(header("<f4", (100,)), b"\0" * 8))
    with pytest.raises(InputError, match="truncated"):
        read_npy(path, mmap=True)


# ------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        read_npy(tmp_path / "nope.npy")
    assert str(e.value).endswith("nope.npy: no such file")


def test_text_file(tmp_path):
    path = tmp_path / "notes.npy"
    path.write_text("hello, this is text\n")
    with pytest.raises(InputError, match=r"not a \.npy file \(bad magic\)"):
        read_npy(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "r.npy"
    path.write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(InputError, match="bad magic"):
        read_npy(path)


def test_empty_file(tmp_path):
    path = tmp_path / "e.npy"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"not a \.npy file \(empty\)"):
        read_npy(path)


def test_pickled_object_array_refused_without_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "obj.npy"
    save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    import pickle

    def boom(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("unpickled!")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    with pytest.raises(InputError) as e:
        read_npy(path)
    msg = str(e.value)
    assert "unsupported dtype object" in msg and "pickled" in msg
    assert "allowed: bool, signed or unsigned integers, floats" in msg


@pytest.mark.parametrize(
    "arr, word",
    [
        (np.zeros(3, dtype=np.complex64), "complex64 (complex)"),
        (np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]), "structured dtype"),
        (np.array(["ab", "c"]), "unicode strings"),
        (np.array([b"ab"]), "byte strings"),
        (np.zeros(2, dtype="datetime64[s]"), "datetimes"),
        (np.zeros(2, dtype="timedelta64[s]"), "timedeltas"),
        (np.zeros(2, dtype="V4"), "void"),
    ],
)
def test_refused_dtypes(tmp_path, arr, word):
    path = save(tmp_path / "x.npy", arr)
    with pytest.raises(InputError) as e:
        read_npy(path)
    assert "unsupported dtype" in str(e.value) and word in str(e.value)
    assert "allowed:" in str(e.value)


def test_subarray_dtype_refused(tmp_path):
    path = tmp_path / "sub.npy"
    path.write_bytes(npy_bytes(header(descr=("<f4", (3,)), shape=(2,)), b"\0" * 24))
    with pytest.raises(InputError, match=r"unsupported dtype subarray dtype \('<f4', \(3,\)\)"):
        read_npy(path)


def test_truncated_data(tmp_path):
    path = tmp_path / "t.npy"
    path.write_bytes(npy_bytes(header("<f8", (10,)), b"\1" * 40))
    with pytest.raises(InputError) as e:
        read_npy(path)
    assert str(e.value) == f"{path}: truncated: header claims 80 bytes of data, file has 40"


def test_trailing_garbage(tmp_path):
    path = save(tmp_path / "g.npy", np.arange(4, dtype=np.int32))
    with open(path, "ab") as f:
        f.write(b"junk")
    with pytest.raises(
        InputError, match="trailing data: header claims 16 bytes of data, file has 20"
    ):
        read_npy(path)


def test_truncated_inside_header(tmp_path):
    path = tmp_path / "h.npy"
    path.write_bytes(npy_bytes(header())[:30])
    with pytest.raises(InputError, match="truncated: file ends inside the .npy header"):
        read_npy(path)


@pytest.mark.parametrize("parser", ["plain", "numpy"])
def test_more_dimensions_than_numpy_allows(tmp_path, parser):
    """65 dimensions of 1 pass every size check; numpy cannot make such an array.
    (Both header parsers: numpy's own takes a header with an extra space.)"""
    dims = npymod.MAX_DIMS
    for n, ok in ((dims, True), (dims + 1, False)):
        text = header("<f4", (1,) * n)
        if parser == "numpy":
            text = text.replace("'shape': ", "'shape':  ")
        path = tmp_path / f"d{n}.npy"
        path.write_bytes(npy_bytes(text, b"\0" * 4))
        if ok:
            assert read_npy(path).shape == (1,) * n
            continue
        message = (f"{path}: invalid .npy header: {n} dimensions "
                   f"(numpy allows at most {dims})")
        for read in (read_npy, lambda p: read_npy_stream(io.BytesIO(p.read_bytes()), source=p),
                     lambda p: npymod.read_npy_into(p, np.empty(1, np.float32))):
            with pytest.raises(InputError) as e:
                read(path)
            assert str(e.value) == message


def test_huge_claimed_shape_does_not_allocate(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_bytes(header("<f8", (10**6, 10**6, 10**6)), b"\0" * 64))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"needs 8000000000000000000 bytes, over the limit"):
            read_npy(path)
        # Even with the limit lifted, the size mismatch is found before allocating.
        with pytest.raises(InputError, match="truncated: header claims 8000000000000000000 bytes"):
            read_npy(path, max_bytes=2**64)
        with pytest.raises(InputError, match="over the limit"):
            read_npy_stream(io.BytesIO(path.read_bytes()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize(
    "text, word",
    [
        (header(shape=(-1, 3)), "must be non-negative ints"),
        (header(shape=(True, 3)), "must be non-negative ints"),
        (header(shape="(3.5,)"), "invalid .npy header: shape is not valid"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", "correct keys"),
        ("((((((((", "invalid .npy header"),
        ("[1, 2, 3]", "not a dictionary"),
        ("__import__('os').system('echo pwned')", "invalid .npy header"),
        (header(descr="<q9"), "invalid .npy header"),
        (header(fortran="'yes'"), "fortran_order"),
        ("{" + "(" * 5000 + "}", "invalid .npy header"),
    ],
)
def test_garbage_headers(tmp_path, text, word):
    path = tmp_path / "bad.npy"
    path.write_bytes(npy_bytes(text, b"\0" * 12))
    with pytest.raises(InputError) as e:
        read_npy(path)
    assert word in str(e.value)
    assert "\n" not in str(e.value)


def test_unsupported_version(tmp_path):
    path = tmp_path / "v.npy"
    path.write_bytes(npformat.MAGIC_PREFIX + bytes([4, 0]) + b"\x10\x00" + b" " * 16)
    with pytest.raises(InputError, match=r"unsupported .npy format version 4\.0"):
        read_npy(path)


def test_huge_header_length_not_read(tmp_path):
    path = tmp_path / "v.npy"
    path.write_bytes(npformat.MAGIC_PREFIX + bytes([2, 0]) + struct.pack("<I", 2**32 - 1))
    with pytest.raises(InputError, match="length 4294967295 is over 65536 bytes"):
        read_npy(path)


def test_version3_utf8_header_refused(tmp_path):
    path = tmp_path / "u.npy"
    path.write_bytes(npy_bytes("{'descr': [('é', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                               b"\0" * 4, version=(3, 0)))  # fmt: skip
    with pytest.raises(InputError, match="non-ASCII"):
        read_npy(path)


def test_zero_d_refused(tmp_path):
    path = save(tmp_path / "s.npy", np.float32(3.0))
    with pytest.raises(InputError, match=r"0-d array \(a single scalar\)"):
        read_npy(path)


@pytest.mark.parametrize("shape", [(0,), (3, 0, 2)])
def test_empty_refused(tmp_path, shape):
    path = save(tmp_path / "e.npy", np.zeros(shape, dtype=np.float32))
    with pytest.raises(
        InputError, match=r"empty array \(shape \(.*\)\); need at least one element"
    ):
        read_npy(path)


# ---------------------------------------------------------------- limits


def test_max_bytes_keyword_and_env(tmp_path, monkeypatch):
    path = save(tmp_path / "a.npy", np.zeros(100, dtype=np.float64))  # 800 bytes
    assert read_npy(path, max_bytes=800).shape == (100,)
    with pytest.raises(InputError, match="needs 800 bytes, over the limit of 799"):
        read_npy(path, max_bytes=799)
    monkeypatch.setenv("NORMCLI_MAX_BYTES", "500")
    with pytest.raises(InputError, match="over the limit of 500 .*NORMCLI_MAX_BYTES"):
        read_npy(path)
    assert read_npy(path, max_bytes=1000).shape == (100,)  # keyword wins
    monkeypatch.setenv("NORMCLI_MAX_BYTES", "1K")
    assert read_npy(path).shape == (100,)
    monkeypatch.setenv("NORMCLI_MAX_BYTES", "lots")
    with pytest.raises(InputError, match="^NORMCLI_MAX_BYTES: not a size"):
        read_npy(path)
    monkeypatch.setenv("NORMCLI_MAX_BYTES", "0")
    with pytest.raises(InputError, match="positive"):
        read_npy(path)


def test_limits_helpers(monkeypatch):
    monkeypatch.delenv("NORMCLI_MAX_BYTES", raising=False)
    assert resolve_max_bytes() == DEFAULT_MAX_BYTES == 2 * 1024**3
    assert parse_size("64k") == 65536 and parse_size("2GiB") == 2 * 1024**3
    assert parse_size("10") == 10
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="max_bytes must be a positive int"):
            resolve_max_bytes(bad)


# ---------------------------------------------------------------- streams


def test_stream_round_trip_with_short_reads():
    arr = np.asfortranarray(np.arange(1000, dtype=">f4").reshape(10, 100))
    buf = io.BytesIO()
    write_npy_stream(buf, arr)
    out = read_npy_stream(io.BufferedReader(ShortReads(buf.getvalue())))
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr)
    out = read_npy_stream(ShortReads(buf.getvalue()))  # raw stream without buffering
    np.testing.assert_array_equal(out, arr)


def test_stream_truncated_and_trailing():
    buf = io.BytesIO()
    write_npy_stream(buf, np.arange(10, dtype=np.int64))
    data = buf.getvalue()
    with pytest.raises(InputError) as e:
        read_npy_stream(ShortReads(data[:-30]))
    assert str(e.value) == "<stdin>: truncated: header claims 80 bytes of data, file has 50"
    with pytest.raises(InputError, match="^<stdin>: trailing data"):
        read_npy_stream(ShortReads(data + b"x"))
    with pytest.raises(InputError, match=r"^<stdin>: not a \.npy file \(empty\)"):
        read_npy_stream(ShortReads(b""))


def test_write_npy_stream_refuses_objects():
    with pytest.raises(ValueError, match="object"):
        write_npy_stream(io.BytesIO(), np.array([None]))


def test_describe_dtype_is_short():
    dt = np.dtype([(f"field{i}", "<f4") for i in range(50)])
    assert len(npymod.describe_dtype(dt)) <= 120


# ----------------------------------------------------------------- fuzzing


_GOOD = npy_bytes(header("<i2", (2, 3)), bytes(range(12)))


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(0, len(_GOOD) - 1), value=st.integers(0, 255), cut=st.booleans())
def test_mutated_npy_only_raises_input_error(pos, value, cut):
    data = bytearray(_GOOD)
    data[pos] = value
    if cut:
        data = data[:pos]
    try:
        out = read_npy_stream(io.BytesIO(bytes(data)), source="fuzz")
    except InputError:
        return
    assert out.size > 0 and out.dtype.kind in "biuf"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_header_text_only_raises_input_error(text):
    data = npy_bytes(text.decode("latin-1"), b"\0" * 16)
    try:
        read_npy_stream(io.BytesIO(data), source="fuzz")
    except InputError as e:
        assert "\n" not in str(e)


def test_headers_are_parsed_one_at_a_time(tmp_path, monkeypatch):
    """numpy parses headers with ast.literal_eval, which CPython 3.11 cannot run in
    two threads at once (seen here as "SystemError: AST constructor recursion depth
    mismatch" about once in 300 runs of a two-job batchnorm): normcli reads inputs
    on --jobs threads, so the parser must never run in two of them together."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    real = npymod.npformat.read_array_header_1_0
    active, most = [0], [0]
    lock = threading.Lock()

    def slow_parser(*args, **kwargs):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.002)  # long enough for another thread to arrive
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(npymod.npformat, "read_array_header_1_0", slow_parser)
    path = tmp_path / "x.npy"
    # keys in another order: a valid header that only numpy's parser reads
    text = "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}"
    path.write_bytes(npy_bytes(text, np.arange(6.0).tobytes()))
    with ThreadPoolExecutor(4) as pool:
        shapes = list(pool.map(lambda _: read_npy(path).shape, range(40)))
    assert set(shapes) == {(2, 3)} and most[0] == 1


@settings(max_examples=200, deadline=None)
@given(
    shape=st.lists(st.integers(0, 10**12), min_size=0, max_size=6).map(tuple),
    descr=st.sampled_from(["<f4", ">f8", "|b1", "|u1", "<i2", ">u8", "<f2", "=f4", "<c8", "|S3"]),
    fortran=st.booleans(),
)
def test_plain_headers_parse_as_numpy_parses_them(shape, descr, fortran):
    """The fast path for numpy's own header layout gives numpy's answer, or None
    (and numpy's parser then decides)."""
    text = header(descr, shape, fortran)
    raw = npy_bytes(text)
    numpy_says = npformat.read_array_header_1_0(io.BytesIO(raw[8:]))
    fast = npymod._parse_plain(raw[10:])
    assert fast is None or fast == numpy_says
    if descr[1] in "biuf":
        assert fast == numpy_says  # numpy's layout always takes the fast path


@pytest.mark.parametrize("text", [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }",  # an int, not a tuple
    "{'descr': '<f4', 'fortran_order': False, 'shape': (03,), }",  # not a Python literal
    "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}",
])
def test_odd_headers_leave_the_fast_path_to_numpy(text):
    assert npymod._parse_plain(npy_bytes(text)[10:]) is None
