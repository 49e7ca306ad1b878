"""The streamed batch norm's I/O and numerics: reading into reused buffers, writing
from memory, --no-sync, the NaN/Inf check fused into pass 1, files changed between
the passes, the one-pass merge's fallback, and interrupts while the next group is read.
"""

from __future__ import annotations

import io
import json
import math
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from clihelp import one_line_error
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat

import normcli
from normcli.errors import InputError, OutputError
from normcli.files import atomic
from normcli.files import npy as npymod
from normcli.files.atomic import TEMP_MARKER, StagedWrites
from normcli.files.npy import read_npy, read_npy_into, write_npy, write_npy_stream
from normcli.files.sources import Source, expand_inputs
from normcli.ops import moments as bnmod
from normcli.ops._blocks import _thread_scratch
from normcli.ops.batchnorm import BatchNormalizer
from normcli.ops.moments import RunningStats, batch_stats
from normcli.runs import batch as batch_run
from normcli.runs.inputs import SMALL_INPUT_BYTES, choose_jobs, open_sources
from normcli.runs.options import RunOptions

EPS = np.finfo(np.float64).eps

# ----------------------------------------------------------------- helpers


def _dataset(folder: Path, count: int, shape=(3, 4, 5), dtype=np.float32, seed=0,
             scale=3.0, offset=10.0) -> np.ndarray:
    """``count`` samples saved as ``folder/s000.npy``...; returns the stacked batch."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batch = (rng.standard_normal((count, *shape)) * scale + offset).astype(dtype)
    for i, x in enumerate(batch):
        np.save(folder / f"s{i:03d}.npy", x)
    return batch


def _groups_of(monkeypatch, batch: np.ndarray, size: int) -> None:
    """Make pass 1 read ``size`` samples per group."""
    monkeypatch.setattr(batch_run, "GROUP_BYTES", size * batch[0].nbytes)


def _run(invoke, *args):
    """``invoke(*args)``, and the RuntimeWarnings it raised (which would reach stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke(*args)
    return result, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def _ok(invoke, *args):
    result, runtime = _run(invoke, *args)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert runtime == []
    return result


def _outputs(folder: Path) -> np.ndarray:
    return np.stack([np.load(p) for p in sorted(folder.glob("*.npy"))])


def _temps(*folders: Path) -> list[str]:
    """Hidden temporary files left anywhere under ``folders``."""
    return [p.name for f in folders if f.exists() for p in f.rglob("*") if TEMP_MARKER in p.name]


@pytest.fixture
def fsyncs(monkeypatch):
    """The inode of every descriptor passed to os.fsync (from any thread)."""
    calls: list[int] = []
    real = os.fsync

    def fsync(fd):
        calls.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    return calls


# ------------------------------------------------------- 1. read_npy(out=)


def _via_read_npy(path, out):
    return read_npy(path, out=out)


def _via_read_npy_into(path, out):
    arr, st = read_npy_into(path, out)
    assert (st.st_ino, st.st_size, st.st_mtime_ns) == (
        os.stat(path).st_ino, os.stat(path).st_size, os.stat(path).st_mtime_ns)
    return arr


#: read_npy(out=) and the streaming pipeline's read_npy_into(path, out): the same contract
READERS = pytest.mark.parametrize("reader", [_via_read_npy, _via_read_npy_into],
                                  ids=["read_npy", "read_npy_into"])


@READERS
def test_read_npy_reads_into_out_and_reuses_it(tmp_path, reader):
    """A native C-order file of out's dtype and size is read straight into ``out``
    (no new array), shaped as the file; the next file overwrites it."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((3, 4, 5)).astype(np.float32) for _ in range(2))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    buf = np.full((3, 4, 5), np.nan, np.float32)
    x = reader(tmp_path / "a.npy", buf)
    assert np.shares_memory(x, buf)
    np.testing.assert_array_equal(x, np.load(tmp_path / "a.npy"))
    y = reader(tmp_path / "b.npy", buf)
    assert np.shares_memory(y, buf)
    np.testing.assert_array_equal(y, b)
    np.testing.assert_array_equal(buf, b)

    flat = np.empty(60, np.float32)  # only the size must match: the result has the file's shape
    z = reader(tmp_path / "a.npy", flat)
    assert z.shape == (3, 4, 5) and np.shares_memory(z, flat)
    np.testing.assert_array_equal(z, a)


def _fortran_2d(path):
    np.save(path, np.asfortranarray(np.arange(20, dtype=np.float32).reshape(4, 5)))
    return np.empty((4, 5), np.float32)


def _bool_with_odd_bytes(path):
    """A bool file whose bytes are 0, 1 and 2 (2 is not a valid numpy bool)."""
    data = bytes([0, 1, 2, 0, 2, 1])
    with open(path, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": "|b1", "fortran_order": False,
                                            "shape": (2, 3)})
        f.write(data)
    return np.empty((2, 3), np.bool_)


_FALLBACKS = {
    # name: writes the file, returns the out buffer it cannot be read into
    "other dtype, same size": lambda p: (np.save(p, np.arange(12, dtype=np.int32)),
                                         np.empty(12, np.float32))[1],
    "big-endian": lambda p: (np.save(p, np.arange(12, dtype=">f4")), np.empty(12, np.float32))[1],
    "big-endian file and out": lambda p: (np.save(p, np.arange(12, dtype=">f4")),
                                          np.empty(12, ">f4"))[1],
    "fortran 2-d": _fortran_2d,
    "bool": _bool_with_odd_bytes,
    "size mismatch": lambda p: (np.save(p, np.arange(12, dtype=np.float32)),
                                np.empty(13, np.float32))[1],
    "read-only out": lambda p: (np.save(p, np.arange(12, dtype=np.float32)),
                                np.empty(12, np.float32))[1],
}


@READERS
@pytest.mark.parametrize("case", list(_FALLBACKS))
def test_read_npy_out_falls_back_to_a_fresh_array(tmp_path, case, reader):
    """Files that cannot be read as they are into ``out`` give a new native C-order
    array with the right values, and leave ``out`` untouched."""
    path = tmp_path / "x.npy"
    buf = _FALLBACKS[case](path)
    if buf.dtype != np.bool_:
        buf[...] = 7
    if case == "read-only out":
        buf.flags.writeable = False
    before = buf.copy()
    x = reader(path, buf)
    assert not np.shares_memory(x, buf)
    if case == "bool":
        assert x.dtype == np.bool_
        assert set(np.asarray(x).view(np.uint8).ravel().tolist()) <= {0, 1}  # normalised
        np.testing.assert_array_equal(x, np.array([[0, 1, 1], [0, 1, 1]], bool))
    else:
        want = np.load(path)
        assert x.dtype.kind == want.dtype.kind and x.dtype.itemsize == want.dtype.itemsize
        np.testing.assert_array_equal(x, want)
    if reader is _via_read_npy:  # (read_npy_into passes mmap on: arrays as stored)
        assert x.flags.c_contiguous and x.dtype.isnative
    np.testing.assert_array_equal(buf, before)


@READERS
def test_read_npy_out_single_axis_fortran_file_is_read_into_out(tmp_path, reader):
    """A Fortran-ordered header whose shape has one axis > 1 has C-order data too."""
    path = tmp_path / "f.npy"
    with open(path, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": True,
                                            "shape": (1, 5)})
        f.write(np.arange(5, dtype="<f4").tobytes())
    buf = np.empty(5, np.float32)
    x = reader(path, buf)
    assert np.shares_memory(x, buf) and x.shape == (1, 5)
    np.testing.assert_array_equal(x, np.load(path))


@READERS
@pytest.mark.parametrize("cut", [5, 48])
def test_read_npy_out_truncated_file(tmp_path, reader, cut):
    """Data cut short: InputError "truncated...", naming the file."""
    path = tmp_path / "t.npy"
    np.save(path, np.arange(12, dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(InputError) as e:
        reader(path, np.empty(12, np.float32))
    assert e.value.problem.startswith("truncated"), e.value.problem
    assert e.value.source == str(path)


def test_read_npy_out_file_shrinking_while_read(tmp_path, monkeypatch):
    """A short read into ``out`` (the file shrank after its size was checked) is
    "truncated", not a half-filled buffer passed off as the data."""
    path = tmp_path / "s.npy"
    np.save(path, np.arange(12, dtype=np.float32))
    real = npymod._readinto_exact
    monkeypatch.setattr(npymod, "_readinto_exact", lambda fp, buf: real(fp, buf[:10]))
    with pytest.raises(InputError) as e:
        read_npy(path, out=np.empty(12, np.float32))
    assert e.value.problem.startswith("truncated"), e.value.problem


def test_source_load_passes_out_for_npy_only(tmp_path):
    """Source.load(out=) reads an .npy source into out; an .npz member ignores it."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "b.npz", m=a + 1)
    (npy_source,) = expand_inputs([tmp_path / "a.npy"])
    (npz_source,) = expand_inputs([tmp_path / "b.npz"])
    buf = np.empty((2, 3), np.float32)
    x = npy_source.load(out=buf)
    assert np.shares_memory(x, buf)
    np.testing.assert_array_equal(x, a)
    y = npz_source.load(out=buf)
    assert not np.shares_memory(y, buf)
    np.testing.assert_array_equal(y, a + 1)
    np.testing.assert_array_equal(buf, a)  # untouched by the npz member


def test_source_state_tells_rewritten_and_replaced_files(tmp_path):
    """Source.state(): equal while the file is untouched; different after a rewrite in
    place (new mtime) or a replacement by rename (new inode, even with the old mtime);
    None for an array that was read from stdin."""
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(4, np.float32))
    (source,) = expand_inputs([path])
    first = source.state()
    assert source.state() == first
    _rewrite(path, np.ones(4, np.float32), "in place")
    second = source.state()
    assert second != first
    _rewrite(path, np.full(4, 2, np.float32), "renamed over")
    assert source.state() not in (first, second)
    stdin = expand_inputs(["-"], stdin=io.BytesIO(_np_save_bytes(np.zeros((2, 2)))))[0]
    assert stdin.loaded().state() is None


