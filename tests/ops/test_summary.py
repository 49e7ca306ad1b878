"""normcli.ops.summary against float64 numpy references, and by properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from normcli.ops.summary import BLOCK, Summary, merge, summarize


def reference(arr: np.ndarray, bins: int = 16) -> dict:
    """The obviously correct route: copy the finite values to float64 and ask numpy."""
    a = np.asarray(arr)
    flat = a.astype(np.float64).ravel()
    fin = flat[np.isfinite(flat)]
    ref = {
        "size": a.size,
        "count": fin.size,
        "nonfinite": a.size - fin.size,
        "zeros": int(np.sum(flat == 0)),
    }
    if fin.size:
        lo, hi = fin.min(), fin.max()
        ref.update(min=lo, max=hi, mean=fin.mean(), std=fin.std())
        if lo == hi:
            ref["hist"] = (fin.size,) + (0,) * (bins - 1)
        else:
            ref["hist"] = tuple(np.histogram(fin, bins=bins, range=(lo, hi))[0])
    else:
        ref.update(min=None, max=None, mean=None, std=None, hist=(0,) * bins)
    return ref


def check(s: Summary, ref: dict, rtol: float = 1e-12) -> None:
    for key in ("size", "count", "nonfinite", "zeros", "min", "max", "hist"):
        assert getattr(s, key) == ref[key], key
    for key in ("mean", "std"):
        if ref[key] is None:
            assert getattr(s, key) is None
        else:
            scale = max(abs(ref["min"]), abs(ref["max"]), 1e-300)
            assert getattr(s, key) == pytest.approx(ref[key], rel=rtol, abs=rtol * scale), key


def random_with_nonfinite(rng, dtype, shape=(7, 1000)):
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=30, replace=False)
    flat[idx[:10]] = np.nan
    flat[idx[10:20]] = np.inf
    flat[idx[20:25]] = -np.inf
    flat[idx[25:]] = 0
    return x


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_floats_with_nan_and_inf_match_reference(dtype):
    x = random_with_nonfinite(np.random.default_rng(0), dtype)
    s = summarize(x)
    check(s, reference(x))
    assert s.nonfinite == 25 and s.zeros >= 5
    assert s.dtype == np.dtype(dtype).name and s.shape == (7, 1000)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_all_finite_array_spanning_many_blocks(dtype):
    x = np.random.default_rng(1).standard_normal(3 * BLOCK + 17).astype(dtype)
    check(summarize(x), reference(x))


def test_nonfinite_spread_over_many_blocks():
    x = np.random.default_rng(2).uniform(-1, 1, 4 * BLOCK).astype(np.float32)
    x[:: BLOCK // 3] = np.nan
    x[5] = -np.inf
    check(summarize(x), reference(x))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint64])
def test_integers_match_reference(dtype):
    info = np.iinfo(dtype)
    x = np.random.default_rng(3).integers(
        max(info.min, -1000), min(info.max, 1000), (50, 51), dtype=dtype, endpoint=True
    )
    s = summarize(x)
    check(s, reference(x))
    assert s.nonfinite == 0 and s.dtype == np.dtype(dtype).name


def test_bools():
    x = np.array([[True, False, True], [True, True, False]])
    s = summarize(x, bins=4)
    assert (s.min, s.max, s.zeros, s.nonfinite, s.dtype) == (0.0, 1.0, 2, 0, "bool")
    assert s.mean == pytest.approx(4 / 6, rel=1e-15)
    assert s.std == pytest.approx(np.std(x.astype(np.float64)), rel=1e-15)
    assert s.hist == (2, 0, 0, 4)


def test_non_contiguous_and_fortran_views():
    base = np.random.default_rng(4).standard_normal((300, 400))
    for view in (base[::3, 1::2], base.T, np.asfortranarray(base)):
        check(summarize(view), reference(view))


def test_two_pass_keeps_digits_with_a_large_mean():
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(200_000)
    x = 1e8 + noise
    s = summarize(x)
    exact_std = np.std(noise)  # subtracting 1e8 is exact in float64 at this size
    assert s.std == pytest.approx(exact_std, rel=1e-7)
    # The one-pass formula E[x^2] - E[x]^2 loses essentially every digit here.
    naive = math.sqrt(abs(np.mean(x * x) - np.mean(x) ** 2))
    assert abs(naive - exact_std) > 1e-3 * exact_std or naive == 0
    assert s.mean == pytest.approx(1e8 + noise.mean(), rel=1e-15)


def test_constant_array_goes_in_the_first_bin():
    s = summarize(np.full((3, 4), 2.5, dtype=np.float32), bins=5)
    assert s.hist == (12, 0, 0, 0, 0)
    assert (s.min, s.max, s.mean, s.std) == (2.5, 2.5, 2.5, 0.0)


@pytest.mark.parametrize("x", [np.full(4, np.nan), np.array([np.inf, -np.inf]), np.empty((0, 3))])
def test_no_finite_value(x):
    s = summarize(x, bins=3)
    assert (s.min, s.max, s.mean, s.std, s.m2) == (None,) * 5
    assert s.count == 0 and s.nonfinite == x.size and s.hist == (0, 0, 0)
    d = s.to_dict()
    assert d["min"] is None and d["hist"] == [0, 0, 0]


def test_extreme_range_does_not_overflow_the_histogram():
    x = np.array([-1e308, -1e307, 1e307, 1e308])
    s = summarize(x, bins=2)
    assert s.hist == (2, 2) and s.min == -1e308 and s.max == 1e308


def test_to_dict_is_plain_python():
    d = summarize(np.arange(6, dtype=np.int16).reshape(2, 3)).to_dict()
    assert d["shape"] == [2, 3]
    for key in ("min", "max", "mean", "std"):
        assert type(d[key]) is float
    for key in ("size", "count", "zeros", "nonfinite"):
        assert type(d[key]) is int
    assert all(type(c) is int for c in d["hist"]) and "m2" not in d


@pytest.mark.parametrize("bad", [0, -1])
def test_bins_must_be_positive(bad):
    with pytest.raises(ValueError, match="bins must be >= 1"):
        summarize(np.ones(3), bins=bad)


@pytest.mark.parametrize("bad", [np.ones(2, dtype=complex), np.array(["a"]), np.array([None])])
def test_unsupported_dtypes(bad):
    with pytest.raises(TypeError, match="arr must have"):
        summarize(bad)


finite_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
any_floats = st.one_of(finite_floats, st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20), elements=any_floats
    ),
    st.integers(1, 20),
)
def test_hist_counts_sum_to_finite_count(x, bins):
    s = summarize(x, bins=bins)
    assert len(s.hist) == bins
    assert sum(s.hist) == s.count == int(np.isfinite(x).sum())
    assert s.count + s.nonfinite == s.size
    if s.count:
        assert s.min <= s.mean <= s.max
        assert s.hist[0] >= 1
        assert s.hist[-1] >= 1 or s.min == s.max


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        hnp.arrays(np.float64, st.integers(0, 30), elements=any_floats), min_size=1, max_size=5
    )
)
def test_merge_equals_summarize_of_concatenation(parts):
    whole = summarize(np.concatenate(parts))
    total = merge([summarize(p) for p in parts])
    for key in ("size", "count", "zeros", "nonfinite", "min", "max"):
        assert getattr(total, key) == getattr(whole, key), key
    if whole.count:
        scale = max(abs(whole.min), abs(whole.max), 1.0)
        assert total.mean == pytest.approx(whole.mean, rel=1e-12, abs=1e-12 * scale)
        assert total.std == pytest.approx(whole.std, rel=1e-12, abs=1e-12 * scale)
    else:
        assert total.mean is None and total.std is None


def test_merge_random_blocks_to_1e_12():
    rng = np.random.default_rng(6)
    specs = [(1000, 1, 0), (5, 100, 3), (20000, 1e-3, -7)]
    parts = [rng.standard_normal(n) * s + m for n, s, m in specs]
    whole, total = summarize(np.concatenate(parts)), merge([summarize(p) for p in parts])
    assert total.mean == pytest.approx(whole.mean, rel=1e-12)
    assert total.std == pytest.approx(whole.std, rel=1e-12)


def test_merge_histogram_exact_or_none():
    a, b = np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 2.0])
    same = merge([summarize(a, bins=2), summarize(b, bins=2)])
    assert same.hist == (2, 4)  # same range and bins: the counts add up
    c = np.array([5.0, -1.0])
    grid = merge([summarize(a), summarize(c)])  # ranges differ: the power-of-two grid
    assert grid.edges == tuple(np.arange(-1.0, 5.6, 0.5)) and len(grid.hist) == 13
    assert grid.hist == tuple(np.histogram(np.concatenate([a, c]), grid.edges)[0])
    assert merge([summarize(a), summarize(c, histogram=False)]).hist is None
    with_arrays = merge([summarize(a), summarize(c)], arrays=[a, c], bins=6)
    assert with_arrays.hist == summarize(np.concatenate([a, c]), bins=6).hist


def test_merge_dtype_shape_and_errors():
    t = merge([summarize(np.ones((2, 2), np.float32)), summarize(np.ones(3, np.uint8))])
    assert t.dtype == "mixed" and t.shape == (7,)
    with pytest.raises(ValueError, match="at least one"):
        merge([])
    with pytest.raises(ValueError, match="one to one"):
        merge([summarize(np.ones(2))], arrays=[])


@pytest.mark.parametrize("values", [np.arange(10.0), np.array([1.0, np.nan, 3.0]),
                                    np.array([], np.float32), np.arange(5, dtype=np.uint8)])
def test_summary_without_histogram_is_the_same_but_the_histogram(values):
    """histogram=False skips only the histogram: every other number is identical."""
    full, light = summarize(values), summarize(values, histogram=False)
    assert light.hist is None or light.count == 0
    assert {k: v for k, v in full.to_dict().items() if not k.startswith("hist")} == \
        {k: v for k, v in light.to_dict().items() if not k.startswith("hist")}
    assert merge([light, full]).hist is None or light.count == 0


@pytest.mark.parametrize("scale", [1e160, 1e200, 1e300])
def test_std_of_values_whose_squares_overflow(scale):
    """|x| beyond ~1e154: the squares overflow float64, the standard deviation does
    not; it is computed on the values scaled by a power of two (exactly)."""
    x = np.random.default_rng(0).standard_normal(1000)
    s = summarize(x * scale)
    assert math.isfinite(s.std)
    assert s.std == pytest.approx(np.std(x) * scale, rel=1e-13)
    assert s.mean == pytest.approx(np.mean(x) * scale, rel=1e-12, abs=1e-14 * scale)


def test_merge_of_summaries_whose_squares_overflow():
    """Totals of values near 1e160..1e200: no NaN from Inf * 0, and the spread is
    computed in scaled form (it was NaN, and --json crashed on it)."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(100) * 1e200, rng.standard_normal(50) * 1e200 + 5e199
    total = merge([summarize(x), summarize(y)])
    both = np.concatenate([x, y])
    assert total.std == pytest.approx(np.std(both / 1e200) * 1e200, rel=1e-12)
    assert total.mean == pytest.approx(np.mean(both / 1e200) * 1e200, rel=1e-12)
    a, b = np.array([1e160, 1.0001e160]), np.array([1e160, 1.0002e160])
    assert merge([summarize(a), summarize(b)]).std == pytest.approx(
        np.std(np.concatenate([a, b]) / 1e160) * 1e160, rel=1e-9)


