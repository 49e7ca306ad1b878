"""normcli.lrn against the slow float64 reference in tests/reference.py.

Tolerances.
* float64 inputs: 1e-12 relative.  The denominator is k plus a sum of at most
  n^2 <= 289 non-negative squares (no cancellation), then ``**beta`` and one
  division: a correct float64 kernel is within ~1e-14 relative of the reference
  whatever order it sums in; 1e-12 leaves two orders of magnitude of headroom
  but still catches a sliding-window sum done by cumulative-sum differences
  (which cancels catastrophically when magnitudes vary, see
  ``test_float64_dynamic_range``).
* float32 inputs: 1e-5 relative.  The kernel computes in float32 (u = 6e-8): a
  sum of m squares is accurate to ~sqrt(m)..m u, ``pow`` scales the relative
  error by beta <= 1.5 and the division and final rounding add 2 u, i.e. a few
  1e-7 for these windows; 1e-5 is ~100 u.  Outputs that are exactly zero must be
  exactly zero (atol = 0).
"""

from __future__ import annotations

import inspect
import math
import warnings
import zlib

import numpy as np
import pytest
from reference import (  # noqa: E402
    INTRA,
    LRN_DEFAULTS,
    lrn_alpha_eff,
    lrn_k_eff,
    lrn_ref,
    lrn_window,
)

import normcli  # noqa: E402

ALL = ("seed", "pytorch", "onnx", "cudnn", "caffe", "tensorflow")
NO_INTRA = ("pytorch", "onnx", "tensorflow")
RTOL = {np.float64: 1e-12, np.float32: 1e-5}

# Valid n per convention: n = 1, odd and even, and n larger than every C used below.
N_VALUES = {
    "seed": [1, 2, 3, 4, 5, 9],
    "pytorch": [1, 2, 3, 4, 5, 6, 9],
    "onnx": [1, 2, 3, 4, 5, 6, 9],
    "cudnn": [1, 2, 3, 4, 5, 16],  # 16 is cuDNN's maximum
    "caffe": [1, 3, 5, 7, 9],  # odd only
    "tensorflow": [0, 1, 2, 3, 5],  # a radius: the window is 2n+1
}
# 2-D to 5-D, N != C everywhere; C in {1, 3, 4, 6}.
SHAPES = [(6, 5), (3, 6, 5), (2, 5, 4, 3), (2, 3, 4, 3, 5)]


def _rng(*key) -> np.random.Generator:
    """A generator seeded by the test's parameters: reproducible, different per case."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _params(rng: np.random.Generator, convention: str, mode: str, n: int):
    """Random (k, alpha, beta) within every convention's limits."""
    k = float(rng.uniform(0.5, 3.0))
    alpha = float(10 ** rng.uniform(-4, 0))
    beta = float(rng.uniform(0.3, 1.5))
    return k, alpha, beta


def _input(rng, shape, convention, mode, n, alpha, dtype):
    """Values whose squared window sum makes alpha_eff * sum ~ 0.1..100, signs, zeros."""
    a_eff = lrn_alpha_eff(convention, mode, max(n, 1), alpha)
    x = rng.normal(size=shape) * rng.uniform(0.3, 3.0) / math.sqrt(a_eff * max(n, 1))
    x[rng.random(shape) < 0.1] = 0.0
    return x.astype(dtype)


def _close(out, expected, dtype):
    np.testing.assert_allclose(np.asarray(out, dtype=np.float64), expected,
                               rtol=RTOL[dtype], atol=0)


def _cases():
    for conv in ALL:
        for mode in ("inter", "intra") if conv in INTRA else ("inter",):
            for n in N_VALUES[conv]:
                for shape in SHAPES:
                    for cl in (False, True) if len(shape) > 2 else (False,):
                        yield pytest.param(conv, mode, n, shape, cl,
                                           id=f"{conv}-{mode}-n{n}-{len(shape)}d"
                                              + ("-cl" if cl else ""))


# ------------------------------------------------------------------ the reference itself


def test_reference_seed_worked_example_1():
    """4 channels, (k, alpha, beta, n) = (0, 1, 1, 2): (0,0,0) = 1, channel 1 = 1 -> 0.5."""
    x = np.ones((4, 1, 1))
    r = lrn_ref(x, convention="seed", k=0, alpha=1, beta=1, n=2)
    assert r[0, 0, 0] == 0.5
    assert r[1, 0, 0] == pytest.approx(1 / 3)