@pytest.mark.parametrize("arr", [
    np.arange(6, dtype=">f4").reshape(2, 3),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.ones((2, 2), bool),
    np.arange(4, dtype=np.float16),
    np.arange(8, dtype=np.uint8),
], ids=["big-endian", "fortran", "bool", "float16", "uint8"])
def test_numpy_written_headers_skip_numpys_parser(tmp_path, monkeypatch, arr):
    """Headers as np.save writes them are parsed by the fast path (no lock, no
    ast.literal_eval), with numpy's result."""
    np.save(tmp_path / "x.npy", arr)

    def refuse(*args, **kwargs):
        raise AssertionError("numpy's header parser was used")

    monkeypatch.setattr(npymod, "_parse_with_numpy", refuse)
    x = read_npy(tmp_path / "x.npy")
    np.testing.assert_array_equal(x, arr)
    assert x.dtype == arr.dtype.newbyteorder("=")


# ----------------------------------------------------- 2. writing .npy


def _arrays() -> dict[str, np.ndarray]:
    base = np.arange(60, dtype=np.float64).reshape(6, 10) / 7
    return {
        "c-contiguous": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 3,
        "fortran": np.asfortranarray(base),
        "strided view": base[::2, 1::3],
        "0-d": np.array(3.25),
        "empty": np.zeros((0, 3), np.float32),
        "big-endian": (base / 3).astype(">f8"),
        "big-endian int fortran": np.asfortranarray(np.arange(12, dtype=">i2").reshape(3, 4)),
        "bool": np.array([[True, False, True], [False, False, True]]),
        "float16": np.linspace(-1, 1, 7, dtype=np.float16),
        "uint8 3-d": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    }


