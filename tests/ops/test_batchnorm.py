"""normcli.batch_norm and normcli.batch_stats: reference, properties, errors.

Tolerances.  float64: 1e-12 relative to the output's scale (a two-pass mean
and variance of <= a few hundred values carry ~1e-15 relative error; the
affine step can cancel, so errors are measured against max|y|).  float32
inputs: 1e-5 of the scale (~100 float32 roundings).
"""

from __future__ import annotations

import inspect
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import batch_norm_ref, batch_stats_ref  # noqa: E402

import normcli  # noqa: E402

RTOL = {np.float64: 1e-12, np.float32: 1e-5}
SETTINGS = settings(max_examples=60, deadline=None)


def _close(actual, expected, rtol):
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                               atol=rtol * scale)


def _c_axis(ndim: int, channels_last: bool) -> int:
    return ndim - 1 if channels_last else max(1, ndim - 3)  # (..., C, H, W) beyond 4-D


def _stat_shape(shape, per, channels_last):
    if per == "activation":
        return tuple(shape[max(1, len(shape) - 3):])
    return (shape[_c_axis(len(shape), channels_last)],)


# ------------------------------------------------------------------ vs the reference

SHAPES = [(5, 3), (4, 3, 6), (3, 4, 4, 4), (2, 3, 4, 3, 2), (1, 3, 5, 4)]