def test_reference_intra_corner_sees_2x2():
    r = lrn_ref(np.ones((5, 5)), mode="intra", convention="seed", k=0, alpha=1, beta=1, n=2)
    assert r[0, 0] == 1 / 4 and r[0, 2] == pytest.approx(1 / 6) and r[2, 2] == pytest.approx(1 / 9)


@pytest.mark.parametrize("convention", ALL)
def test_conventions_table_matches_reference(convention):
    """The data table the kernels read agrees with the independently written reference."""
    from normcli.ops.conventions import resolve_lrn

    for mode in ("inter", "intra") if convention in INTRA else ("inter",):
        for n in N_VALUES[convention] + [2, 7, 8, 15]:
            if (convention == "caffe" and n % 2 == 0) or (convention == "cudnn" and n > 16):
                continue
            p = resolve_lrn(mode=mode, convention=convention, n=n, k=1.25, alpha=0.3)
            assert (p.lo, p.hi) == lrn_window(convention, n), (mode, n)
            assert p.alpha_eff == pytest.approx(lrn_alpha_eff(convention, mode, n, 0.3),
                                                rel=1e-15), (mode, n)
            assert p.k_eff == lrn_k_eff(convention, mode, 1.25), (mode, n)
        d = resolve_lrn(mode=mode, convention=convention)
        assert (d.n, d.k, d.alpha, d.beta) == LRN_DEFAULTS[convention]


# ------------------------------------------------------------------ kernel vs reference


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("convention, mode, n, shape, channels_last", list(_cases()))
def test_lrn_matches_reference(convention, mode, n, shape, channels_last, dtype):
    rng = _rng(convention, mode, n, shape, channels_last, dtype.__name__)
    k, alpha, beta = _params(rng, convention, mode, n)
    if channels_last:
        shape = shape[:-3] + shape[-2:] + shape[-3:-2]  # (..., H, W, C)
    x = _input(rng, shape, convention, mode, n, alpha, dtype)
    kw = dict(mode=mode, convention=convention, n=n, k=k, alpha=alpha, beta=beta,
              channels_last=channels_last)
    out = normcli.lrn(x, **kw)
    assert out.shape == x.shape
    assert out.dtype == dtype
    _close(out, lrn_ref(x, **kw), dtype)


@pytest.mark.parametrize("shape", [(3, 6, 5), (2, 4, 3, 5), (2, 1, 4, 5, 3)])
@pytest.mark.parametrize("seed", range(8))
def test_lrn_random_shapes_and_conventions(shape, seed):
    """Random convention, mode, n, shape sizes and values, float64."""
    rng = np.random.default_rng(1000 + seed)
    conv = ALL[rng.integers(len(ALL))]
    mode = "intra" if conv in INTRA and rng.random() < 0.5 else "inter"
    n = int(rng.choice(N_VALUES[conv]))
    shape = tuple(int(s) for s in rng.integers(1, 8, size=len(shape)))
    k, alpha, beta = _params(rng, conv, mode, n)
    x = _input(rng, shape, conv, mode, n, alpha, np.float64)
    kw = dict(mode=mode, convention=conv, n=n, k=k, alpha=alpha, beta=beta)
    _close(normcli.lrn(x, **kw), lrn_ref(x, **kw), np.float64)


@pytest.mark.parametrize("convention", ALL)
def test_defaults_match_the_documented_table(convention):
    """n, k, alpha, beta = None use the convention's documented defaults."""
    rng = _rng("defaults", convention)
    for mode in ("inter", "intra") if convention in INTRA else ("inter",):
        x = rng.normal(size=(2, 7, 6, 5)) * 30
        _close(normcli.lrn(x, mode=mode, convention=convention),
               lrn_ref(x, mode=mode, convention=convention), np.float64)
    # and the defaults are not silently something else: explicit == implicit
    n, k, alpha, beta = LRN_DEFAULTS[convention]
    x = rng.normal(size=(7, 3, 3)) * 30
    np.testing.assert_array_equal(
        normcli.lrn(x, convention=convention),
        normcli.lrn(x, convention=convention, n=n, k=k, alpha=alpha, beta=beta))


