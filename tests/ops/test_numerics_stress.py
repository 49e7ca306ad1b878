"""Numerics under stress: every dtype, magnitudes from 1e-30 to 1e30, every convention.

normcli's LRN and batch norm are compared with the slow float64/longdouble
references of ``tests/reference.py`` on scaled random arrays.

Tolerances (relative, elementwise, plus the same fraction of the largest
reference value for batch norm, whose outputs near 0 come from a subtraction):

* float64 compute (float64, integer and bool inputs): ``1e-12``.  A window of
  at most ~15 squares, one power and one division: a few dozen ulps (2.2e-16)
  at worst, so 1e-12 leaves a wide margin while still catching any loss of
  precision (a differenced running sum, a float32 intermediate).
* float32 compute (float16 and float32 inputs): ``1e-5``.  The same chain in
  float32 (ulp 6e-8): window sums of up to ~15 terms (n * ulp ~ 1e-6), ``**beta``
  (relative error times beta), one division, and for batch norm the
  normalisation of float64 statistics in float32.  1e-5 is ~100 ulps: tight
  enough to catch a wrong formula or a catastrophic cancellation, loose
  enough for legitimate rounding.  float16 inputs are exact in float32, so the
  reference is computed from the float16 values themselves.

Magnitudes reach 1e30 (squares 1e60: beyond float32) and 1e-30 (squares 1e-60:
below float32's smallest subnormal); normcli must recompute such blocks in a
wider type and still meet the float32 tolerance.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import LRN_DEFAULTS, batch_norm_ref, lrn_ref  # noqa: E402

import normcli

COUNTS: Counter[str] = Counter()
DTYPES = ["bool", "uint8", "int16", "int32", "float16", "float32", "float64"]
COMBOS = [(c, "inter") for c in LRN_DEFAULTS] + [(c, "intra") for c in ("seed", "cudnn", "caffe")]
STRESS = settings(max_examples=800, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def tolerance(dtype: str) -> float:
    return 1e-5 if dtype in ("float16", "float32") else 1e-12


@st.composite
def stressed(draw, min_ndim=3):
    """(array, dtype name): a scaled random array of one of DTYPES."""
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(min_ndim, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    shape = (max(shape[0], 2), *shape[1:])
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        x = rng.random(shape) < 0.5
    elif dtype in ("uint8", "int16", "int32"):
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)
    else:
        # float16 cannot hold 1e30 or 1e-30: its own range, normals only
        lo, hi = (-4, 4) if dtype == "float16" else (-30, 30)
        exponent = draw(st.integers(lo, hi))
        spread = draw(st.sampled_from([0.0, 1.0, 3.0]))  # same scale, or mixed over decades
        x = rng.standard_normal(shape) * 10.0 ** (exponent + spread * rng.uniform(-1, 1, shape))
        if draw(st.booleans()):
            x[rng.random(shape) < 0.3] = 0.0
        big = float(np.finfo(dtype).max) / 16
        x = np.clip(x, -big, big).astype(dtype)
        if dtype == "float16":
            x[np.abs(x) < np.finfo(np.float16).tiny] = 0
    return x, dtype


def _close(out, ref, tol, *, scale_atol: bool) -> None:
    ref = np.asarray(ref, dtype=np.float64)
    atol = tol * float(np.max(np.abs(ref), initial=0.0)) if scale_atol else 0.0
    np.testing.assert_allclose(np.asarray(out, dtype=np.float64), ref, rtol=tol, atol=atol)


@STRESS
@given(case=stressed(), channels_last=st.booleans(), n_shift=st.integers(-2, 2),
       k_zero=st.booleans())
def test_lrn_matches_reference_for_every_convention(case, channels_last, n_shift, k_zero):
    x, dtype = case
    tol = tolerance(dtype)
    for convention, mode in COMBOS:
        COUNTS[f"lrn {dtype}"] += 1
        n = max(LRN_DEFAULTS[convention][0] + n_shift, 1)
        if convention == "caffe" and n % 2 == 0:
            n += 1
        k = 0.0 if k_zero and convention in ("seed", "tensorflow") else None
        out = normcli.lrn(x, mode=mode, convention=convention, n=n, k=k,
                          channels_last=channels_last)
        assert out.dtype == (np.float32 if dtype in ("float16", "float32") else np.float64)
        assert np.isfinite(out).all(), (convention, mode)
        ref = lrn_ref(x, mode=mode, convention=convention, n=n, k=k,
                      channels_last=channels_last)
        _close(out, ref, tol, scale_atol=False)


@settings(STRESS, max_examples=1200)
@given(case=stressed(), per=st.sampled_from(["activation", "channel"]),
       channels_last=st.booleans(), eps=st.sampled_from([1e-5, 1e-3, 1e-12]))
def test_batch_norm_matches_reference(case, per, channels_last, eps):
    x, dtype = case
    COUNTS[f"batchnorm {dtype}"] += 1
    out = normcli.batch_norm(x, per=per, eps=eps, channels_last=channels_last)
    assert np.isfinite(out).all()
    ref = batch_norm_ref(x, per=per, eps=eps, channels_last=channels_last)
    _close(out, ref, tolerance(dtype), scale_atol=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("exponent", [-30, -20, 20, 30])
def test_lrn_extreme_uniform_magnitudes(dtype, exponent):
    """All values of one huge or tiny magnitude: squares leave the float32 range."""
    COUNTS[f"lrn {dtype} extreme"] += 1
    x = (np.random.default_rng(exponent + 100).uniform(1, 2, (2, 6, 4, 4))
         * 10.0**exponent).astype(dtype)
    for convention, mode in COMBOS:
        out = normcli.lrn(x, mode=mode, convention=convention)
        ref = lrn_ref(x, mode=mode, convention=convention)
        _close(out, ref, tolerance(dtype), scale_atol=False)


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_float32_batch_norm_of_huge_values(per):
    """Squares of float32 values near 1e19 overflow float32: those blocks go float64."""
    x = np.array([[[2.5322790e14]], [[4.0417243e19]]], dtype=np.float32)
    out = normcli.batch_norm(x, per=per)
    np.testing.assert_allclose(out.ravel(), [-1.0, 1.0], rtol=1e-5)