# Every layout that means something: a batch of one has no per-activation
# statistics, and (N, C) has the same channel axis either way.
LAYOUTS = [
    (shape, per, channels_last)
    for shape in SHAPES
    for per in ("activation", "channel")
    for channels_last in (False, True)
    if not (per == "activation" and shape[0] == 1)
    and not (per == "channel" and channels_last and len(shape) == 2)
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, per, channels_last", LAYOUTS, ids=str)
@pytest.mark.parametrize("affine", ["scalar", "array", "default"])
def test_batch_norm_matches_reference(shape, per, channels_last, dtype, affine):
    rng = np.random.default_rng(zlib.crc32(repr((shape, per, channels_last, affine)).encode()))
    sshape = _stat_shape(shape, per, channels_last)
    loc = rng.uniform(-5, 5, size=sshape)
    scale = rng.uniform(0.5, 3, size=sshape)
    if per == "channel" and not channels_last:  # (C,) -> (C, 1, ...) after the channel axis
        tail = len(shape) - _c_axis(len(shape), False) - 1
        loc, scale = (v.reshape(v.shape + (1,) * tail) for v in (loc, scale))
    x = (rng.normal(size=shape) * scale + loc).astype(dtype)
    kw: dict = dict(per=per, channels_last=channels_last, eps=1e-3)
    if affine == "scalar":
        kw.update(gamma=1.7, beta=-0.3)
    elif affine == "array":
        kw.update(gamma=rng.uniform(0.5, 2, size=sshape), beta=rng.normal(size=sshape))
    out = normcli.batch_norm(x, **kw)
    assert out.shape == x.shape
    assert out.dtype == dtype
    _close(out, batch_norm_ref(x, **kw), RTOL[dtype])

    st_ = normcli.batch_stats(x, per=per, channels_last=channels_last)
    ref = batch_stats_ref(x, per=per, channels_last=channels_last)
    assert st_.per == per
    assert st_.count == ref.count
    for name in ("mean", "var", "var_unbiased"):
        got = np.asarray(getattr(st_, name))
        assert got.shape == sshape, name
        _close(got, getattr(ref, name), RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per, shape", [("activation", (300, 8, 16, 16)),
                                        ("channel", (64, 8, 32, 32))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_large_batches_blocked_and_threaded(dtype, per, shape, channels_last):
    """> 2**18 elements: blocks, partial sums and threads must not change the result."""
    rng = np.random.default_rng(zlib.crc32(repr((dtype.__name__, per, channels_last)).encode()))
    x = (rng.normal(size=shape) * 3 + 50).astype(dtype)
    kw = dict(per=per, channels_last=channels_last, gamma=1.3, beta=0.2)
    out = normcli.batch_norm(x, **kw)
    _close(out, batch_norm_ref(x, **kw), RTOL[dtype])
    s = normcli.batch_stats(x, per=per, channels_last=channels_last)
    ref = batch_stats_ref(x, per=per, channels_last=channels_last)
    _close(s.var, ref.var, RTOL[dtype])
    _close(s.mean, ref.mean, RTOL[dtype])
    if "threads" in inspect.signature(normcli.batch_norm).parameters:
        np.testing.assert_array_equal(normcli.batch_norm(x, threads=1, **kw), out)
        np.testing.assert_array_equal(normcli.batch_norm(x, threads=3, **kw), out)


def test_seed_example_per_activation():
    """A (3, 4, 4, 4) batch: each of the 64 positions gets mean 0 and variance 1."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 4, 4)) * rng.uniform(1, 5, size=(4, 4, 4)) + 7
    y = normcli.batch_norm(x)  # per="activation" is the default
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-12)
    var = x.var(axis=0)
    # normalizing by sqrt(var + eps) gives variance var / (var + eps), not exactly 1
    np.testing.assert_allclose(y.var(axis=0), var / (var + 1e-5), rtol=1e-12)
    assert var.min() > 0.02  # variance >> eps at every position, so y.var ~ 1
    np.testing.assert_allclose(y.var(axis=0), 1.0, atol=1e-5 / 0.02)
    st_ = normcli.batch_stats(x)
    assert st_.count == 3 and np.shape(st_.mean) == (4, 4, 4) and st_.per == "activation"


def test_per_channel_example():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4, 5, 5)) * 3 + 2
    y = normcli.batch_norm(x, per="channel")
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, atol=1e-5)
    assert normcli.batch_stats(x, per="channel").count == 3 * 25


def test_hand_computed_values():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])  # (N=3, F=2)
    st_ = normcli.batch_stats(x)
    np.testing.assert_allclose(st_.mean, [3.0, 12.0])
    np.testing.assert_allclose(st_.var, [8 / 3, 8.0])
    np.testing.assert_allclose(st_.var_unbiased, [4.0, 12.0])
    y = normcli.batch_norm(x, eps=1e-5)
    np.testing.assert_allclose(y[:, 0], np.array([-2, 0, 2]) / np.sqrt(8 / 3 + 1e-5))


# ------------------------------------------------------------------ variance accuracy


def test_variance_is_two_pass_accurate_float64():
    """1e8 + noise: E[x^2] - E[x]^2 loses every digit (1e16 has ulp 2), two-pass keeps ~8."""
    rng = np.random.default_rng(5)
    x = 1e8 + rng.normal(size=(1000, 3))
    ref = batch_stats_ref(x)
    got = normcli.batch_stats(x)
    np.testing.assert_allclose(got.var, ref.var, rtol=1e-9)
    np.testing.assert_allclose(got.var_unbiased, ref.var_unbiased, rtol=1e-9)
    y = normcli.batch_norm(x)
    np.testing.assert_allclose(y.var(axis=0), 1.0, rtol=1e-4)
    xc = 1e8 + rng.normal(size=(50, 2, 4, 4))
    np.testing.assert_allclose(normcli.batch_stats(xc, per="channel").var,
                               batch_stats_ref(xc, per="channel").var, rtol=1e-9)


def test_variance_is_accurate_float32():
    """float32 1e4 + noise: the one-pass formula would give garbage (1e8 has ulp 8)."""
    rng = np.random.default_rng(6)
    x = (1e4 + rng.normal(size=(2000, 2, 3))).astype(np.float32)
    ref = batch_stats_ref(x)
    np.testing.assert_allclose(np.asarray(normcli.batch_stats(x).var, np.float64), ref.var,
                               rtol=1e-4)
    xc = (1e4 + rng.normal(size=(40, 3, 8, 8))).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(normcli.batch_stats(xc, per="channel").var, np.float64),
        batch_stats_ref(xc, per="channel").var, rtol=1e-4)


def test_constant_activation_gives_beta():
    x = np.full((4, 3), 0.1)
    x[:, 1] = [1.0, 2.0, 3.0, 4.0]
    y = normcli.batch_norm(x, beta=0.25)
    np.testing.assert_allclose(y[:, 0], 0.25, atol=1e-9)
    assert np.all(np.isfinite(y))


# ------------------------------------------------------------------ properties

_floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def batches(draw, min_batch=2):
    ndim = draw(st.integers(2, 4))
    shape = (draw(st.integers(min_batch, 6)),) + tuple(
        draw(st.integers(1, 4)) for _ in range(ndim - 1))
    x = draw(hnp.arrays(np.float64, shape, elements=_floats))
    per = draw(st.sampled_from(["activation", "channel"]))
    channels_last = draw(st.booleans())
    return x, per, channels_last


def _reduce_axes(ndim, per, channels_last):
    if per == "activation":
        return (0,)
    c = _c_axis(ndim, channels_last)
    return tuple(a for a in range(ndim) if a != c)


@SETTINGS
@given(batches())
def test_property_mean_zero_variance_one(data):
    x, per, cl = data
    axes = _reduce_axes(x.ndim, per, cl)
    var = x.var(axis=axes, keepdims=True)
    y = normcli.batch_norm(x, per=per, channels_last=cl, eps=1e-5)
    # rounding in x - mean is ~1e-16 |x|, amplified by 1 / sqrt(var + eps)
    bound = 1e-12 * (np.abs(x).max(axis=axes, keepdims=True) + 1.0) / np.sqrt(var + 1e-5)
    assert np.all(np.abs(y.mean(axis=axes, keepdims=True)) <= bound)
    big = var > 1e3 * 1e-5  # variance >> eps: output variance ~ 1
    yv = y.var(axis=axes, keepdims=True)
    np.testing.assert_allclose(yv[big], 1.0, atol=2e-3)
    np.testing.assert_allclose(yv, var / (var + 1e-5), rtol=1e-6, atol=1e-9)


@SETTINGS
@given(batches())
def test_property_gamma_sqrt_var_beta_mean_gives_input_back(data):
    """The seed's point: training can undo the normalization."""
    x, per, cl = data
    s = normcli.batch_stats(x, per=per, channels_last=cl)
    eps = 1e-3
    y = normcli.batch_norm(x, per=per, channels_last=cl, eps=eps,
                           gamma=np.sqrt(np.asarray(s.var) + eps), beta=s.mean)
    np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-9 * (np.abs(x).max() + 1))


@st.composite
def block_batches(draw):
    """Float32 and float64 batches large enough for the blocked forms (several
    blocks per activation, one-channel and several-channel blocks per channel),
    of data centred on 0, ReLU'd, pixel-like, or far off, with a few outliers."""
    n = draw(st.integers(2, 40))
    c = draw(st.integers(1, 12))
    hw = draw(st.sampled_from([(1, 1), (8, 8), (40, 64), (128, 128)]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, *hw))
    kind = draw(st.sampled_from(["centred", "relu", "pixels", "far"]))
    if kind == "relu":
        x = np.maximum(x + 0.3, 0)
    elif kind == "pixels":
        x = x * 0.25 + 0.45
    elif kind == "far":
        x = x * draw(st.sampled_from([1e-3, 1.0, 50.0])) + draw(st.floats(-1e3, 1e3))
    for _ in range(draw(st.integers(0, 3))):  # outliers
        x[tuple(int(rng.integers(d)) for d in x.shape)] += draw(st.floats(-1e3, 1e3))
    return x.astype(dtype), draw(st.sampled_from(["activation", "channel"]))


@settings(max_examples=40, deadline=None)
@given(block_batches())
def test_property_blocked_forms_match_the_reference_whatever_the_threads(data):
    """Every form a block can take (around 0, around the two phases' means, around
    a sampled shift, two passes, the exact redo of a few statistics) matches the
    float64 reference, and the bits do not depend on the threads."""
    x, per = data
    y = normcli.batch_norm(x, per=per, gamma=0.75, beta=0.5)
    want = batch_norm_ref(x, per=per, gamma=0.75, beta=0.5)
    # Both sum the mean in float64: an error of an ulp of |x| in it moves
    # z = (x - mean) / std by ulp(|x|) / std, which data far from 0 with a small
    # spread (52 +- 1e-3, float64: 1.6e-12, found by hypothesis) makes larger than
    # the relative tolerance; that conditioning term is added to it.
    std = np.sqrt(batch_stats_ref(x.astype(np.float64), per=per).var.min() + 1e-5)
    conditioning = 4 * np.finfo(np.float64).eps * float(np.abs(x).max()) / std * 0.75
    rtol = RTOL[x.dtype.type]
    np.testing.assert_allclose(y.astype(np.float64), want, rtol=rtol,
                               atol=rtol * float(np.abs(want).max()) + conditioning)
    np.testing.assert_array_equal(normcli.batch_norm(x, per=per, gamma=0.75, beta=0.5,
                                                     threads=3), y)


@SETTINGS
@given(batches(), st.floats(1e-8, 1.0))
def test_property_stored_stats_equal_training_mode(data, eps):
    x, per, cl = data
    s = normcli.batch_stats(x, per=per, channels_last=cl)
    g = 1.5
    train = normcli.batch_norm(x, per=per, channels_last=cl, eps=eps, gamma=g, beta=0.5)
    infer = normcli.batch_norm(x, per=per, channels_last=cl, eps=eps, gamma=g, beta=0.5,
                               mean=s.mean, var=s.var)
    np.testing.assert_allclose(infer, train, rtol=1e-12, atol=1e-12 * (np.abs(train).max() + 1))


@SETTINGS
@given(batches())
def test_property_stats_fields(data):
    x, per, cl = data
    s = normcli.batch_stats(x, per=per, channels_last=cl)
    axes = _reduce_axes(x.ndim, per, cl)
    m = int(np.prod([x.shape[a] for a in axes]))
    assert s.count == m and s.per == per
    np.testing.assert_array_less(-1e-300, np.asarray(s.var) + 1e-300)  # never negative
    if m > 1:
        np.testing.assert_allclose(s.var_unbiased, np.asarray(s.var) * m / (m - 1),
                                   rtol=1e-12, atol=1e-300)


@SETTINGS
@given(batches(), st.floats(1e-3, 1e3), st.floats(-1e3, 1e3))
def test_property_shift_and_scale_invariance(data, c, shift):
    """Normalizing c*x + shift equals normalizing x (eps scaled by c^2)."""
    x, per, cl = data
    axes = _reduce_axes(x.ndim, per, cl)
    if np.any(x.var(axis=axes) < 1e-3):
        return  # near-constant groups: eps dominates, nothing to compare
    a = normcli.batch_norm(x, per=per, channels_last=cl, eps=1e-6)
    b = normcli.batch_norm(c * x + shift, per=per, channels_last=cl, eps=1e-6 * c * c)
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float32), (np.float32, np.float32), (np.float64, np.float64),
    (np.uint8, np.float64), (np.int16, np.float64), (np.int32, np.float64),
    (np.int64, np.float64), (np.bool_, np.float64),
])
@pytest.mark.parametrize("per", ["activation", "channel"])
def test_output_dtype(dtype, expected, per):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, size=(4, 3, 2, 2)).astype(dtype)
    x[0] = 1  # every activation varies (a bool batch needs a 1 and a 0)
    x[1] = 0
    out = normcli.batch_norm(x, per=per)
    assert out.dtype == expected
    _close(out, batch_norm_ref(x, per=per), RTOL[expected])
    s = normcli.batch_stats(x, per=per)
    assert np.asarray(s.mean).dtype in (np.float32, np.float64)


