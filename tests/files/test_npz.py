"""Tests for normcli.files.npz: .npz archives read member by member, each checked."""

from __future__ import annotations

import bz2  # noqa: F401 - zipfile's bzip2 and lzma need them
import lzma  # noqa: F401
import os
import struct
import threading
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npformat

from normcli.errors import InputError
from normcli.files import expand_inputs
from normcli.files import npz as npzmod
from normcli.files.npz import npz_members, read_npz_member


def npy_bytes(header: str, data: bytes = b"") -> bytes:
    """A .npy file (format 1.0) with an arbitrary header text."""
    raw = header.encode("latin-1")
    raw += b" " * (-(10 + len(raw) + 1) % 64) + b"\n"
    return npformat.MAGIC_PREFIX + b"\x01\x00" + struct.pack("<H", len(raw)) + raw + data


def header(descr: str = "<f4", shape: object = (3,)) -> str:
    return f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape}, }}"


def test_npz_members_and_read(tmp_path):
    path = tmp_path / "x.npz"
    a, b = np.arange(6, dtype=np.int16).reshape(2, 3), np.ones(4, dtype=">f8")
    np.savez_compressed(path, conv1=a, fc=b)
    assert npz_members(path) == ["conv1", "fc"]
    np.testing.assert_array_equal(read_npz_member(path, "conv1"), a)
    out = read_npz_member(path, "fc")
    assert out.dtype == np.float64 and out.dtype.isnative
    with pytest.raises(InputError, match=r"x\.npz:nope: no such array"):
        read_npz_member(path, "nope")