def test_default_convention_is_seed():
    x = _rng("seed-default").normal(size=(6, 3, 3)) * 50
    np.testing.assert_array_equal(normcli.lrn(x), normcli.lrn(x, convention="seed"))
    _close(normcli.lrn(x), lrn_ref(x, convention="seed", n=5, k=2, alpha=1e-4, beta=0.75),
           np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode, convention, n", [("inter", "pytorch", 4), ("inter", "seed", 5),
                                                 ("intra", "cudnn", 4), ("intra", "caffe", 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_large_arrays_blocked_and_threaded(dtype, mode, convention, n, channels_last):
    """> 2**18 elements: the kernel cuts blocks and may use threads; same results."""
    rng = _rng("large-array", dtype.__name__, mode, convention, n, channels_last)
    shape = (2, 130, 128, 16) if channels_last else (2, 16, 128, 130)
    x = _input(rng, shape, convention, mode, n, 1e-2, dtype)
    kw = dict(mode=mode, convention=convention, n=n, k=1.5, alpha=1e-2, beta=0.75,
              channels_last=channels_last)
    out = normcli.lrn(x, **kw)
    _close(out, lrn_ref(x, **kw), dtype)
    if "threads" in inspect.signature(normcli.lrn).parameters:
        # blocks are independent: the thread count must not change a single bit
        np.testing.assert_array_equal(normcli.lrn(x, threads=1, **kw), out)
        np.testing.assert_array_equal(normcli.lrn(x, threads=3, **kw), out)


def test_float64_dynamic_range():
    """Channels 1e6 apart in magnitude: a cumulative-sum window would lose all digits."""
    x = np.ones((2, 12, 3, 3))
    x[:, 0] = 1e6
    x[:, 6] = 1e-3
    for conv, mode in [("seed", "inter"), ("pytorch", "inter"), ("cudnn", "intra")]:
        xx = x if mode == "inter" else np.moveaxis(x, 1, -1).copy()  # big values along W
        kw = dict(mode=mode, convention=conv, n=3, k=1.0, alpha=1.0, beta=0.75)
        _close(normcli.lrn(xx, **kw), lrn_ref(xx, **kw), np.float64)


@pytest.mark.parametrize("mode", ["inter", "intra"])
@pytest.mark.parametrize("k", [1.0, 0.0])
@pytest.mark.parametrize("n", [80, 200])
def test_float64_long_axis_dynamic_range(mode, k, n):
    """An axis longer than 256 with a wide window, values 1e4 apart.

    Exact window sums are ~n; a running total that passed through 1e9 keeps
    only ~7 of their digits, so a cumulative-sum shortcut fails 1e-12 here.
    """
    rng = _rng("long", mode, k, n)
    shape = (1, 500, 1, 1) if mode == "inter" else (2, 500)
    x = rng.uniform(0.5, 1.5, size=shape)
    big = (slice(None), slice(0, 10)) if mode == "inter" else (Ellipsis, slice(0, 10))
    x[big] *= 1e4
    kw = dict(mode=mode, convention="seed", n=n, k=k, alpha=1.0, beta=0.75)
    _close(normcli.lrn(x, **kw), lrn_ref(x, **kw), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [1.5, 2.0])
def test_tiny_positive_k(dtype, beta):
    """k = 1e-30 (float32) / 1e-200 (float64) is valid: k**beta underflows, results must not.

    Zeros stay 0 (not 0/0 = NaN) and small values get their finite result.
    """
    k = 1e-30 if dtype == np.float32 else 1e-200
    x = np.array([0.0, 1e-25, 1.0, -3.0], dtype=dtype).reshape(4, 1, 1)
    kw = dict(convention="pytorch", n=1, k=k, alpha=1.0, beta=beta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normcli.lrn(x, **kw)
    ref = lrn_ref(x, **kw)
    assert out[0, 0, 0] == 0
    finite = np.abs(ref) < np.finfo(dtype).max
    _close(out[finite], ref[finite], dtype)


@pytest.mark.parametrize("dtype, small, large", [(np.float64, 1e-100, 1e100),
                                                   (np.float32, 1e-12, 1e10)])
@pytest.mark.parametrize("k", [0.0, 1.0])
def test_denominator_power_out_of_range(dtype, small, large, k):
    """beta = 2: den**beta under/overflows although the result is representable.

    float64: 1e-100 / (1e-200)**2 = 1e300 (k=0), 1e100 / (1e200)**2 = 1e-300;
    float32: 1e-12 / (1e-24)**2 = 1e36 (k=0), 1e10 / (1e20)**2 = 1e-30.
    """
    x = np.array([small, large, 0.0, -large], dtype=dtype).reshape(4, 1, 1)
    kw = dict(convention="onnx", n=1, k=k, alpha=1.0, beta=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normcli.lrn(x, **kw)
    ref = lrn_ref(x, **kw)
    assert np.all(np.abs(ref[[0, 1, 3]]) > 0) and np.all(np.abs(ref) < np.finfo(dtype).max)
    _close(out, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_zero_small_window_after_huge_values_is_not_zeroed(dtype):
    """k = 0: a window of 1e-3s that follows 1e6s must not come out as 0 (or NaN/inf).

    The right answer is ~1.17 everywhere past channel 90; a running sum
    differenced at 1e13 leaves the 8e-5 window sum as rounding noise or 0.
    """
    x = np.full((300, 1, 1), 1e-3, dtype=dtype)
    x[:10] = 1e6
    kw = dict(convention="seed", n=80, k=0.0, alpha=1.0, beta=0.75)
    out = normcli.lrn(x, **kw)
    ref = lrn_ref(x, **kw)
    assert np.all(np.isfinite(out))
    _close(out, ref, dtype)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mode, shape, where", [
    ("inter", (2, 8, 3, 3), (0, 0, 0, 0)),
    ("intra", (2, 8, 5, 5), (0, 0, 0, 0)),
    ("intra", (7, 7), (3, 3)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_inputs_stay_in_their_window(value, mode, shape, where, dtype):
    """NaN/inf propagate to the outputs whose window holds them, and no further."""
    x = (_rng("nonfinite", mode, shape).uniform(0.5, 2.0, size=shape)).astype(dtype)
    x[where] = value
    kw = dict(mode=mode, convention="seed", n=2, k=1.0, alpha=1.0, beta=0.75)
    out = np.asarray(normcli.lrn(x, **kw), np.float64)
    ref = lrn_ref(x, **kw)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(out[finite], ref[finite], rtol=RTOL[dtype], atol=0)


def test_two_dimensional_input_is_one_channel():
    x = _rng("2d").normal(size=(5, 6)) * 100
    for mode in ("inter", "intra"):
        out = normcli.lrn(x, mode=mode, n=3)
        np.testing.assert_allclose(out, normcli.lrn(x[None], mode=mode, n=3)[0], rtol=1e-15)
    # inter-channel on one channel: each value only sees itself
    np.testing.assert_allclose(normcli.lrn(x, n=5, k=2, alpha=1e-4, beta=0.75),
                               x / (2 + 1e-4 * x * x) ** 0.75, rtol=1e-14)


def test_batch_axes_are_independent():
    rng = _rng("batch")
    x = rng.normal(size=(3, 2, 5, 4, 4)) * 100
    out = normcli.lrn(x, n=3)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(out[i, j], normcli.lrn(x[i, j], n=3), rtol=1e-15)


def test_non_contiguous_input_and_input_unchanged():
    rng = _rng("views")
    base = rng.normal(size=(2, 10, 6, 8)) * 100
    x = base[:, ::2, :, ::-2]  # strided and reversed view
    before = x.copy()
    kw = dict(convention="onnx", n=4, k=1, alpha=1e-2, beta=0.75)
    _close(normcli.lrn(x, **kw), lrn_ref(x, **kw), np.float64)
    np.testing.assert_array_equal(x, before)
    kw = dict(mode="intra", convention="cudnn", n=2, k=1, alpha=1e-2, beta=0.75)
    _close(normcli.lrn(x, **kw), lrn_ref(x, **kw), np.float64)
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------------------ worked examples


def test_seed_worked_example_inter():
    """Seed example 1: 4 channels, (k, alpha, beta, n) = (0, 1, 1, 2) -> 0.5 at (0, 0, 0)."""
    x = np.ones((4, 2, 2), dtype=np.float32)
    out = normcli.lrn(x, k=0, alpha=1, beta=1, n=2)
    np.testing.assert_allclose(out[:, 0, 0], [1 / 2, 1 / 3, 1 / 3, 1 / 2], rtol=1e-7)
    assert out[0, 0, 0] == np.float32(0.5)


def test_seed_worked_example_intra_border_windows():
    """Seed example 2: n = 2 on 5x5 is a 3x3 window, a corner sees 2x2, an edge 2x3."""
    out = normcli.lrn(np.ones((5, 5)), mode="intra", convention="seed", k=0, alpha=1, beta=1,
                      n=2)
    expected = np.full((5, 5), 1 / 9)
    expected[[0, 0, 4, 4], [0, 4, 0, 4]] = 1 / 4
    expected[0, 1:4] = expected[4, 1:4] = expected[1:4, 0] = expected[1:4, 4] = 1 / 6
    np.testing.assert_allclose(out, expected, rtol=1e-15)


@pytest.mark.parametrize("convention, n, k", [("cudnn", 3, 1.0), ("caffe", 3, 7.0)])
def test_intra_alpha_divisor_constant_at_borders(convention, n, k):
    """alpha/n^2 everywhere (zero padding counted), caffe uses k = 1 whatever k is given."""
    out = normcli.lrn(np.ones((4, 5)), mode="intra", convention=convention, n=n, k=k,
                      alpha=9.0, beta=1.0)
    # 1 + (9 / 9) * (number of in-map positions in the 3x3 window)
    expected = np.full((4, 5), 1 / 10)
    expected[[0, 0, 3, 3], [0, 4, 0, 4]] = 1 / 5
    expected[0, 1:4] = expected[3, 1:4] = expected[1:3, 0] = expected[1:3, 4] = 1 / 7
    np.testing.assert_allclose(out, expected, rtol=1e-15)


# An impulse on a map of ones changes exactly the outputs whose window holds it.
# Intra: window rows/cols [y - lo, y + hi] hold p  <=>  p - hi <= y <= p + lo.
INTRA_IMPULSE = [
    # convention, n, impulse (row, col), rows changed, cols changed
    ("seed", 2, (0, 0), [0, 1], [0, 1]),  # corner, 3x3 window -> 2x2 block
    ("seed", 2, (2, 2), [1, 2, 3], [1, 2, 3]),
    ("seed", 2, (4, 1), [3, 4], [0, 1, 2]),
    ("cudnn", 2, (2, 2), [1, 2], [1, 2]),  # window [y, y+1]: changes y-1 and y
    ("cudnn", 3, (2, 2), [1, 2, 3], [1, 2, 3]),
    ("cudnn", 4, (2, 2), [0, 1, 2, 3], [0, 1, 2, 3]),  # window [y-1, y+2]
    ("caffe", 3, (0, 4), [0, 1], [3, 4]),
    ("caffe", 5, (2, 2), [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]),
]


@pytest.mark.parametrize("convention, n, p, rows, cols", INTRA_IMPULSE)
def test_intra_impulse_changes_exactly_its_window(convention, n, p, rows, cols):
    base = np.ones((5, 5))
    x = base.copy()
    x[p] = 10.0
    kw = dict(mode="intra", convention=convention, n=n, k=1.0, alpha=0.5, beta=0.75)
    changed = normcli.lrn(x, **kw) != normcli.lrn(base, **kw)
    expected = np.zeros((5, 5), bool)
    expected[np.ix_(rows, cols)] = True
    np.testing.assert_array_equal(changed, expected)
    # an impulse on zeros: only the impulse itself is nonzero
    z = np.zeros((5, 5))
    z[p] = 3.0
    out = normcli.lrn(z, **kw)
    assert np.count_nonzero(out) == 1 and out[p] > 0


# Inter, 7 channels, impulse at channel 3: channel i changes iff 3 - hi <= i <= 3 + lo.
INTER_IMPULSE = [
    ("seed", 2, [2, 3, 4]),
    ("seed", 4, [1, 2, 3, 4, 5]),
    ("pytorch", 2, [3, 4]),  # window [i-1, i]
    ("pytorch", 4, [2, 3, 4, 5]),  # window [i-2, i+1]
    ("onnx", 2, [2, 3]),  # window [i, i+1]
    ("onnx", 4, [1, 2, 3, 4]),  # window [i-1, i+2]
    ("cudnn", 4, [1, 2, 3, 4]),
    ("caffe", 3, [2, 3, 4]),
    ("tensorflow", 0, [3]),
    ("tensorflow", 2, [1, 2, 3, 4, 5]),
    ("pytorch", 1, [3]),
    ("seed", 1, [3]),
]


@pytest.mark.parametrize("convention, n, changed_channels", INTER_IMPULSE)
@pytest.mark.parametrize("channels_last", [False, True])
def test_inter_impulse_changes_exactly_its_window(convention, n, changed_channels,
                                                  channels_last):
    base = np.ones((2, 7, 2, 3))
    x = base.copy()
    x[:, 3] = 10.0
    if channels_last:
        base, x = np.moveaxis(base, 1, -1), np.moveaxis(x, 1, -1)
    kw = dict(convention=convention, n=n, k=1.0, alpha=0.5, beta=0.75,
              channels_last=channels_last)
    changed = normcli.lrn(x, **kw) != normcli.lrn(base, **kw)
    if channels_last:
        changed = np.moveaxis(changed, -1, 1)
    expected = np.zeros((2, 7, 2, 3), bool)
    expected[:, changed_channels] = True
    np.testing.assert_array_equal(changed, expected)


@pytest.mark.parametrize("convention, mode",
                         [(c, "inter") for c in ALL] + [(c, "intra") for c in INTRA])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_zero_is_x_over_k_to_the_beta(convention, mode, dtype):
    x = (_rng("alpha0", convention, mode).normal(size=(2, 5, 4, 3)) * 100).astype(dtype)
    n = 3
    k, beta = 1.7, 0.8
    out = normcli.lrn(x, mode=mode, convention=convention, n=n, k=k, alpha=0.0, beta=beta)
    k_used = 1.0 if (convention, mode) == ("caffe", "intra") else k
    _close(out, x.astype(np.float64) / k_used**beta, dtype)


# ------------------------------------------------------------------ errors


ERRORS = [
    (dict(mode="intra", convention="pytorch"), "mode"),
    (dict(mode="intra", convention="onnx"), "mode"),
    (dict(mode="intra", convention="tensorflow"), "mode"),
    (dict(mode="across"), "mode"),
    (dict(mode=None), "mode"),
    (dict(convention="keras"), "convention"),
    (dict(convention=None), "convention"),
    (dict(convention="caffe", n=4), r"\bn=4"),
    (dict(convention="caffe", n=2, mode="intra"), r"\bn=2"),
    (dict(convention="cudnn", n=17), r"\bn=17"),
    (dict(convention="cudnn", n=0), r"\bn=0"),
    (dict(convention="seed", n=0), r"\bn=0"),
    (dict(convention="pytorch", n=-1), r"\bn=-1"),
    (dict(convention="tensorflow", n=-1), r"\bn=-1"),
    (dict(n=2.5), r"\bn="),
    (dict(k=-1.0), r"\bk="),
    (dict(convention="cudnn", k=0.0), r"\bk="),  # cuDNN needs k >= 1e-5
    (dict(alpha=float("nan")), "alpha"),
    (dict(alpha=float("inf")), "alpha"),
    (dict(alpha=-1e-4), "alpha"),
    (dict(beta=-0.5), "beta"),
    (dict(beta=float("nan")), "beta"),
    (dict(convention="cudnn", beta=0.001), "beta"),  # cuDNN needs beta >= 0.01
    (dict(k=0.0, alpha=0.0), r"k=0.*alpha=0|alpha=0.*k=0"),
    (dict(convention="caffe", mode="inter", k=0.0, alpha=0.0), "alpha"),
]


@pytest.mark.parametrize("kwargs, match", ERRORS, ids=[repr(e[0]) for e in ERRORS])
def test_invalid_settings_raise_value_error_naming_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        normcli.lrn(np.ones((3, 4, 4)), **kwargs)


def test_caffe_intra_k_zero_alpha_zero_is_allowed():
    """Caffe's within-channel form uses k = 1, so k=0 with alpha=0 is not 0/0 there."""
    x = np.arange(12.0).reshape(3, 2, 2)
    np.testing.assert_array_equal(
        normcli.lrn(x, mode="intra", convention="caffe", n=3, k=0.0, alpha=0.0), x)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_too_few_dimensions_raise(shape):
    with pytest.raises(ValueError):
        normcli.lrn(np.ones(shape))


# ------------------------------------------------------------------ dtypes and range


@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float32),
    (np.float32, np.float32),
    (np.float64, np.float64),
    (np.uint8, np.float64),
    (np.int16, np.float64),
    (np.int32, np.float64),
    (np.int64, np.float64),
    (np.bool_, np.float64),
])
def test_output_dtype(dtype, expected):
    x = (_rng("dtype", dtype.__name__).integers(0, 2, size=(4, 3, 3))).astype(dtype)
    out = normcli.lrn(x, n=3, k=1, alpha=0.5, beta=0.75)
    assert out.dtype == expected
    _close(out, lrn_ref(x, n=3, k=1, alpha=0.5, beta=0.75), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32])
def test_integer_squares_do_not_wrap(dtype):
    """255**2 = 65025 wraps in uint8 (and 200**2 in int16): compare to the float64 ref."""
    x = np.full((3, 2, 2), 255 if dtype == np.uint8 else 250, dtype=dtype)
    x[1] = 200
    for mode in ("inter", "intra"):
        kw = dict(mode=mode, convention="seed", n=3, k=1, alpha=1e-4, beta=0.75)
        out = normcli.lrn(x, **kw)
        assert out.dtype == np.float64
        _close(out, lrn_ref(x, **kw), np.float64)


def test_float16_computes_in_float32():
    """300**2 = 9e4 overflows float16 (max 65504)."""
    x = np.full((3, 2, 2), 300, dtype=np.float16)
    kw = dict(convention="pytorch", n=3, k=1, alpha=1e-4, beta=0.75)
    out = normcli.lrn(x, **kw)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    _close(out, lrn_ref(x, **kw), np.float32)


@pytest.mark.parametrize("mode", ["inter", "intra"])
@pytest.mark.parametrize("k, beta", [(1.0, 0.75), (0.0, 0.5), (2.0, 1.0)])
def test_float32_large_values(mode, k, beta):
    """1e20**2 = 1e40 overflows float32; the right answer is finite and nonzero."""
    rng = _rng("large", mode, k, beta)
    x = (rng.uniform(0.5, 2.0, size=(2, 4, 3, 3)) * 1e20 * rng.choice([-1, 1], (2, 4, 3, 3)))
    x = x.astype(np.float32)
    kw = dict(mode=mode, convention="seed", n=3, k=k, alpha=1e-4, beta=beta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning is a failure too
        out = normcli.lrn(x, **kw)
    ref = lrn_ref(x, **kw)
    assert np.all(ref != 0)
    assert out.dtype == np.float32
    _close(out, ref, np.float32)


@pytest.mark.parametrize("mode", ["inter", "intra"])
@pytest.mark.parametrize("beta", [0.5, 0.75, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_values_with_k_zero(mode, beta, dtype):
    """(1e-30)**2 = 1e-60 underflows float32 to 0: 0/0 or x/0 would be wrong."""
    rng = _rng("tiny", mode, beta, dtype.__name__)
    x = (rng.uniform(0.5, 2.0, size=(2, 4, 3, 3)) * 1e-30).astype(dtype)
    kw = dict(mode=mode, convention="seed", n=3, k=0.0, alpha=1.0, beta=beta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normcli.lrn(x, **kw)
    ref = lrn_ref(x, **kw)
    assert np.all(np.isfinite(out))
    _close(out, ref, dtype)


@pytest.mark.parametrize("convention", ["seed", "pytorch", "onnx", "caffe", "tensorflow"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_k_zero_all_zero_window_gives_zero_not_nan(convention, dtype):
    x = np.zeros((6, 3, 3), dtype=dtype)
    x[0, 0, 0] = 2  # far from most windows
    kw = dict(convention=convention, n=1 if convention == "tensorflow" else 3, k=0.0,
              alpha=1.0, beta=0.75)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value in divide"
        out = normcli.lrn(x, **kw)
    assert not np.any(np.isnan(out))
    assert np.count_nonzero(out) == 1
    _close(out, lrn_ref(x, **kw), np.float64 if dtype != np.float32 else np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zero = normcli.lrn(np.zeros((4, 2, 2), dtype=dtype), **kw)
    np.testing.assert_array_equal(zero, 0.0)
    if convention in INTRA:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            zi = normcli.lrn(x, **{**kw, "mode": "intra", "n": 1 if convention == "caffe" else 2})
        assert not np.any(np.isnan(zi))


def test_float32_window_sum_that_overflows_before_alpha():
    """1.6e19 squared fits float32 (2.7e38) but a window sum of two such squares does
    not, although alpha' * sum (1e-4 * 4.3e38) would: the block must go float64."""
    x = np.zeros((2, 1, 1), np.float32)
    x[:, 0, 0] = [1.6463540e19, -1.2773732e19]
    for convention in ("seed", "pytorch", "onnx", "cudnn"):
        out = normcli.lrn(x, convention=convention, n=5)
        ref = lrn_ref(x, convention=convention, n=5)
        np.testing.assert_allclose(out, ref, rtol=1e-5)
        assert np.all(out != 0)
