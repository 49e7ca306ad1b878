"""Per-channel dataset statistics: exact against float64 numpy over every pixel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normcli.ops.dataset import ChannelMoments, value_table


def _reference(rows: list[np.ndarray]):
    every = np.concatenate([r.astype(np.float64) for r in rows], axis=1)
    ddof1 = every.std(axis=1, ddof=1) if every.shape[1] > 1 else None
    return every.mean(axis=1), every.std(axis=1), ddof1, every


def _close(a, b, rel=1e-12):
    np.testing.assert_allclose(a, b, rtol=rel, atol=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=8),
       st.integers(0, 2**32 - 1))
def test_counted_images_of_mixed_sizes_are_exact(sizes, seed):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (3, h * w), dtype=np.uint8) for h, w in sizes]
    acc = None
    for im in images:
        m = ChannelMoments.from_values(im, scaled_from=np.uint8)
        acc = m if acc is None else acc.merge(m)
    got = acc.finish()
    values = [np.divide(im, np.float32(255), dtype=np.float32) for im in images]
    mean, std, std1, every = _reference(values)
    _close(got.mean, mean)
    _close(got.std, std)
    if every.shape[1] > 1:
        _close(got.std_unbiased, std1)
    assert got.count.tolist() == [every.shape[1]] * 3 and got.images == len(images)
    np.testing.assert_array_equal(got.min, every.min(axis=1))
    np.testing.assert_array_equal(got.max, every.max(axis=1))


def test_exact_counts_merge_in_any_order_to_the_same_bits():
    rng = np.random.default_rng(1)
    parts = [ChannelMoments.from_values(rng.integers(0, 65536, (2, int(n)), dtype=np.uint16),
                                        scaled_from=np.uint16)
             for n in rng.integers(1, 5000, 30)]
    left = parts[0]
    for p in parts[1:]:
        left = left.merge(p)
    tree = parts
    while len(tree) > 1:  # pairwise, as a sharded engine would
        tree = [tree[i].merge(tree[i + 1]) if i + 1 < len(tree) else tree[i]
                for i in range(0, len(tree), 2)]
    a, b = left.finish(), tree[0].finish()
    assert a.mean.tobytes() == b.mean.tobytes() and a.m2.tobytes() == b.m2.tobytes()


def test_float_data_merged_by_chan_to_rounding_and_far_from_zero():
    rng = np.random.default_rng(2)
    rows = [(1e4 + rng.standard_normal((2, int(n)))).astype(np.float32)
            for n in rng.integers(1, 3000, 50)]
    acc = None
    for r in rows:
        m = ChannelMoments.from_values(r)
        acc = m if acc is None else acc.merge(m)
    got = acc.finish()
    mean, std, _, _ = _reference(rows)
    _close(got.mean, mean)
    _close(got.std, std, rel=1e-9)  # (std relative to a mean 1e4 times larger)


def test_nonfinite_counted_and_left_out():
    x = np.array([[1.0, np.nan, 3.0, np.inf], [-np.inf, 2.0, 2.0, 2.0]])
    got = ChannelMoments.from_values(x).finish()
    assert got.nan.tolist() == [1, 0] and got.inf.tolist() == [1, 1]
    assert got.count.tolist() == [2, 3]
    np.testing.assert_array_equal(got.mean, [2.0, 2.0])
    np.testing.assert_array_equal(got.var, [1.0, 0.0])


@pytest.mark.parametrize("key", ["uint8", "uint8/255", "uint16/65535"])
def test_value_tables_are_what_the_readers_return(key):
    table = value_table(key)
    dtype = np.dtype(key.split("/")[0])
    k = np.arange(np.iinfo(dtype).max + 1).astype(dtype)
    if "/" in key:
        np.testing.assert_array_equal(table, np.divide(k, np.float32(np.iinfo(dtype).max),
                                                       dtype=np.float32))
    else:
        np.testing.assert_array_equal(table, k)


def test_saved_statistics_are_what_batchnorm_reads():
    from normcli.ops.moments import BatchStats

    got = ChannelMoments.from_values(np.arange(12, dtype=np.uint8).reshape(3, 4)).finish()
    back = BatchStats.from_mapping(got.to_dict())
    assert back.per == "channel" and back.count == 4
    np.testing.assert_array_equal(back.mean, got.mean)
    np.testing.assert_array_equal(back.var, got.var)


def test_absorb_in_place_equals_merge():
    rng = np.random.default_rng(3)
    parts = [ChannelMoments.from_values(rng.integers(0, 256, (3, 50), dtype=np.uint8),
                                        scaled_from=np.uint8),
             ChannelMoments.from_values(rng.standard_normal((3, 40))),
             ChannelMoments.from_values(rng.integers(0, 256, (3, 7), dtype=np.uint8))]
    merged, absorbed = parts[0], ChannelMoments(3)
    for p in parts[1:]:
        merged = merged.merge(p)
    for p in parts:
        absorbed.absorb(p)
    a, b = merged.finish(), absorbed.finish()
    assert a.images == b.images == 3
    for name in ("count", "mean", "m2", "min", "max"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