def _np_save_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("name", list(_arrays()))
def test_write_npy_is_byte_identical_to_np_save(tmp_path, name):
    """_write_array / write_npy write exactly what np.save writes, to memory and to a file."""
    arr = _arrays()[name]
    want = _np_save_bytes(arr)
    buf = io.BytesIO()
    npymod._write_array(buf, arr)
    assert buf.getvalue() == want
    with open(tmp_path / "x.npy", "wb") as f:
        write_npy(f, arr)
    assert (tmp_path / "x.npy").read_bytes() == want
    np.save(tmp_path / "ref.npy", arr)
    assert (tmp_path / "ref.npy").read_bytes() == want


class _Pipe:
    """Only ``write`` and ``flush``, like a pipe wrapper; optionally short writes."""

    def __init__(self, most: int | None = None) -> None:
        self.data = bytearray()
        self.flushed = 0
        self.most = most

    def write(self, data) -> int:
        chunk = bytes(data)
        if self.most is not None:
            chunk = chunk[:self.most]
        self.data += chunk
        return len(chunk)

    def flush(self) -> None:
        self.flushed += 1


@pytest.mark.parametrize("name", ["c-contiguous", "fortran", "strided view", "big-endian",
                                  "bool", "0-d"])
def test_write_npy_stream_to_a_write_only_pipe(name):
    """write_npy_stream needs only write() and flush() (no fileno, no seek)."""
    arr = _arrays()[name]
    pipe = _Pipe()
    write_npy_stream(pipe, arr)
    assert bytes(pipe.data) == _np_save_bytes(arr)
    assert pipe.flushed >= 1


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_write_npy_stream_survives_short_writes(layout):
    """A raw stream that takes only part of each write still gets all the data, also
    for arrays that numpy's own writer sends (it ignores short writes)."""
    arr = np.arange(5000, dtype=np.float32).reshape(50, 100)
    arr = {"C": arr, "F": np.asfortranarray(arr), "strided": arr[::2, ::3]}[layout]
    pipe = _Pipe(most=100)  # less than the header, too
    write_npy_stream(pipe, arr)
    assert bytes(pipe.data) == _np_save_bytes(arr)


# ------------------------------------------------- 3. StagedWrites(sync=)


def _stage_three(staged: StagedWrites, root: Path) -> list[Path]:
    targets = [root / "x" / "a.bin", root / "x" / "b.bin", root / "y" / "c.bin"]
    for target in targets:
        staged.makedirs(target.parent)
        with staged.open(target) as f:
            f.write(target.name.encode())
    return targets


def test_staged_writes_without_sync_never_fsync(tmp_path, fsyncs):
    """sync=False: commit puts every file in place, whole, and calls no fsync."""
    with StagedWrites(sync=False) as staged:
        targets = _stage_three(staged, tmp_path)
        assert not any(t.exists() for t in targets)
        staged.commit()
    assert [t.read_bytes() for t in targets] == [b"a.bin", b"b.bin", b"c.bin"]
    assert fsyncs == []
    assert _temps(tmp_path) == []


def test_staged_writes_sync_each_file_and_directory(tmp_path, fsyncs):
    """The default sync=True fsyncs every file once and every target directory once."""
    with StagedWrites() as staged:
        targets = _stage_three(staged, tmp_path)
        staged.commit()
    want = [t.stat().st_ino for t in targets]
    want += [(tmp_path / "x").stat().st_ino, (tmp_path / "y").stat().st_ino]
    assert sorted(fsyncs) == sorted(want)
    assert [t.read_bytes() for t in targets] == [b"a.bin", b"b.bin", b"c.bin"]


@pytest.mark.parametrize("error", [OSError, OutputError])
@pytest.mark.parametrize("sync", [True, False])
def test_commit_failing_on_second_rename(tmp_path, monkeypatch, error, sync):
    """The 2nd of 3 renames fails: the 1st is undone (all or nothing), the others do
    not appear, and once the ``with`` block is left no temporary file remains."""
    real = atomic._put_in_place
    calls = []

    def flaky(tmp, target, force):
        calls.append(target)
        if len(calls) == 2:
            raise error(target, "injected failure") if error is OutputError else error(
                28, "No space left on device")
        return real(tmp, target, force)

    monkeypatch.setattr(atomic, "_put_in_place", flaky)
    with pytest.raises(error):
        with StagedWrites(sync=sync) as staged:
            targets = _stage_three(staged, tmp_path)
            staged.commit()
    assert len(calls) == 2
    assert not any(t.exists() for t in targets)
    assert _temps(tmp_path) == []


# ---------------------------------------------------------- 4. --no-sync


def test_batchnorm_no_sync_same_bytes_and_no_fsync(tmp_path, invoke, fsyncs):
    """--no-sync writes the same files without a single fsync; without it, every
    output and the output directory are fsynced."""
    _dataset(tmp_path / "d", 4)
    _ok(invoke, "batchnorm", "d", "-o", "synced/", "-q")
    assert len(fsyncs) >= 5  # 4 files and the directory
    synced = {(tmp_path / "synced" / p).stat().st_ino for p in os.listdir(tmp_path / "synced")}
    assert synced | {(tmp_path / "synced").stat().st_ino} <= set(fsyncs)
    fsyncs.clear()
    _ok(invoke, "batchnorm", "d", "-o", "fast/", "-q", "--no-sync")
    assert fsyncs == []
    names = sorted(os.listdir(tmp_path / "synced"))
    assert names == sorted(os.listdir(tmp_path / "fast")) and len(names) == 4
    for name in names:
        assert (tmp_path / "synced" / name).read_bytes() == (tmp_path / "fast" / name).read_bytes()


