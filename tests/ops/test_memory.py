"""normcli.ops._memory: the pool of large output buffers.

A result that is still reachable (itself, a view, a memoryview, a weak
reference to its base, a torch tensor on it) must never be handed out again;
results must be the same bits with the pool on and off.
"""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

import normcli
from normcli.errors import InputError
from normcli.ops import _memory

SHAPE = (4, 8, 96, 96)  # 1.2 MB of float32: above the pool's threshold


@pytest.fixture(autouse=True)
def _fresh_pool(monkeypatch):
    monkeypatch.delenv(_memory.POOL_ENV, raising=False)
    _memory.release()
    yield
    _memory.release()


def _x(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


CALLS = {
    "bn channel": lambda x: normcli.batch_norm(x, per="channel"),
    "bn activation": lambda x: normcli.batch_norm(x, per="activation"),
    "bn given": lambda x: normcli.batch_norm(x, per="channel", mean=np.full(8, 0.5),
                                             var=np.full(8, 2.0)),
    "lrn": lambda x: normcli.lrn(x, mode="inter", n=5),
}


def test_a_dropped_result_is_recycled():
    a = _memory.empty(SHAPE, np.float32)
    address = a.__array_interface__["data"][0]
    del a
    b = _memory.empty(SHAPE, np.float32)
    assert b.__array_interface__["data"][0] == address


def test_small_results_are_plain_arrays():
    a = _memory.empty((16, 16), np.float64)
    assert a.base is None and a.flags.owndata


def _keep(a, keep):
    return {"array": lambda: a, "view": lambda: a[1:, ::2], "reshape": lambda: a.reshape(-1),
            "memoryview": lambda: memoryview(a),
            "frombuffer": lambda: np.frombuffer(memoryview(a), np.float32),
            "weakref to base": lambda: weakref.ref(a.base), "base": lambda: a.base}[keep]()


@pytest.mark.parametrize("keep", ["array", "view", "reshape", "memoryview", "frombuffer",
                                  "weakref to base", "base"])
def test_memory_still_reachable_is_never_handed_out(keep):
    a = _memory.empty(SHAPE, np.float32)
    a[...] = 7.0
    kept = _keep(a, keep)
    address, nbytes = a.__array_interface__["data"][0], a.nbytes
    del a
    gc.collect()
    others = [_memory.empty(SHAPE, np.float32) for _ in range(3)]
    for other in others:
        other[...] = -1.0
        assert other.__array_interface__["data"][0] != address
    if keep == "weakref to base":
        kept = kept()
    if keep in ("weakref to base", "base"):
        kept = kept[:nbytes].view(np.float32)
    assert np.all(np.asarray(kept) == 7.0)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_kept_result_is_not_overwritten_by_later_calls(call):
    f = CALLS[call]
    first = f(_x(0))
    view = first[2:]
    want, want_view = first.copy(), view.copy()
    del first
    for seed in (1, 2, 3):
        f(_x(seed))
    np.testing.assert_array_equal(view, want_view)
    again = f(_x(0))
    assert not np.shares_memory(again, view)
    np.testing.assert_array_equal(again, want)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_results_are_the_same_bits_with_the_pool_off(call, monkeypatch):
    f = CALLS[call]
    x = _x(5)
    pooled = [f(x).copy() for _ in range(2)]  # the second into recycled memory
    monkeypatch.setenv(_memory.POOL_ENV, "0")
    plain = f(x)
    assert plain.base is None  # a new array of its own
    for y in pooled:
        assert y.tobytes() == plain.tobytes()


def test_the_pool_is_off_with_0_and_bounded_by_its_size(monkeypatch):
    monkeypatch.setenv(_memory.POOL_ENV, "0")
    a = _memory.empty(SHAPE, np.float32)
    assert a.base is None
    del a
    monkeypatch.setenv(_memory.POOL_ENV, "4M")  # room for 3 of the 1.2 MB buffers
    held = [_memory.empty(SHAPE, np.float32) for _ in range(6)]
    assert _memory.idle_bytes() == 0
    del held
    assert 0 < _memory.idle_bytes() <= 4 << 20
    assert _memory.release() > 0 and _memory.idle_bytes() == 0


def test_a_bad_pool_size_is_refused(monkeypatch):
    monkeypatch.setenv(_memory.POOL_ENV, "lots")
    with pytest.raises(InputError, match="NORMCLI_OUTPUT_POOL"):
        _memory.empty(SHAPE, np.float32)


def test_a_bad_pool_size_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    np.save(tmp_path / "big.npy", np.ones((8, 64, 32, 32), np.float32))  # (2 MiB: pooled)
    r = subprocess.run([sys.executable, "-m", "normcli", "lrn", str(tmp_path / "big.npy"),
                        "-o", str(tmp_path / "out.npy"), "-q"], capture_output=True, text=True,
                       env={**__import__("os").environ, _memory.POOL_ENV: "lots"}, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "normcli: error: NORMCLI_OUTPUT_POOL: 'lots' is not a size (0 to turn the pool off, "
        "or e.g. 64M, 1G)"]
    assert not (tmp_path / "out.npy").exists()


def test_threads_never_share_a_buffer():
    errors = []

    def worker(k):
        for i in range(100):
            a = _memory.empty(SHAPE, np.float32)
            a.fill(k)
            if not np.all(a == k):  # (numpy lets the other threads run meanwhile)
                errors.append((k, i))
            del a

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    kept = [_memory.empty(SHAPE, np.float32) for _ in range(3)]
    addresses = {a.__array_interface__["data"][0] for a in kept}
    assert len(addresses) == len(kept)


def test_an_input_that_would_not_fit_with_idle_buffers_releases_them(monkeypatch):
    from normcli.runs.inputs import check_memory

    _memory.empty(SHAPE, np.float32)  # dropped at once: idle, 1.2 MB
    assert _memory.idle_bytes() > 0
    x = np.zeros(SHAPE, np.float32)
    monkeypatch.setenv("NORMCLI_MAX_BYTES", str(3 * x.nbytes))  # fits, but not with the pool
    check_memory("x.npy", x)
    assert _memory.idle_bytes() > 0
    monkeypatch.setenv("NORMCLI_MAX_BYTES", str(2 * x.nbytes + 4096))
    check_memory("x.npy", x)
    assert _memory.idle_bytes() == 0