def test_npz_non_array_member(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("a.npy", "w") as f:
            npformat.write_array(f, np.ones(2))
        zf.writestr("README.txt", "hello")
    with pytest.raises(InputError) as e:
        npz_members(path)
    assert (
        str(e.value) == f"{path}:README.txt: member is not a .npy array (only .npy members allowed)"
    )


def test_npz_pickled_member(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, ok=np.ones(2), bad=np.array([{"x": 1}], dtype=object))
    assert npz_members(path) == ["ok", "bad"]
    with pytest.raises(InputError, match=r"p\.npz:bad: unsupported dtype object"):
        read_npz_member(path, "bad")


def test_npz_member_checks(tmp_path):
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("text.npy", "not an array at all")
        zf.writestr("empty.npy", npy_bytes(header("<f4", (0,))))
        zf.writestr("short.npy", npy_bytes(header("<f4", (4,)), b"\0" * 8))
        zf.writestr("long.npy", npy_bytes(header("<f4", (1,)), b"\0" * 8))
    assert npz_members(path) == ["text", "empty", "short", "long"]
    cases = {"text": "bad magic", "empty": "empty array", "short": "truncated", "long": "trailing"}
    for name, word in cases.items():
        with pytest.raises(InputError, match=f"c.npz:{name}: .*{word}"):
            read_npz_member(path, name)


def test_zip_bomb_member_is_not_decompressed(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    big = npy_bytes(header("<f8", (2_000_000,)), bytes(16_000_000))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.npy", big)
    assert path.stat().st_size < 100_000

    def no_open(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_open)
    with pytest.raises(InputError) as e:
        read_npz_member(path, "bomb", max_bytes=1_000_000)
    assert "uncompressed size 16000128 bytes is over the limit of 1000000" in str(e.value)
    assert str(e.value).startswith(f"{path}:bomb: ")


def test_bad_zip(tmp_path):
    path = tmp_path / "z.npz"
    path.write_text("certainly not a zip")
    with pytest.raises(InputError, match=r"not a valid \.npz file"):
        npz_members(path)
    with pytest.raises(InputError, match=r"not a valid \.npz file"):
        read_npz_member(path, "a")


def test_empty_npz(tmp_path):
    path = tmp_path / "e.npz"
    zipfile.ZipFile(path, "w").close()
    with pytest.raises(InputError, match=r"e\.npz: the \.npz file contains no arrays"):
        npz_members(path)


def test_corrupted_npz_member(tmp_path):
    path = tmp_path / "k.npz"
    marker = np.full(64, 0x5A, dtype=np.uint8)
    np.savez(path, a=marker)
    data = bytearray(path.read_bytes())
    pos = data.find(bytes(marker))
    data[pos + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"k\.npz:a: corrupted \.npz member \(Bad CRC-32"):
        read_npz_member(path, "a")


# ------------------------------------------- one directory per archive, O(N)


@pytest.fixture
def parses(monkeypatch):
    """Counts the zip directories parsed; archives count as settled at once."""
    monkeypatch.setattr(npzmod, "SETTLED_NS", -(1 << 62))
    monkeypatch.setattr(npzmod, "_DIRECTORIES", type(npzmod._DIRECTORIES)())
    count = [0]
    real = zipfile.ZipFile._RealGetContents

    def counting(self):
        count[0] += 1
        return real(self)

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", counting)
    return count


def test_many_members_parse_the_directory_once(tmp_path, parses):
    """Each member re-read the zip directory: 4,000 tiny members took 37 s."""
    path = tmp_path / "many.npz"
    arrays = {f"a{i}": np.full(3, i, np.float32) for i in range(300)}
    np.savez(path, **arrays)
    sources = expand_inputs([path])
    assert [s.member for s in sources] == list(arrays)
    for s in sources:
        np.testing.assert_array_equal(s.load(), arrays[s.member])
    assert parses[0] == 1


def test_an_archive_changed_just_now_is_parsed_each_time(tmp_path, parses, monkeypatch):
    """File times are coarse: a rewrite within one tick could keep the same identity,
    so a directory is kept only once the file has not changed for SETTLED_NS."""
    monkeypatch.setattr(npzmod, "SETTLED_NS", 10**12)  # 1000 s: nothing has settled
    path = tmp_path / "new.npz"
    np.savez(path, a=np.ones(2), b=np.zeros(2))
    for name in ("a", "b", "a"):
        read_npz_member(path, name)
    assert parses[0] == 3


@pytest.mark.parametrize("same_size", [False, True])
def test_a_rewritten_archive_is_read_afresh(tmp_path, parses, same_size):
    path = tmp_path / "w.npz"
    np.savez(path, a=np.arange(4.0), b=np.ones(2))
    assert npz_members(path) == ["a", "b"]
    np.testing.assert_array_equal(read_npz_member(path, "a"), np.arange(4.0))
    stamp = path.stat().st_mtime_ns
    if same_size:  # other names and values in exactly as many bytes
        np.savez(path, c=np.arange(4.0) + 1, d=np.ones(2) * 2)
    else:
        np.savez(path, c=np.arange(8.0))
    assert (path.stat().st_size == (tmp_path / "w.npz").stat().st_size) or not same_size
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # no tick shared with the first
    assert npz_members(path) == (["c", "d"] if same_size else ["c"])
    expected = np.arange(4.0) + 1 if same_size else np.arange(8.0)
    np.testing.assert_array_equal(read_npz_member(path, "c"), expected)
    assert parses[0] == 2


def test_threads_share_a_directory(tmp_path, parses):
    path = tmp_path / "t.npz"
    arrays = {f"m{i}": np.arange(i, i + 50, dtype=np.int64) for i in range(200)}
    np.savez_compressed(path, **arrays)
    names = npz_members(path)
    errors, wrong = [], []

    def work(k):
        try:
            for name in names[k::4]:
                if not np.array_equal(read_npz_member(path, name), arrays[name]):
                    wrong.append(name)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and wrong == []
    assert parses[0] == 1


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                                    zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_every_zip_method_reads_as_numpy_does(tmp_path, method):
    """Stored and deflated members (numpy's) are read here; bzip2 and lzma via zipfile.
    The big member spans many reads of the compressed data."""
    path = tmp_path / "m.npz"
    rng = np.random.default_rng(1)
    arrays = {"small": np.arange(5, dtype=">i2"),
              "big": rng.integers(0, 4, 3_000_000).astype(np.uint8).reshape(1000, 3000),
              "fortran": np.asfortranarray(rng.standard_normal((30, 40)))}
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                npformat.write_array(f, a)
    with np.load(path) as ref:
        for name in arrays:
            got = read_npz_member(path, name)
            np.testing.assert_array_equal(got, ref[name])
            assert got.dtype.isnative and got.flags.c_contiguous


def _corrupt(tmp_path, change) -> str:
    path = tmp_path / "c.npz"
    np.savez(path, a=np.arange(3.0), b=np.ones(2))
    data = bytearray(path.read_bytes())
    change(data)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as e:
        read_npz_member(path, "b")
    assert str(e.value).startswith(f"{path}:b: corrupted .npz member ("), str(e.value)
    return str(e.value)


def test_local_header_is_checked(tmp_path):
    def magic(data):
        start = data.index(b"b.npy") - 30  # b's local header
        data[start:start + 4] = b"PK\x09\x09"

    assert "Bad magic number for file header" in _corrupt(tmp_path, magic)

    def name(data):
        start = data.index(b"b.npy")
        data[start] = ord("q")  # in the local header only (the first occurrence)

    assert "File name in directory 'b.npy' and header b'q.npy' differ" in _corrupt(tmp_path,
                                                                                   name)


@pytest.mark.parametrize("member", ["a", "b"])
def test_overlapping_members_are_refused(tmp_path, member):
    """A member whose data run into the next member (or the directory): the trick of
    zip bombs that reuse one compressed stream, refused as Python 3.12's zipfile
    refuses it, whatever the Python version."""
    path = tmp_path / "o.npz"
    np.savez(path, a=np.arange(3.0), b=np.ones(2))
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # a's entry in the central directory
    if member == "b":
        entry = data.index(b"PK\x01\x02", entry + 4)
    size = struct.unpack("<I", data[entry + 20:entry + 24])[0]
    data[entry + 20:entry + 24] = struct.pack("<I", size + 1)  # compressed size
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as e:
        read_npz_member(path, member)
    assert str(e.value) == (f"{path}:{member}: corrupted .npz member (Overlapped entries: "
                            f"'{member}.npy' (possible zip bomb))")
