"""compare over many inputs streams them as batchnorm does: same numbers, flat memory, progress."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

from normcli import batch_norm, lrn
from normcli.errors import InputError
from normcli.ops.summary import summarize
from normcli.runs import batch as batch_run
from normcli.runs.explain import compare


def _dataset(folder, count, shape=(6, 9, 10), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batch = np.maximum(rng.standard_normal((count, *shape)) * 2, 0).astype(np.float32)
    for i, x in enumerate(batch):
        np.save(folder / f"s{i:04d}.npy", x)
    return batch


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_streamed_numbers_equal_the_batch_in_memory(tmp_path, per):
    batch = _dataset(tmp_path / "d", 7)
    got = compare([tmp_path / "d"], per=per, n=3, jobs=2)
    want = {"input": batch, "lrn_inter": lrn(batch, n=3),
            "lrn_intra": lrn(batch, mode="intra", n=3), "batchnorm": batch_norm(batch, per=per)}
    assert got.shape == (7, 6, 9, 10) and got.stacked and got.batch_size == 7
    assert got.batch == "the 7 inputs, one sample each"
    for key, _, s in got.columns:
        w = summarize(want[key])
        assert (s.zeros, s.size, s.nonfinite) == (w.zeros, w.size, 0)
        assert sum(s.hist) == w.count and len(s.edges) == len(s.hist) + 1  # the total's grid
        if key == "batchnorm":  # float32 results within an ulp of the in-memory ones
            assert (s.min, s.max, s.mean, s.std) == pytest.approx((w.min, w.max, w.mean, w.std),
                                                                  rel=1e-6, abs=1e-6)
            continue
        assert (s.min, s.max) == (w.min, w.max)
        assert (s.mean, s.std) == pytest.approx((w.mean, w.std), rel=1e-12)
        assert np.histogram(want[key], s.edges)[0].tolist() == list(s.hist)


def test_memory_stays_flat_over_many_inputs(tmp_path, monkeypatch):
    """Once the whole stack and its three results were held: 2,000 x (64, 56, 56)
    took 6.3 GB.  Now two groups of the statistics pass and a few arrays per worker,
    whatever the number of inputs, and a few summaries per input."""
    monkeypatch.setattr(batch_run, "GROUP_BYTES", 64 << 10)
    peaks = {}
    for count in (40, 320):  # 32 KiB each: 1.25 MiB, then 10 MiB in all
        batch = _dataset(tmp_path / str(count), count, shape=(8, 32, 32))
        tracemalloc.start()
        try:
            assert compare([tmp_path / str(count)], jobs=2).batch_size == count
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    per_input = (peaks[320] - peaks[40]) / 280  # the summaries the report keeps of each
    assert per_input < 16 << 10, peaks  # (holding the data: 4 x 32 KiB per input)
    assert peaks[320] < batch.nbytes / 3, (peaks, batch.nbytes)


def test_progress_names_both_passes(tmp_path):
    _dataset(tmp_path / "d", 5)
    calls = []
    compare([tmp_path / "d"], progress=lambda *a: calls.append(a), jobs=1)
    stages = [c[0] for c in calls]
    assert stages == ["batch statistics"] * 6 + ["comparing"] * 6
    assert calls[-1][1:3] == (5, 5) and calls[-1][3] == 5 * 6 * 9 * 10 * 4


def test_a_file_changed_between_the_passes_is_an_error(tmp_path, monkeypatch):
    _dataset(tmp_path / "d", 4)
    real = batch_run._statistics

    def statistics_then_change(*args, **kwargs):
        out = real(*args, **kwargs)
        path = tmp_path / "d" / "s0002.npy"
        np.save(path, np.ones((6, 9, 10), np.float32))
        os.utime(path, ns=(1, 1))
        return out

    monkeypatch.setattr(batch_run, "_statistics", statistics_then_change)
    with pytest.raises(InputError, match="s0002.npy: changed after the statistics"):
        compare([tmp_path / "d"])


def test_the_command_shows_a_bar_only_on_a_terminal_and_names_the_batch(invoke, tmp_path):
    _dataset(tmp_path / "d", 3)
    result = invoke("compare", "d")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "BN per activation over a batch of 3: the 3 inputs, one sample each" in \
        " ".join(result.stdout.split())