@pytest.mark.parametrize(("source", "first", "second"), [
    ("d", "a/", "b/"), ("d/s000.npy", "a.npy", "b.npy")])
def test_lrn_accepts_no_sync(tmp_path, invoke, fsyncs, source, first, second):
    """lrn --no-sync: same bytes as with --sync (the default), and no fsync."""
    _dataset(tmp_path / "d", 1)
    _ok(invoke, "lrn", source, "-o", first, "-q", "--sync")
    assert fsyncs
    fsyncs.clear()
    _ok(invoke, "lrn", source, "-o", second, "-q", "--no-sync")
    assert fsyncs == []
    if first.endswith("/"):
        first, second = first + "s000.npy", second + "s000.npy"
    assert (tmp_path / first).read_bytes() == (tmp_path / second).read_bytes()


# ------------------------------------------------ 5. NaN/Inf in pass 1

def _bad_cases():
    cases = []
    for per in ("activation", "channel"):
        cases += [
            pytest.param(per, 4, {(0, 1, 2): np.nan}, id=f"{per}-nan-5th"),
            pytest.param(per, 0, {(0, 1, 2): np.nan}, id=f"{per}-nan-1st"),
            pytest.param(per, 9, {(2, 3, 4): np.nan}, id=f"{per}-nan-last"),
            pytest.param(per, 4, {(1, 2, 3): np.inf}, id=f"{per}-inf-5th"),
            pytest.param(per, 4, {(1, 2, 3): -np.inf}, id=f"{per}-minus-inf-5th"),
            # One channel: that channel's sum is NaN.  Two statistics: the running mean
            # holds +Inf and -Inf, whose sum in RunningStats.finite() once printed
            # "RuntimeWarning: invalid value encountered in reduce" above the error.
            pytest.param(per, 4, {(0, 0, 0): np.inf, (0, 1, 1): -np.inf},
                         id=f"{per}-plus-minus-inf-one-channel"),
            pytest.param(per, 4, {(0, 0, 0): np.inf, (1, 1, 1): -np.inf},
                         id=f"{per}-plus-minus-inf-two-channels"),
        ]
    return cases


@pytest.mark.parametrize(("per", "culprit", "values"), _bad_cases())
def test_nonfinite_sample_is_named_by_pass_1(tmp_path, invoke, monkeypatch, per, culprit,
                                             values):
    """10 samples in groups of 3: a NaN/Inf anywhere is refused, naming its file and
    count in one clean line; nothing is written."""
    batch = _dataset(tmp_path / "d", 10)
    x = batch[culprit].copy()
    for where, value in values.items():
        x[where] = value
    np.save(tmp_path / "d" / f"s{culprit:03d}.npy", x)
    _groups_of(monkeypatch, batch, 3)
    result, runtime = _run(invoke, "batchnorm", "d", "--per", per, "-o", "out/", "-q")
    assert runtime == []
    line = one_line_error(result)
    count = len(values)
    assert line == (f"normcli: error: d/s{culprit:03d}.npy: holds {count} NaN/Inf "
                    f"value{'s' if count > 1 else ''} (pass --allow-nonfinite to process it "
                    "anyway)")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*")) == []
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_allow_nonfinite_streams_like_in_memory(tmp_path, invoke, monkeypatch, per):
    """--allow-nonfinite: the batch is normalized as the in-memory route does it (NaN
    only where a statistic saw the NaN).  (It was refused with "d/s000.npy: mean
    holds non-finite values", naming an innocent file.)"""
    batch = _dataset(tmp_path / "d", 10)
    batch[4, 0, 1, 2] = np.nan
    np.save(tmp_path / "d" / "s004.npy", batch[4])
    _groups_of(monkeypatch, batch, 3)
    result, _ = _run(invoke, "batchnorm", "d", "--per", per, "-o", "out/", "-q",
                     "--allow-nonfinite")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(_outputs(tmp_path / "out"), normcli.batch_norm(batch, per=per),
                               rtol=1e-5, atol=1e-5, equal_nan=True)


def test_allow_nonfinite_is_not_refused_as_a_nan_file(tmp_path, invoke, monkeypatch):
    """Whatever --allow-nonfinite leads to, it is never the "holds NaN/Inf" refusal."""
    batch = _dataset(tmp_path / "d", 10)
    batch[4, 0, 1, 2] = np.inf
    np.save(tmp_path / "d" / "s004.npy", batch[4])
    _groups_of(monkeypatch, batch, 3)
    result, _ = _run(invoke, "batchnorm", "d", "-o", "out/", "-q", "--allow-nonfinite")
    assert "NaN/Inf" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("scale", [
    1e200,  # squares overflow: the variance is infinite
    1e153,  # finite statistics whose sum overflows (it printed a RuntimeWarning)
])
def test_huge_finite_float64_values_are_not_called_nan(tmp_path, invoke, monkeypatch, per,
                                                         scale):
    """float64 samples so large that their moments overflow hold no NaN/Inf: if the
    run fails, it says something else, in one line, and writes nothing."""
    batch = _dataset(tmp_path / "d", 10, dtype=np.float64, scale=scale, offset=0.0)
    _groups_of(monkeypatch, batch, 3)
    result, runtime = _run(invoke, "batchnorm", "d", "--per", per, "-o", "out/", "-q")
    assert "NaN/Inf" not in result.stderr
    assert runtime == []
    try:  # the library decides whether the sums of squares fit float64
        want = normcli.batch_norm(batch, per=per)
    except ValueError:
        want = None
    if want is not None:  # an ordinary result
        assert result.exit_code == 0, result.stderr
        out = _outputs(tmp_path / "out")
        assert out.shape == batch.shape and np.isfinite(out).all()
        np.testing.assert_allclose(out, want, rtol=1e-10)
    else:  # as the in-memory route (and the library) say it
        largest = float(np.max(np.abs(batch)))  # named: the file that holds it
        where = int(np.argmax(np.abs(batch).reshape(len(batch), -1).max(axis=1)))
        assert one_line_error(result) == (
            f"normcli: error: d/s{where:03d}.npy: values up to {largest:.3g} are too large "
            "for batch "
            "statistics: the sum of their squares overflows float64 (about 1.8e308); scale "
            "the data down")
        assert _temps(tmp_path) == [] and not (tmp_path / "out").exists()
        # --allow-nonfinite does not let them through: they hold no NaN/Inf to propagate
        result, runtime = _run(invoke, "batchnorm", "d", "--per", per, "-o", "out/", "-q",
                               "--allow-nonfinite")
        assert one_line_error(result).endswith("; scale the data down") and runtime == []
        assert not (tmp_path / "out").exists()
        np.save(tmp_path / "all.npy", batch)
        result, _ = _run(invoke, "batchnorm", "all.npy", "--per", per, "-o", "all-out.npy")
        assert one_line_error(result).endswith("(about 1.8e308); scale the data down")
        assert not (tmp_path / "all-out.npy").exists()


