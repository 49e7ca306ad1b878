"""The fixed shape of a run's reductions: groups, one tree, the same on every engine."""

from __future__ import annotations

import numpy as np
import pytest

from normcli.errors import InputError
from normcli.runs.cluster import reduce_shards, shard_bounds
from normcli.runs.dataset import Failures, channel_statistics
from normcli.runs.engine import ThreadEngine
from normcli.runs.inputs import open_sources
from normcli.runs.options import RunOptions
from normcli.runs.reduce import GROUP, Stack, reduce_local, split


def _tree(lo: int, hi: int):
    """The tree of the module docstring, written out: ``[lo, hi)`` split at the
    largest power of two below its size."""
    if hi - lo == 1:
        return lo
    p = split(hi - lo)
    return (_tree(lo, lo + p), _tree(lo + p, hi))


def _pair(a, b):
    return (a, b)


@pytest.mark.parametrize("m", range(1, 70))
def test_the_stack_builds_the_split_tree(m):
    stack = Stack(_pair)
    for g in range(m):
        stack.push(g)
    assert stack.result() == _tree(0, m)


def test_split():
    assert [split(n) for n in range(2, 11)] == [1, 2, 2, 4, 4, 4, 4, 8, 8]
    with pytest.raises(ValueError):
        split(1)


def _nodes(lo: int, hi: int, out: set) -> set:
    out.add((lo, hi))
    if hi - lo > 1:
        p = split(hi - lo)
        _nodes(lo, lo + p, out)
        _nodes(lo + p, hi, out)
    return out


@pytest.mark.parametrize("groups", [1, 2, 3, 7, 8, 9, 31, 100, 250, 1000, 4097])
@pytest.mark.parametrize("jobs", [1, 2, 3, 100])
@pytest.mark.parametrize("shard", [None, 8, 24, 256])
def test_every_shard_of_a_reduction_is_a_subtree_and_they_cover_the_groups(groups, jobs,
                                                                         shard):
    shards = reduce_shards(groups, jobs, shard)
    assert shards[0][0] == 0 and shards[-1][1] == groups
    assert all(a[1] == b[0] for a, b in zip(shards, shards[1:], strict=False))
    nodes = _nodes(0, groups, set())
    assert set(shards) <= nodes
    # a stack per shard, then the tree over the shards, is the tree over the groups
    by_range = {}
    for lo, hi in shards:
        stack = Stack(_pair)
        for g in range(lo, hi):
            stack.push(g)
        by_range[(lo, hi)] = stack.result()

    def tree(lo, hi):
        if (lo, hi) in by_range:
            return by_range[(lo, hi)]
        p = split(hi - lo)
        return (tree(lo, lo + p), tree(lo + p, hi))

    assert tree(0, groups) == _tree(0, groups)


@pytest.mark.parametrize("count", [0, 1, 2, 5, 40, 2000, 1_280_000])
@pytest.mark.parametrize("jobs", [1, 2, 100])
def test_guided_shards_cover_the_inputs_and_shrink(count, jobs):
    b = shard_bounds(count, jobs)
    assert b[0] == 0 and b[-1] == count
    sizes = [hi - lo for lo, hi in zip(b, b[1:], strict=False)]
    assert all(0 < s <= 256 for s in sizes)
    assert sizes == sorted(sizes, reverse=True)
    if count >= 4 * jobs:
        assert len(sizes) >= 4 * jobs  # (enough to go round)


@pytest.mark.parametrize("jobs", [1, 2, 3])
@pytest.mark.parametrize("window", [1, 8, 32, 100])
def test_a_local_reduction_has_the_fixed_shape_whatever_the_threads_or_window(jobs, window):
    count = 83
    with ThreadEngine(jobs) as engine:
        got = reduce_local(engine, lambda i: i, count, lambda part, i, r: (*part, r),
                           _pair, tuple, window=window)
    groups = [tuple(range(g, min(g + GROUP, count))) for g in range(0, count, GROUP)]

    def tree(lo, hi):
        if hi - lo == 1:
            return groups[lo]
        p = split(hi - lo)
        return (tree(lo, lo + p), tree(lo + p, hi))

    assert got == tree(0, len(groups))


def _float_inputs(tmp_path, count, channels=3, bad=()):
    rng = np.random.default_rng(1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        c = 1 if i in bad else channels
        a = (1e4 + rng.normal(size=(c, 5 + i % 4, 7)) * 10 ** (i % 5)).astype(np.float32)
        paths.append(tmp_path / f"a{i:03d}.npy")
        np.save(paths[-1], a)
    return open_sources([str(p) for p in paths], RunOptions())


def test_float_statistics_are_the_same_bits_on_one_thread_or_many(tmp_path):
    sources = _float_inputs(tmp_path, 77)
    found = []
    for jobs in (1, 2, 3):
        with ThreadEngine(jobs) as engine:
            stats, _ = channel_statistics(sources, RunOptions(), engine, Failures(False))
        found.append(stats)
    for other in found[1:]:
        for name in ("mean", "m2", "count", "min", "max"):
            assert np.array_equal(getattr(other, name), getattr(found[0], name)), name
    # and they are the data's, to float64 rounding
    values = np.concatenate([np.load(s.path).reshape(3, -1).astype(np.float64)
                             for s in sources], axis=1)
    assert np.allclose(found[0].mean, values.mean(axis=1), rtol=1e-14, atol=0)
    assert np.allclose(found[0].m2 / found[0].count, values.var(axis=1), rtol=1e-12, atol=0)


def test_an_input_of_other_channels_is_refused_at_its_own_index(tmp_path):
    # the first input decides, however the tree grouped them (here 1 channel in
    # groups 0 and 2; the rest of group 2 are 3-channel)
    sources = _float_inputs(tmp_path, 30, bad={3, 17})
    with ThreadEngine(2) as engine:
        with pytest.raises(InputError, match=r"a003\.npy: has 1 channel but \S*a000\.npy has 3"):
            channel_statistics(sources, RunOptions(), engine, Failures(False))
        failures = Failures(True)
        stats, _ = channel_statistics(sources, RunOptions(), engine, failures)
    assert [f.index for f in failures.sorted()] == [3, 17]
    assert stats.images == 28
    assert int(stats.count[0]) == sum(np.load(s.path).size // 3 for i, s in enumerate(sources)
                                      if i not in (3, 17))
    # the first input of another kind decides when it comes first
    first_gray = _float_inputs(tmp_path / "g", 20, channels=3, bad={0})
    failures = Failures(True)
    with ThreadEngine(1) as engine:
        stats, _ = channel_statistics(first_gray, RunOptions(), engine, failures)
    assert stats.channels == 1 and len(failures.sorted()) == 19
