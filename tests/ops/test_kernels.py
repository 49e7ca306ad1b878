"""The kernels' machinery: ``out=``, block layouts, scratch reuse, cached settings.

Tolerances as in test_lrn_reference.py and test_batchnorm.py (1e-5 relative
for float32, 1e-12 for float64): these tests are about which values are
computed where, not about rounding.  Results that must not depend on how the
work is done (threads, ``out=``, in place) are compared bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import lrn_ref

import normcli
from normcli.errors import ParameterError
from normcli.ops import lrn as lrn_module
from normcli.ops._windows import tree_passes, tree_sum

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _close(out, ref):
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=RTOL[out.dtype], atol=0)


# ------------------------------------------------------------------ tree sums


@pytest.mark.parametrize("w", [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64])
@pytest.mark.parametrize("axis", [0, 1])
def test_tree_sum_equals_the_window_sums(w, axis):
    rng = np.random.default_rng(w * 10 + axis)
    n, lo = 23, w // 2
    hi = w - 1 - lo
    shape = [4, 5]
    shape.insert(axis, n)
    x = rng.random(shape)
    padded = list(shape)
    padded[axis] += lo + hi
    z = np.zeros(padded)
    z[(slice(None),) * axis + (slice(lo, lo + n),)] = x
    out = np.empty(shape)

    def buffer(j, rows):
        s = list(padded)
        s[axis] = rows
        return np.full(s, np.nan)  # every value it reads must have been written

    tree_sum(z, w, out, buffer, axis)
    xs = np.moveaxis(x, axis, 0)
    want = np.stack([xs[max(0, i - lo):i + hi + 1].sum(axis=0) for i in range(n)])
    np.testing.assert_allclose(out, np.moveaxis(want, 0, axis), rtol=1e-13)
    assert tree_passes(w) <= 2 * w.bit_length()


# ------------------------------------------------------------------ layouts


@pytest.mark.parametrize("channels_last", [False, True])
def test_inter_channel_large_samples_cut_into_column_blocks(channels_last):
    """A sample above the whole-sample limit is cut across its positions."""
    shape = (1, 9, 380, 310)  # 1.06 M values per sample: over 2**20
    if channels_last:
        shape = (1, 380, 310, 9)
    x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    plan = lrn_module._plan(shape, "inter", channels_last)
    assert plan.count > 1
    kw = dict(n=5, k=1.0, alpha=0.5, beta=0.75, channels_last=channels_last)
    out = normcli.lrn(x, **kw)
    _close(out, lrn_ref(x, **kw))
    np.testing.assert_array_equal(normcli.lrn(x, threads=1, **kw), out)
    np.testing.assert_array_equal(normcli.lrn(x, threads=2, **kw), out)


def test_scratch_padding_survives_other_shapes_and_windows():
    """The padded scratch buffer is reused from call to call: after another shape
    or window wrote over its padding, the padding must be zero again."""
    rng = np.random.default_rng(2)
    a = rng.random((2, 6, 7, 8)).astype(np.float32) + 1
    b = rng.random((3, 4, 9, 5)).astype(np.float32) + 1
    calls = [(a, "inter", 3), (b, "intra", 5), (a, "inter", 9), (a, "intra", 2),
             (b, "inter", 3), (a, "inter", 3), (b, "intra", 5)]
    for x, mode, n in calls:
        kw = dict(mode=mode, convention="seed", n=n, k=1.0, alpha=0.3, beta=0.75)
        _close(normcli.lrn(x, **kw), lrn_ref(x, **kw))


@pytest.mark.parametrize("n, width", [(2, 55), (16, 30)])  # a tree along W, a band product
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_intra_non_finite_stays_in_its_window_with_either_method(n, width, value):
    """A band product would spread NaN through its zeros (0 * NaN): such a block
    must fall back to the tree, and keep the non-finite value in its window."""
    from normcli.ops.lrn import _last_method

    assert _last_method(width, n // 2, n // 2, np.dtype(np.float32)) == (
        "tree" if n == 2 else "band")
    x = np.random.default_rng(12).standard_normal((2, 3, 9, width)).astype(np.float32)
    x[1, 2, 4, 5] = value
    kw = dict(mode="intra", convention="seed", n=n, k=1.0, alpha=0.3, beta=0.75)
    out = normcli.lrn(x, **kw)
    ref = lrn_ref(x, **kw)
    assert np.array_equal(np.isfinite(out), np.isfinite(ref))
    keep = np.isfinite(ref)
    _close(out[keep], ref[keep])
    assert np.isfinite(np.delete(out, 2, axis=1)).all()


# ------------------------------------------------------------------ out=


@pytest.mark.parametrize("mode", ["inter", "intra"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lrn_out_and_in_place_equal_a_fresh_result(mode, channels_last, dtype):
    x = np.random.default_rng(3).standard_normal((3, 70, 40, 40)).astype(dtype)  # > 2**18
    kw = dict(mode=mode, n=5, k=1.0, alpha=0.1, channels_last=channels_last)
    want = normcli.lrn(x, **kw)
    out = np.full_like(x, np.nan)
    assert normcli.lrn(x, out=out, **kw) is out
    np.testing.assert_array_equal(out, want)
    y = x.copy()
    assert normcli.lrn(y, out=y, **kw) is y
    np.testing.assert_array_equal(y, want)


def test_lrn_out_for_float16_input_is_float32():
    x = np.random.default_rng(4).standard_normal((2, 5, 4, 4)).astype(np.float16)
    out = np.empty(x.shape, np.float32)
    normcli.lrn(x, out=out)
    np.testing.assert_array_equal(out, normcli.lrn(x))


@pytest.mark.parametrize("bad, why", [
    (lambda x: np.empty(x.shape, np.float64), "float32"),
    (lambda x: np.empty((2, 5, 4, 5), np.float32), "shape"),
    (lambda x: np.empty(x.shape[::-1], np.float32).T, "C-contiguous"),
    (lambda x: np.zeros(x.shape, np.float32).setflags(write=False), "read-only"),
    (lambda x: [[0.0]], "list"),
])
def test_lrn_refuses_an_unfit_out(bad, why):
    x = np.random.default_rng(5).standard_normal((2, 5, 4, 4)).astype(np.float32)
    out = bad(x)
    if out is None:  # setflags returns None: make the read-only array here
        out = np.zeros(x.shape, np.float32)
        out.setflags(write=False)
    with pytest.raises(ParameterError, match=why) as info:
        normcli.lrn(x, out=out)
    assert info.value.param == "out"


def test_lrn_refuses_an_out_overlapping_x():
    buf = np.random.default_rng(6).standard_normal(2 * 5 * 4 * 4 + 1).astype(np.float32)
    x, out = buf[1:].reshape(2, 5, 4, 4), buf[:-1].reshape(2, 5, 4, 4)
    with pytest.raises(ParameterError, match="overlaps x") as info:
        normcli.lrn(x, out=out)
    assert info.value.param == "out"


# ------------------------------------------------------------------ cached settings


def test_cached_settings_still_tell_types_apart():
    """lrn remembers resolved settings; 1 and True (equal, same hash) must still be
    judged apart, and a refusal must not be remembered as a success."""
    x = np.ones((2, 3, 2, 2), np.float32)
    normcli.lrn(x, n=1)
    with pytest.raises(ParameterError, match="must be an integer"):
        normcli.lrn(x, n=True)
    for _ in range(2):
        with pytest.raises(ParameterError):
            normcli.lrn(x, n=0)
    np.testing.assert_array_equal(normcli.lrn(x, n=3.0), normcli.lrn(x, n=3))


def test_unhashable_settings_are_checked_not_cached():
    x = np.ones((2, 3, 2, 2), np.float32)
    with pytest.raises(ParameterError, match="k="):
        normcli.lrn(x, k=[1.0])
    np.testing.assert_array_equal(normcli.lrn(x, k=np.float64(2.0)), normcli.lrn(x, k=2.0))


# ------------------------------------------------------------------ batch norm


def _bn_close(out, ref, rtol):
    ref = np.asarray(ref, np.float64)
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=rtol,
                               atol=rtol * float(np.abs(ref).max()))


@pytest.mark.parametrize("offset", [0.0, 0.5, 3.0, 1e3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_given_statistics_fused_or_exact_stay_accurate(offset, dtype, beta):
    """x * scale + shift is used only where |mean| <= sqrt(var + eps); data far
    from zero (offset 1e3, sigma 1) must still be normalized to float32 accuracy,
    which the fused form would miss (its roundings are ~eps * |mean| / sigma)."""
    from reference import batch_norm_ref

    rng = np.random.default_rng(int(offset) + 7)
    x = (rng.standard_normal((6, 5, 7, 7)) + offset).astype(dtype)
    s = normcli.batch_stats(x, per="channel")
    kw = dict(per="channel", mean=s.mean, var=s.var, gamma=1.3, beta=beta)
    _bn_close(normcli.batch_norm(x, **kw), batch_norm_ref(x, **kw),
              1e-5 if dtype == np.float32 else 1e-12)


def test_given_statistics_are_remembered_by_value_not_by_identity():
    x = np.random.default_rng(8).standard_normal((4, 3, 5, 5))
    mean, var = np.zeros(3), np.ones(3)
    first = normcli.batch_norm(x, per="channel", mean=mean, var=var)
    mean[1] = 2.0  # the same array, other values
    second = normcli.batch_norm(x, per="channel", mean=mean, var=var)
    np.testing.assert_array_equal(first[:, [0, 2]], second[:, [0, 2]])
    np.testing.assert_allclose(second[:, 1], (x[:, 1] - 2.0) / np.sqrt(1 + 1e-5), rtol=1e-12)
    var[0] = -1.0
    with pytest.raises(ParameterError, match="negative"):
        normcli.batch_norm(x, per="channel", mean=mean, var=var)


@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (40, 30, 20, 20)])  # one block; blocks
def test_batch_norm_out_equals_a_fresh_result(per, shape):
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    s = normcli.batch_stats(x, per=per)
    for kw in (dict(per=per), dict(per=per, mean=s.mean, var=s.var, beta=0.5)):
        want = normcli.batch_norm(x, **kw)
        out = np.full_like(x, np.nan)
        assert normcli.batch_norm(x, out=out, **kw) is out
        np.testing.assert_array_equal(out, want)
    y = x.copy()
    kw = dict(per=per, mean=s.mean, var=s.var)
    assert normcli.batch_norm(y, out=y, **kw) is y
    np.testing.assert_array_equal(y, normcli.batch_norm(x, **kw))


def test_batch_statistics_refuse_out_sharing_x():
    x = np.random.default_rng(10).standard_normal((4, 3, 5, 5)).astype(np.float32)
    with pytest.raises(ParameterError, match="shares memory") as info:
        normcli.batch_norm(x, out=x)
    assert info.value.param == "out"
    with pytest.raises(ParameterError, match="C-contiguous float32") as info:
        normcli.batch_norm(x, out=np.empty(x.shape))
    assert info.value.param == "out"


def test_cached_batch_norm_settings_still_tell_types_apart():
    x = np.random.default_rng(11).standard_normal((4, 3)).astype(np.float32)
    normcli.batch_norm(x, eps=1)
    np.testing.assert_array_equal(normcli.batch_norm(x, eps=1.0), normcli.batch_norm(x, eps=1))
    for _ in range(2):
        with pytest.raises(ParameterError, match="eps"):
            normcli.batch_norm(x, eps=0.0)
    with pytest.raises(ParameterError, match="per"):
        normcli.batch_norm(x, per="batch")


# ------------------------------------------------------------------ small-input replay


SMALL_CASES = [
    dict(mode="inter", n=5),  # few channels: the band product with alpha and k in it
    dict(mode="inter", n=5, channels_last=True),
    dict(mode="intra", n=3),
    dict(mode="intra", convention="cudnn", n=4, channels_last=True),
    dict(mode="inter", convention="caffe", n=3, k=0.0, alpha=1.0, beta=1.0),
]


@pytest.mark.parametrize("kw", SMALL_CASES, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_inputs_replayed_call_after_call_match_the_reference(kw, dtype):
    """The small-input path keeps its buffers from call to call: every call, on
    other data, still gets its own right answer (zeros too, with k = 0)."""
    rng = np.random.default_rng(11)
    shape = (2, 6, 7, 5) if kw.get("channels_last") else (2, 5, 7, 6)
    for scale in (1.0, 30.0, 0.0):
        x = (rng.standard_normal(shape) * scale).astype(dtype)
        out = normcli.lrn(x, **kw)
        ref = lrn_ref(x.astype(np.float64), **kw)
        _close(out, ref)
        assert np.isfinite(out).all()


def test_small_inputs_with_nan_or_huge_values_go_to_the_block_kernel(monkeypatch):
    """NaN stays within its windows (a band product would spread it to every
    channel), and squares beyond float32 are recomputed wider, as for a block."""
    x = np.random.default_rng(12).standard_normal((1, 16, 6, 6)).astype(np.float32)
    normcli.lrn(x, n=5)  # the replay is now planned for this shape
    x[0, 3, 2, 2] = np.nan
    nan = np.isnan(normcli.lrn(x, n=5))
    assert nan[0, 1:6, 2, 2].all() and nan.sum() == 5
    x[0, 3, 2, 2] = 1e20
    _close(normcli.lrn(x, n=5), lrn_ref(x.astype(np.float64), n=5))
    monkeypatch.setattr(lrn_module, "_TINY", 0)  # the block kernel alone agrees
    _close(normcli.lrn(x, n=5), lrn_ref(x.astype(np.float64), n=5))


@pytest.mark.parametrize("shape", [(2, 3, 9, 9), (3, 40, 80, 80)])  # one block; many
def test_given_statistics_spelled_out_per_value_give_the_same_bits(shape, monkeypatch):
    """Coefficients spelled out for every value of a sample: the same arithmetic
    as the broadcast column, bit for bit, and none kept for other statistics."""
    from normcli.ops import batchnorm as bn_module

    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32) + 3
    s = normcli.batch_stats(x, per="channel")
    kw = dict(per="channel", mean=s.mean, var=s.var, gamma=1.5, beta=0.5)
    spelled = normcli.batch_norm(x, **kw)
    other = normcli.batch_norm(x, per="channel", mean=s.mean + 1, var=s.var)
    monkeypatch.setattr(bn_module, "_ROW_VALUES", 0)
    np.testing.assert_array_equal(spelled, normcli.batch_norm(x, **kw))
    np.testing.assert_array_equal(other, normcli.batch_norm(x, per="channel", mean=s.mean + 1,
                                                            var=s.var))


@pytest.mark.parametrize("alpha", [1e39, 1e308])
@pytest.mark.parametrize("shape", [(1, 16, 40, 40), (4, 8, 8)])
def test_an_alpha_beyond_float32_on_small_float32_inputs_warns_nothing(alpha, shape):
    """The small-input plan rounded alpha' into float32 (Inf) to build its band
    product, with numpy's overflow warnings on stderr (the suite makes them
    errors); its blocks then go wider, and the results are the reference's."""
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    x[..., 0, 0] = 0.0
    y = normcli.lrn(x, alpha=alpha)
    # (float32 holds results down to its smallest normal; below, they round to 0)
    np.testing.assert_allclose(y, lrn_ref(x, alpha=alpha), rtol=1e-6,
                               atol=float(np.finfo(np.float32).tiny))