def test_uint8_does_not_wrap():
    x = np.array([[0, 255], [255, 0], [128, 3]], dtype=np.uint8)
    _close(normcli.batch_norm(x), batch_norm_ref(x), 1e-12)
    _close(normcli.batch_stats(x).var, batch_stats_ref(x).var, 1e-12)


def test_inference_with_batch_of_one():
    """Stored statistics make a single sample fine, per activation too."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(1, 3, 2, 2))
    mean, var = rng.normal(size=(3, 2, 2)), rng.uniform(0.5, 2, size=(3, 2, 2))
    _close(normcli.batch_norm(x, mean=mean, var=var),
           batch_norm_ref(x, mean=mean, var=var), 1e-12)
    cm, cv = rng.normal(size=3), rng.uniform(0.5, 2, size=3)
    _close(normcli.batch_norm(x, per="channel", mean=cm, var=cv),
           batch_norm_ref(x, per="channel", mean=cm, var=cv), 1e-12)
    _close(normcli.batch_norm(x, per="channel"), batch_norm_ref(x, per="channel"), 1e-12)


def test_input_not_modified():
    x = np.random.default_rng(9).normal(size=(4, 3, 2, 2))
    before = x.copy()
    normcli.batch_norm(x, per="channel", gamma=2.0)
    normcli.batch_stats(x)
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------------------ errors

X = np.random.default_rng(10).normal(size=(4, 3, 4, 4))

BN_ERRORS = [
    (dict(eps=0.0), "eps"),
    (dict(eps=-1e-5), "eps"),
    (dict(eps=float("nan")), "eps"),
    (dict(per="pixel"), "per"),
    (dict(per=None), "per"),
    (dict(per="channel", gamma=np.ones(4)), "gamma"),  # C is 3
    (dict(per="channel", beta=np.ones(4)), "beta"),
    (dict(per="activation", gamma=np.ones(5)), "gamma"),  # needs (3, 4, 4)
    (dict(per="activation", gamma=np.ones((2, 4, 4))), "gamma"),
    (dict(per="channel", mean=np.zeros(4), var=np.ones(3)), "mean"),
    (dict(per="channel", mean=np.zeros(3), var=np.ones(4)), "var"),
    (dict(per="channel", mean=np.zeros(3), var=-np.ones(3)), "var"),
]


@pytest.mark.parametrize("kwargs, match", BN_ERRORS, ids=[repr(e[0])[:60] for e in BN_ERRORS])
def test_invalid_settings_raise_value_error_naming_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        normcli.batch_norm(X, **kwargs)


def test_batch_of_one_per_activation_without_stats_raises():
    with pytest.raises(ValueError, match=r"(?i)batch|\bx\b|mean|per"):
        normcli.batch_norm(X[:1])
    with pytest.raises(ValueError, match=r"(?i)batch|\bx\b|mean|per"):
        normcli.batch_norm(X[:1], per="activation", gamma=2.0)


def test_batch_stats_unknown_per_raises():
    with pytest.raises(ValueError, match="per"):
        normcli.batch_stats(X, per="sample")


@pytest.mark.parametrize("shape", [(), (5,)])
def test_too_few_dimensions_raise(shape):
    with pytest.raises(ValueError):
        normcli.batch_norm(np.ones(shape), per="channel")


@pytest.mark.parametrize("name", ["gamma", "beta"])
def test_stored_statistics_refuse_non_finite_scalar_affine(name):
    """The inference path checks a scalar gamma/beta like the training path does."""
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=f"{name} holds non-finite values"):
        normcli.batch_norm(x, mean=np.zeros(3), var=np.ones(3), **{name: float("nan")})
    with pytest.raises(ValueError, match=f"{name} holds non-finite values"):
        normcli.BatchNormalizer(np.zeros(3), np.ones(3), **{name: float("inf")})


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_variance_overflow_is_an_error_not_zeros(per):
    """float64 data near 1e200: the squares overflow, so the statistics would be Inf
    and the outputs 0 or NaN.  batch_norm and batch_stats refuse with a message that
    says why; data holding NaN still propagate it (that is not an overflow)."""
    x = np.random.default_rng(0).standard_normal((3, 2, 3)) * 1e200
    for fn in (normcli.batch_norm, normcli.batch_stats):
        with pytest.raises(ValueError, match="too large for batch statistics"):
            fn(x, per=per)
    x[0, 0, 0] = np.nan
    assert np.isnan(normcli.batch_norm(x, per=per)).any()
    ok = np.random.default_rng(0).standard_normal((3, 2, 3)) * 1e150  # squares fit
    assert np.isfinite(normcli.batch_norm(ok, per=per)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_one_pass_moments_and_their_two_pass_fallback(dtype, monkeypatch):
    """Per channel, batch statistics come from one pass around a shift (the mean
    of each row's first values); a block whose shift is far from its mean (the
    first values of every row offset by 50 sigma) is redone by two passes.
    Every case matches the float64 reference."""
    from normcli.ops import moments as moments_module

    verdicts = []
    one_pass = moments_module.Moments._one_pass

    def spy(self, *args):
        verdicts.append(one_pass(self, *args))
        return verdicts[-1]

    monkeypatch.setattr(moments_module.Moments, "_one_pass", spy)
    rng = np.random.default_rng(21)
    x = 1e4 + rng.normal(size=(4, 3, 130, 130))  # a block per channel
    x[:, 1, :2, :] += 50.0  # channel 1: the first 260 values of each row far off
    x[:, 2] = 3.0
    x = x.astype(dtype)
    kw = dict(per="channel", gamma=1.5, beta=0.25)
    _close(normcli.batch_norm(x, **kw), batch_norm_ref(x, **kw), RTOL[dtype])
    assert verdicts == [True, False, True]


def _spy(monkeypatch, module, name):
    """Record what ``module.name`` returns, call by call."""
    seen = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_channel_statistics_around_zero_in_two_phases(dtype, monkeypatch):
    """Channels of data within a standard deviation of 0 take their sums of x and
    x**2 in one pass, then x * scale + shift; the few channels beyond (here 1e4
    sigma away, a constant one, one holding NaN) are redone by Moments' exact
    two passes.  Every channel matches the float64 reference; NaN stays in its
    channel."""
    from normcli.ops import batchnorm as bn

    phases = _spy(monkeypatch, bn, "_two_phases")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 40, 30, 40))
    x[:, 3] += 1e4
    x[:, 5] = 2.5
    x[:, 9] -= 3.0  # three sigma: beyond one
    x = x.astype(dtype)
    kw = dict(per="channel", gamma=np.linspace(0.5, 2.0, 40), beta=0.25)
    _close(normcli.batch_norm(x, **kw), batch_norm_ref(x, **kw), RTOL[dtype])
    assert phases == [True]
    x[1, 7, 2, 2] = np.nan
    y = normcli.batch_norm(x, **kw)
    assert phases == [True, True]
    assert np.isnan(y[:, 7]).all() and not np.isnan(np.delete(y, 7, axis=1)).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_channel_with_many_channels_far_from_zero_falls_back(dtype, monkeypatch):
    """More than an eighth of the values in channels beyond a standard deviation:
    the two phases' sums still give every channel's mean, which each block
    takes as its one pass's shift (no sums around 0 again, no sampled shift):
    a channel per block (batchnorm._one_channel), or Moments' one pass for
    blocks of several.  Every block's one pass holds; the same statistics, and
    bits that do not depend on the threads."""
    from normcli.ops import batchnorm as bn
    from normcli.ops import moments as moments_module

    phases = _spy(monkeypatch, bn, "_two_phases")
    verdicts = _spy(monkeypatch, moments_module.Moments, "_one_pass")
    around = _spy(monkeypatch, moments_module.Moments, "_around_zero")
    channels: list[bool] = []
    real = bn._one_channel

    def one_channel(*args):
        block = real(*args)

        def recorded(*a):
            channels.append(block(*a))
            return channels[-1]

        return recorded

    monkeypatch.setattr(bn, "_one_channel", one_channel)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(8, 6, 120, 120))  # a channel per block
    x[:, :3] += 50.0
    x = x.astype(dtype)
    kw = dict(per="channel", gamma=1.5, beta=-0.5)
    y = normcli.batch_norm(x, **kw)
    _close(y, batch_norm_ref(x, **kw), RTOL[dtype])
    assert phases == [False] and channels == [True] * 6 and verdicts == around == []
    for threads in (1, 3):
        np.testing.assert_array_equal(normcli.batch_norm(x, threads=threads, **kw), y)
    small = x.reshape(8, 24, 60, 60)  # blocks of several channels: Moments' one pass
    kw["gamma"] = 0.5
    _close(normcli.batch_norm(small, **kw), batch_norm_ref(small, **kw), RTOL[dtype])
    assert verdicts and all(verdicts) and around == []
    x[2, 4, 7, 7] = np.nan  # its channel's shift is NaN: the two-pass form, NaN kept in it
    y = normcli.batch_norm(x, **kw)
    assert np.isnan(y[:, 4]).all() and not np.isnan(np.delete(y, 4, axis=1)).any()


@pytest.mark.parametrize("shape", [(4, 3, 64, 64), (4, 3, 20, 20), (6, 1, 300, 300)])
def test_a_variance_far_below_eps_keeps_its_mean(shape):
    """Values of 1e-11 (variance 1e-22, far below eps): outputs of about 1e-9,
    against gamma = 1.  Around 0 (the mean within a standard deviation) the
    shift is all of -mean * scale, as large as the outputs, so it must never
    be dropped as negligible."""
    x = (np.random.default_rng(9).normal(size=shape) * 1e-11 + 3e-12).astype(np.float32)
    _close(normcli.batch_norm(x, per="channel"), batch_norm_ref(x, per="channel"),
           RTOL[np.float32])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_activation_around_zero_and_what_the_first_block_decides(dtype, monkeypatch):
    """Per activation, column blocks of data near 0 take their sums of x and x**2
    over the batch and write x * scale + shift in one go
    (batchnorm._activations); the statistics beyond a standard deviation from
    0 (a batch of 16 has some in every block, here also one 40 sigma off) or
    holding NaN are redone by Moments' exact two passes.  Data far from 0
    (images) take each block again around the means its sums gave.  Whether
    the blocks after the first are tried is what the first block found, so
    the bits do not depend on the threads: where it fails (here every
    statistic NaN) the others are not tried.  Every case matches the float64
    reference."""
    from normcli.ops import batchnorm as bn

    tried: list[bool] = []
    real = bn._activations

    def spy(*args):
        block = real(*args)

        def recorded(*a):
            tried.append(block(*a))
            return tried[-1]

        return recorded

    monkeypatch.setattr(bn, "_activations", spy)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(16, 8, 256, 64)).astype(dtype)  # several blocks
    m = x.reshape(16, -1)
    assert (m.mean(axis=0) ** 2 > m.var(axis=0)).sum() > 20  # beyond a standard deviation
    x[:, 5, 40, 7] += 40.0
    kw = dict(per="activation", gamma=np.linspace(0.5, 2.0, 8)[:, None, None], beta=-0.5)
    y = normcli.batch_norm(x, **kw)
    _close(y, batch_norm_ref(x, **kw), RTOL[dtype])
    assert len(tried) > 2 and all(tried)
    for threads in (1, 3):
        np.testing.assert_array_equal(normcli.batch_norm(x, threads=threads, **kw), y)
    tried.clear()
    far = x + 200.0  # every statistic far from 0: every block around its means
    y = normcli.batch_norm(far, **kw)
    _close(y, batch_norm_ref(far, **kw), RTOL[dtype])
    assert len(tried) > 2 and all(tried)
    for threads in (1, 3):
        np.testing.assert_array_equal(normcli.batch_norm(far, threads=threads, **kw), y)
    relu = np.maximum(x + dtype(0.3), 0)  # many statistics beyond, many near
    y = normcli.batch_norm(relu, **kw)
    _close(y, batch_norm_ref(relu, **kw), RTOL[dtype])
    np.testing.assert_array_equal(normcli.batch_norm(relu, threads=3, **kw), y)
    tried.clear()
    lost = x.copy()
    lost[0] = np.nan  # every statistic NaN: the first block says so
    assert np.isnan(normcli.batch_norm(lost, **kw)).all()
    assert tried == [False]
    x[3, 2, 1, 1] = np.nan
    y = normcli.batch_norm(x, **kw)
    assert np.isnan(y[:, 2, 1, 1]).all() and np.isnan(y).sum() == x.shape[0]


@pytest.mark.parametrize("mean, var", [(1e39, 1e39), (-3e38, 1e30), (1e150, 1e260)])
def test_stored_means_beyond_float32_on_float32_data_give_the_rounded_result(mean, var):
    """Float64 statistics whose mean float32 cannot hold, on float32 data: the mean
    rounded to float32 was Inf, and (x - Inf) * scale + (beta + Inf * scale) gave
    NaN everywhere, silently.  The result, about -mean / std, is what float32 holds
    (where every output would overflow, the statistics are refused: the next test)."""
    x = np.random.default_rng(5).random((6, 4, 8, 8), dtype=np.float32)
    stats_mean, stats_var = np.full(4, mean), np.full(4, var)
    y = normcli.batch_norm(x, per="channel", mean=stats_mean, var=stats_var)
    with np.errstate(over="ignore"):
        want = ((x.astype(np.float64) - mean) / np.sqrt(var + 1e-5)).astype(np.float32)
    assert y.dtype == np.float32 and not np.isnan(y).any()
    np.testing.assert_allclose(y, want, rtol=2e-7)


def test_an_eps_whose_inverse_root_overflows_the_compute_type_is_refused():
    """eps=1e-80 on float32 data: a constant channel's scale 1/sqrt(eps) was Inf in
    float32 and its outputs 0 * Inf = NaN (found by a hostile-input review)."""
    x = np.random.default_rng(0).random((4, 3, 2, 2)).astype(np.float32)
    x[:, 1] = 0.5
    for kwargs in ({}, {"mean": np.full(3, 0.5), "var": np.zeros(3)}):
        with pytest.raises(normcli.errors.ParameterError,
                           match=r"eps=1e-80 is below 8\.6\d*e-78: 1/sqrt"):
            normcli.batch_norm(x, per="channel", eps=1e-80, **kwargs)
    y = normcli.batch_norm(x, per="channel", eps=1e-77)  # (the smallest that float32 holds)
    assert np.isfinite(y).all() and (y[:, 1] == 0).all()
    y = normcli.batch_norm(x.astype(np.float64), per="channel", eps=1e-300)  # float64 holds it
    assert np.isfinite(y).all() and (y[:, 1] == 0).all()


def test_stored_means_whose_every_output_overflows_are_refused():
    """A float64 mean of 1e300 on float32 data made every output of its statistic
    -Inf, exit 0; a mean beyond float32 with a variance to match stays finite."""
    x = np.full((2, 3, 2, 2), 0.5, np.float32)
    for var in (np.ones(3), np.full(3, 1e300)):  # (1e300 / sqrt(1e300) is beyond it too)
        with pytest.raises(normcli.errors.ParameterError,
                           match=r"mean holding 1e\+300 is beyond float32's range"):
            normcli.batch_norm(x, per="channel", mean=np.array([0.0, 1e300, 0.0]), var=var)
    y = normcli.batch_norm(x, per="channel", mean=np.full(3, 1e39), var=np.full(3, 1e78))
    assert np.isfinite(y).all()
    y = normcli.batch_norm(x.astype(np.float64), per="channel", mean=np.full(3, 1e300),
                           var=np.ones(3))  # (float64 holds every output)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("dtype, gamma", [(np.float64, 1e308), (np.float32, 1e38)])
def test_a_scale_beyond_the_compute_type_is_refused_not_nan(dtype, gamma):
    """gamma / sqrt(var + eps) beyond the compute type rounded to Inf, and the
    fused form gave NaN (or Inf) where the outputs, +-gamma, are finite."""
    x = np.array([[0.0], [0.5]], dtype)
    for kwargs in ({}, {"mean": 0.25, "var": 0.0625}):
        with pytest.raises(normcli.errors.ParameterError,
                           match=r"gamma over sqrt\(var \+ eps\) reaches .* beyond") as e:
            normcli.batch_norm(x, gamma=gamma, eps=1e-12, **kwargs)
        assert e.value.param == "gamma"
    y = normcli.batch_norm(x, gamma=gamma / 100, eps=1e-12)  # (within the range: exact)
    np.testing.assert_allclose(y.ravel(), [-gamma / 100, gamma / 100], rtol=1e-6)