def test_to_dict_has_no_non_finite_numbers():
    """JSON has no Inf or NaN: a number that is not finite is null."""
    s = Summary((1,), "float64", 1, 0.0, 1.0, 0.5, math.inf, 0, 0, (1,), count=1, m2=math.inf)
    assert s.to_dict()["std"] is None and s.to_dict()["mean"] == 0.5


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(st.lists(st.lists(_finite, min_size=1, max_size=30), min_size=1, max_size=5),
       st.sampled_from([1.0, 1e-300, 1e300, 2.0 ** -1074 * 3, 1e-30, 1e-6]),
       st.sampled_from(["float64", "float32", "float16"]))
@settings(max_examples=300, deadline=None)
def test_merged_grid_histogram_is_exact(parts, scale, dtype):
    """Over inputs of any ranges the total's histogram counts every value in its bin
    (edges multiples of a power of two), whatever the values' sizes and type."""
    with np.errstate(over="ignore", under="ignore"):
        arrays = [(np.array(p) * scale if scale < 1 else np.array(p)).astype(dtype)
                  for p in parts]
    arrays = [a[np.isfinite(a)] if a[np.isfinite(a)].size else np.zeros(1, dtype)
              for a in arrays]
    total = merge([summarize(a) for a in arrays])
    every = np.concatenate(arrays)
    assert total.hist is not None and 1 <= len(total.hist) <= 16
    assert sum(total.hist) == every.size
    edges = np.array(total.edges)
    if len({(a.min(), a.max()) for a in arrays}) == 1:  # one range: its equal bins, added up
        assert total.edges == summarize(arrays[0]).edges and len(total.hist) == 16
        return
    assert edges[0] <= every.min() and (every.max() < edges[-1] or edges[-1] == np.inf)
    assert len(total.hist) >= 2
    if np.isfinite(edges).all():
        assert total.hist == tuple(np.histogram(every, edges)[0])


def test_grid_histogram_of_a_constant_and_of_tiny_negatives():
    t = merge([summarize(np.full(4, 3.0)), summarize(np.full(2, 3.0))])
    assert t.hist[0] == 6
    tiny = np.array([-5e-324, 0.0, 1e300])
    t = merge([summarize(tiny[:2]), summarize(tiny[1:])])
    assert t.hist[0] == 1 and sum(t.hist) == 4 and t.edges[0] < 0 <= t.edges[1]
    t = merge([summarize(np.zeros(1)), summarize(np.array([15.0, -0.0, -1.0]))])
    assert t.edges[:3] == (-2.0, 0.0, 2.0) and t.hist[:2] == (1, 2)  # -0.0 is in [0, 2)


def test_json_has_the_bin_edges():
    d = summarize(np.array([0.0, 1.0, 4.0]), bins=4).to_dict()
    assert d["hist"] == [1, 1, 0, 1] and d["hist_edges"] == [0.0, 1.0, 2.0, 3.0, 4.0]