def test_overflow_in_early_group_then_nan_later_still_named(tmp_path, invoke, monkeypatch):
    """Once the running moments overflowed (no NaN in the data), a later group's NaN is
    still found and named."""
    batch = _dataset(tmp_path / "d", 10, dtype=np.float64, scale=1e200, offset=0.0)
    x = batch[7].copy()
    x[0, 0, 0] = np.nan
    np.save(tmp_path / "d" / "s007.npy", x)
    _groups_of(monkeypatch, batch, 3)
    result, runtime = _run(invoke, "batchnorm", "d", "-o", "out/", "-q")
    assert runtime == []
    assert one_line_error(result).startswith("normcli: error: d/s007.npy: holds 1 NaN/Inf value")


# ------------------------------------- 6. inputs changed between the passes


def _rewrite(path: Path, arr: np.ndarray, how: str) -> None:
    """Replace ``path``'s data by ``arr`` (same shape), so that its mtime differs."""
    before = path.stat()
    if how == "in place":
        np.save(path, arr)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    else:  # a new file renamed over it, with the old mtime: a new inode (and ctime)
        other = path.with_name(".replacement")
        with open(other, "wb") as f:
            np.save(f, arr)
        os.replace(other, path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("how", ["in place", "renamed over"])
@pytest.mark.parametrize("jobs", ["1", "3"])
def test_input_changed_after_pass_1_is_refused(tmp_path, invoke, monkeypatch, how, jobs):
    """An input rewritten after the statistics were computed is refused in pass 2,
    naming it; nothing is written."""
    batch = _dataset(tmp_path / "d", 6)
    victim = tmp_path / "d" / "s003.npy"
    real = batch_run._statistics
    calls = []

    def stats_then_rewrite(*args, **kwargs):
        calls.append(1)
        result = real(*args, **kwargs)
        _rewrite(victim, batch[3] * 2 + 1, how)
        return result

    monkeypatch.setattr(batch_run, "_statistics", stats_then_rewrite)
    _groups_of(monkeypatch, batch, 2)
    result, _ = _run(invoke, "batchnorm", "d", "-o", "out/", "-q", "-j", jobs)
    assert calls == [1]
    assert one_line_error(result) == ("normcli: error: d/s003.npy: changed after the "
                                      "statistics were computed from it; run again")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*")) == []
    assert _temps(tmp_path) == []


def test_unchanged_inputs_pass_the_check(tmp_path, invoke, monkeypatch):
    """The same wrapper without the rewrite: the run succeeds (the check is not
    refusing every file)."""
    batch = _dataset(tmp_path / "d", 6)
    real = batch_run._statistics
    monkeypatch.setattr(batch_run, "_statistics", lambda *a, **k: real(*a, **k))
    _groups_of(monkeypatch, batch, 2)
    _ok(invoke, "batchnorm", "d", "-o", "out/", "-q")
    np.testing.assert_allclose(_outputs(tmp_path / "out"), normcli.batch_norm(batch),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------- 7. RunningStats.finite()


def _pieces(dtype, seed=3, count=4, shape=(3, 4, 5, 6)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(count)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_running_stats_finite_for_finite_data(dtype, per, channels_last):
    """Finite pieces keep finite() True (no false NaN/Inf alarm in pass 1)."""
    running = RunningStats(per=per, channels_last=channels_last)
    assert running.finite()  # nothing added yet
    for piece in _pieces(dtype):
        running.add(piece)
        assert running.finite()


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "+inf and -inf"])
@pytest.mark.parametrize("piece", [0, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_running_stats_not_finite_once_a_bad_piece_is_added(bad, piece, dtype, per,
                                                            channels_last):
    """False from the piece holding NaN/Inf on, however many finite pieces follow;
    no RuntimeWarning on the way."""
    pieces = _pieces(dtype)
    if bad == "+inf and -inf":  # in different statistics, whatever the layout
        pieces[piece][1, 0, 0, 0], pieces[piece][2, 1, 1, 1] = np.inf, -np.inf
    else:
        pieces[piece][1, 2, 3, 4] = float(bad)
    running = RunningStats(per=per, channels_last=channels_last)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in pieces:
            running.add(p)
            seen.append(running.finite())
    assert seen == [i < piece for i in range(len(pieces))]


# ----------------------------------------- 8. merge_into's two-pass fallback


def _far_pieces(n_far: int, tail: str, seed: int = 0, shape=(3, 4, 5)) -> list[np.ndarray]:
    """One sample, then ``n_far`` samples 1e6 away with a spread of 1e-3, then ordinary
    pieces: near the big piece (``tail="near"``) or back near the first (``"home"``)."""
    rng = np.random.default_rng(seed)
    pieces = [rng.normal(0, 1, (1, *shape)), rng.normal(1e6, 1e-3, (n_far, *shape))]
    if tail == "near":
        return pieces + [rng.normal(1e6, 1e-3, (7, *shape)),
                         rng.normal(1e6 + 0.01, 2e-3, (20, *shape))]
    return pieces + [rng.normal(0, 1, (7, *shape)), rng.normal(-5, 3, (20, *shape))]


def _relative_errors(pieces, per) -> tuple[float, float]:
    running = RunningStats(per=per)
    for p in pieces:
        running.add(p)
    got, want = running.stats(), batch_stats(np.concatenate(pieces), per=per)
    assert got.count == want.count
    return (float(np.max(np.abs(got.mean - want.mean) / np.abs(want.mean))),
            float(np.max(np.abs(got.var - want.var) / want.var)))


@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("tail", ["near", "home"])
@pytest.mark.parametrize("n_far", [300, 3000])
def test_running_stats_exact_after_a_tiny_first_piece(per, tail, n_far):
    """A piece over 100x what came before it, far from it (the one-pass update's
    cancellation case): the statistics still equal batch_stats of everything to
    1e-13 (var) and 1e-14 (mean)."""
    mean_err, var_err = _relative_errors(_far_pieces(n_far, tail), per)
    assert mean_err <= 1e-14
    assert var_err <= 1e-13


@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("n_far", [300, 3000])
def test_tiny_first_piece_case_needs_the_fallback(monkeypatch, n_far, per):
    """Guards the test above: with the two-pass fallback switched off, these cases are
    off by more than 1e-13, so that test really exercises the fallback."""
    monkeypatch.setattr(bnmod, "_ONE_PASS_LIMIT", float("inf"))
    _, var_err = _relative_errors(_far_pieces(n_far, "near"), per)
    assert var_err > 1e-13


def test_running_stats_exact_when_pieces_go_by_rows():
    """Channels last with many pixels: the far piece's moments are computed by row
    blocks (not merge_into) and merged by Chan's update; still exact."""
    rng = np.random.default_rng(8)
    shape = (40, 40, 3)  # 1600 rows per sample: 30 samples are row blocks
    pieces = [rng.normal(0, 1, (1, *shape)), rng.normal(1e6, 1e-3, (30, *shape)),
              rng.normal(1e6, 1e-3, (2, *shape))]
    running = RunningStats(per="channel", channels_last=True)
    for p in pieces:
        running.add(p)
    got = running.stats()
    want = batch_stats(np.concatenate(pieces), per="channel", channels_last=True)
    assert got.count == want.count == 33 * 1600
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got.var, want.var, rtol=1e-13, atol=0)


@st.composite
def _piece_sets(draw):
    per = draw(st.sampled_from(["activation", "channel"]))
    channels_last = draw(st.booleans())
    sample = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    sizes = draw(st.lists(st.one_of(st.integers(1, 3), st.integers(1, 300)),
                          min_size=2, max_size=5))
    shared = draw(st.floats(-1e8, 1e8))
    offsets = draw(st.lists(st.one_of(st.just(shared), st.floats(-1e8, 1e8)),
                            min_size=len(sizes), max_size=len(sizes)))
    scales = draw(st.lists(st.floats(-6, 3).map(lambda e: 10.0 ** e),
                           min_size=len(sizes), max_size=len(sizes)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    pieces = [rng.standard_normal((n, *sample)) * s + o
              for n, s, o in zip(sizes, scales, offsets, strict=True)]
    return per, channels_last, pieces


def _check_against_batch_stats(per, channels_last, pieces) -> None:
    running = RunningStats(per=per, channels_last=channels_last)
    for p in pieces:
        running.add(p)
    x = np.concatenate(pieces)
    got, want = running.stats(), batch_stats(x, per=per, channels_last=channels_last)
    assert got.count == want.count
    big = float(np.max(np.abs(x)))
    # The mean against the correctly rounded one (math.fsum), within the error bound of a
    # float64 sum of n values of at most ``big`` (Higham's gamma_n: n eps big).  A few eps
    # of big is what the mean usually shows, but sums of pieces far apart (-7.9e7 and 0)
    # over 4,800 values per channel were seen 40-48 eps * big off, in RunningStats and
    # in numpy's own strided (channels-last) reduction alike.
    axis = (-1 if channels_last else 1) if per == "channel" else None
    rows = (x.reshape(len(x), -1).T if axis is None
            else np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1))
    exact = np.array([math.fsum(row) for row in rows]) / rows.shape[1]
    np.testing.assert_allclose(got.mean.reshape(-1), exact, rtol=0,
                               atol=(rows.shape[1] + 1) * EPS * big)
    # The running mean is a fixed shift plus a small offset, so its rounding never
    # enters the merge: the variance is as exact as the two passes of batch_stats
    # (1e-12: a few hundred eps, for sums over up to ~1000 values per statistic).
    np.testing.assert_allclose(got.var, want.var, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(case=_piece_sets())
def test_running_stats_match_batch_stats_for_uneven_far_pieces(case):
    """Pieces of 1 to 300 samples, offsets up to 1e8, spreads 1e-6 to 1e3: the running
    statistics equal the two-pass statistics of the concatenation, to the accuracy
    that float64 means allow."""
    _check_against_batch_stats(*case)


def test_uneven_pieces_check_is_sharp_enough_to_catch_no_fallback(monkeypatch):
    """Guards the tolerance above: without the two-pass fallback the far-piece case
    fails it (the slack for rounded means does not hide the one-pass cancellation)."""
    pieces = _far_pieces(3000, "near")
    _check_against_batch_stats("activation", False, pieces)
    monkeypatch.setattr(bnmod, "_ONE_PASS_LIMIT", float("inf"))
    with pytest.raises(AssertionError):
        _check_against_batch_stats("activation", False, pieces)


# ------------------------------------------------- 9. BatchNormalizer(out=)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int16])
@pytest.mark.parametrize("per", ["activation", "channel"])
def test_batch_normalizer_into_out(dtype, per):
    """Into ``out``: the same bits as a fresh result, and ``out`` itself is returned
    (every element written: ``out`` starts as NaN)."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((4, 3, 5, 6)) * 20).astype(dtype)
    s = batch_stats(x, per=per)
    norm = BatchNormalizer(s.mean, s.var, per=per, gamma=1.5, beta=-0.25)
    want = norm(x)
    out = np.full(x.shape, np.nan, want.dtype)
    got = norm(x, out=out)
    assert got is out
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("per", "channels_last"), [("activation", False), ("channel", False),
                                                    ("channel", True)])
def test_batch_normalizer_in_place(dtype, per, channels_last):
    """``out=x`` (how pass 2 normalizes in its read buffer): the same bits as a fresh
    result, written over x."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((3, 4, 6, 5)) * 7 + 2).astype(dtype)
    s = batch_stats(x, per=per, channels_last=channels_last)
    norm = BatchNormalizer(s.mean, s.var, per=per, channels_last=channels_last, beta=0.5)
    want = norm(x)
    got = norm(x, out=x)
    assert got is x
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", ["shape", "dtype", "non-contiguous", "fortran"])
def test_batch_normalizer_refuses_unusable_out(bad):
    """An ``out`` the kernel cannot write through (wrong shape or dtype, strided,
    Fortran order) is a ValueError, not a silently wrong or unused buffer."""
    x = np.random.default_rng(5).standard_normal((4, 3, 5)).astype(np.float32)
    s = batch_stats(x)
    norm = BatchNormalizer(s.mean, s.var)
    out = {
        "shape": np.empty((4, 3, 6), np.float32),
        "dtype": np.empty(x.shape, np.float64),
        "non-contiguous": np.empty((8, 3, 5), np.float32)[::2],
        "fortran": np.asfortranarray(np.empty(x.shape, np.float32)),
    }[bad]
    with pytest.raises(ValueError, match="out must be a C-contiguous float32 array"):
        norm(x, out=out)


# -------------------------------------------------------- 10. _thread_scratch


def test_thread_scratch_nested_gets_its_own_buffers():
    """A nested use (a kernel inside a kernel) must not hand out the buffers the
    outer one is using; one after another, the same buffers are reused."""
    with _thread_scratch() as outer:
        mine = outer.get("dev", (4,), np.float64)
        mine[:] = 1.0
        with _thread_scratch() as inner:
            assert inner is not outer
            inner.get("dev", (4,), np.float64)[:] = 2.0
        np.testing.assert_array_equal(mine, 1.0)
    with _thread_scratch() as first:
        pass
    with _thread_scratch() as second:
        assert second is first is outer  # the thread's own, kept between calls
        assert second.get("dev", (4,), np.float64) is not None


def test_thread_scratch_is_per_thread():
    """Another thread never gets this thread's scratch buffers."""
    with _thread_scratch() as here:
        pass
    seen = []

    def other():
        with _thread_scratch() as scratch:
            seen.append(scratch)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen and seen[0] is not here


# ------------------------------------------------------- 11. --jobs, bit for bit


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_jobs_give_identical_outputs_and_statistics(tmp_path, invoke, monkeypatch, per):
    """20 samples in groups of 3 (large enough for the merges to use threads): --jobs 1
    and --jobs 3 write the same bytes and save the same statistics."""
    batch = _dataset(tmp_path / "d", 20, shape=(8, 100, 110))
    _groups_of(monkeypatch, batch, 3)
    for jobs in ("1", "3"):
        _ok(invoke, "batchnorm", "d", "--per", per, "-j", jobs, "-o", f"o{jobs}/",
            "--save-stats", f"s{jobs}.npz", "-q", "--no-sync")
    names = sorted(os.listdir(tmp_path / "o1"))
    assert names == sorted(os.listdir(tmp_path / "o3")) and len(names) == 20
    for name in names:
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o3" / name).read_bytes()
    with np.load(tmp_path / "s1.npz") as one, np.load(tmp_path / "s3.npz") as three:
        assert sorted(one.files) == sorted(three.files)
        for key in one.files:
            assert one[key].dtype == three[key].dtype
            assert one[key].tobytes() == three[key].tobytes(), key
        assert int(one["count"]) == (20 if per == "activation" else 20 * 100 * 110)


# ------------------------------------------------- 12. Ctrl-C during pass 1


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_interrupt_during_pass_1_writes_nothing(tmp_path, invoke, monkeypatch, jobs):
    """Ctrl-C while the 2nd group is reduced (the 3rd being read): exit 130, no output,
    no temporary file."""
    batch = _dataset(tmp_path / "d", 12)
    _groups_of(monkeypatch, batch, 3)
    real = RunningStats.add
    calls = []

    def add(self, piece):
        calls.append(len(piece))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, piece)

    monkeypatch.setattr(RunningStats, "add", add)
    result, _ = _run(invoke, "batchnorm", "d", "-o", "out/", "-j", jobs,
                     "--save-stats", "s.npz")
    assert result.exit_code == 130, (result.stderr, result.exception)
    assert "interrupted" in result.stderr
    assert calls == [3, 3]
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.npz").exists()
    assert _temps(tmp_path) == []


def test_interrupt_does_not_wait_for_a_stuck_read(tmp_path, invoke, monkeypatch):
    """Ctrl-C while the next group's reads are blocked (a slow disk, a hung network
    file system): the run ends at once with 130 instead of waiting for them."""
    batch = _dataset(tmp_path / "d", 9)
    _groups_of(monkeypatch, batch, 3)
    release = threading.Event()
    blocked, finished = [], []

    def stuck(method):
        def call(self, *args, **kwargs):
            if self.label >= "d/s003":  # the 2nd group and later
                blocked.append(self.label)
                release.wait(10)
                finished.append(self.label)
            return method(self, *args, **kwargs)
        return call

    for name in ("load", "read"):  # whichever pass 1 reads through
        if hasattr(Source, name):
            monkeypatch.setattr(Source, name, stuck(getattr(Source, name)))

    def add(self, piece):
        deadline = time.monotonic() + 5
        while not blocked and time.monotonic() < deadline:  # the next group is being read
            time.sleep(0.001)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunningStats, "add", add)
    done = []
    runner = threading.Thread(target=lambda: done.append(_run(invoke, "batchnorm", "d", "-o",
                                                              "out/", "-j", "3", "-q")[0]),
                              daemon=True)
    runner.start()
    runner.join(4)  # the stuck reads last 10 s, unless released
    in_time = list(done)
    release.set()
    deadline = time.monotonic() + 5
    while len(finished) < len(blocked) and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.join(5)
    assert blocked, "the next group was not being read during the reduction"
    assert in_time, "the interrupted run waited for the stuck reads"
    assert in_time[0].exit_code == 130, (in_time[0].stderr, in_time[0].exception)
    assert not (tmp_path / "out").exists()
    assert _temps(tmp_path) == []




def test_histograms_only_where_someone_sees_them(tmp_path, invoke, monkeypatch):
    """Over 25 inputs the table draws 20: their summaries have histograms, the others
    only the grid one the total's histogram is made of; --json shows every input, so
    every one has its histogram."""
    from normcli.cli import report

    monkeypatch.setattr(report, "TABLE_INPUTS", 20)
    _dataset(tmp_path / "d", 25)
    result = _ok(invoke, "batchnorm", "d", "--json")
    data = json.loads(result.stdout)
    assert len(data["inputs"]) == 25
    assert all(row[k]["hist"] is not None for row in data["inputs"] for k in ("before", "after"))
    seen = []
    real = batch_run.summarize
    monkeypatch.setattr(batch_run, "summarize",
                        lambda x, **kw: seen.append(kw.get("histogram", True)) or real(x, **kw))
    result = _ok(invoke, "batchnorm", "d", "-o", "out/")
    assert "5 more inputs not shown" in " ".join(result.stderr.split())
    # before and after: full histograms for the 20 drawn inputs, the grid (for the total's) for 5
    assert sorted(seen, key=str) == [True] * 40 + ["grid"] * 10
    lines = result.stderr.splitlines()
    total = next(i for i, line in enumerate(lines) if line.startswith("total"))
    assert "█" in lines[total] and "█" in lines[total + 1]  # before and after


@pytest.mark.parametrize("first", ["<f4", ">f4"])
def test_big_endian_float32_files_stream_like_native_ones(tmp_path, invoke, first):
    """'>f4' files compute in float32 (as '<f4' do) and go through the thread buffers:
    once refused with 'out must be a C-contiguous float32 array'."""
    batch = _dataset(tmp_path / "d", 6)
    np.save(tmp_path / "d" / "s000.npy", batch[0].astype(first))
    np.save(tmp_path / "d" / "s003.npy", batch[3].astype(">f4"))
    _ok(invoke, "batchnorm", "d", "-o", "out/", "-q")
    out = _outputs(tmp_path / "out")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, normcli.batch_norm(batch), rtol=1e-6, atol=1e-6)
    assert normcli.batch_norm(batch.astype(">f4")).dtype == np.float32


def test_thread_scratch_keeps_small_buffers_only():
    """Buffers up to 8 MiB stay with the thread for the next call; a larger one (a
    whole channel of a big batch) is freed when the call ends."""
    from normcli.ops import _blocks

    with _blocks._thread_scratch() as scratch:
        small = scratch.get("small", (1000,), np.dtype(np.float64))
        scratch.get("big", (2 << 20,), np.dtype(np.float64))  # 16 MiB
    with _blocks._thread_scratch() as again:
        assert again is scratch
        assert again.get("small", (1000,), np.dtype(np.float64)).base is small.base
        assert ("big", np.dtype(np.float64)) not in again._buffers


def test_without_positional_reads_the_portable_reader_is_used(tmp_path, monkeypatch, invoke):
    """Where os.pread/os.preadv are missing (Windows), read_npy_into falls back to
    read_npy plus os.stat; and without os.writev the writes go through write()."""
    from normcli.files import npy

    monkeypatch.setattr(npy, "_POSITIONAL_READS", False)
    monkeypatch.delattr(npy.os, "writev")
    batch = _dataset(tmp_path / "d", 7)
    buf = np.empty(batch[0].shape, batch.dtype)
    arr, st = npy.read_npy_into(tmp_path / "d" / "s001.npy", buf)
    assert np.shares_memory(arr, buf) and st.st_size == (tmp_path / "d" / "s001.npy").stat().st_size
    np.testing.assert_array_equal(arr, batch[1])
    _ok(invoke, "batchnorm", "d", "-o", "out/", "-q")
    np.testing.assert_allclose(_outputs(tmp_path / "out"), normcli.batch_norm(batch), rtol=1e-6,
                               atol=1e-6)


def test_many_small_npy_inputs_default_to_one_job(tmp_path):
    """Without --jobs, .npy inputs under SMALL_INPUT_BYTES on average get one job
    (the GIL makes more slower); larger ones, other kinds and an explicit --jobs
    keep theirs."""
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    for i in range(3):
        np.save(small / f"s{i}.npy", np.zeros((4, 8, 8), np.float32))
        np.save(large / f"l{i}.npy", np.zeros(SMALL_INPUT_BYTES // 4 + 1, np.float32))

    def jobs(folder, given=None):
        return choose_jobs(given, open_sources([str(folder)], RunOptions()))

    assert jobs(small) == 1
    assert jobs(small, 3) == 3
    assert jobs(large) is None
    np.savez(tmp_path / "small.npz", a=np.zeros(3), b=np.zeros(3))
    assert jobs(tmp_path / "small.npz") is None  # members: their size is not known cheaply
