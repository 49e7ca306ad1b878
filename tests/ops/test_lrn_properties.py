"""Properties of normcli.lrn that hold for any input (hypothesis).

Each property is a second route to a result the reference tests check one way:
a closed form (alpha = 0, L2 normalization), an invariance (scaling, batch
axes, channels_last), or the documented relations between conventions
(odd n agree; an even PyTorch window is an ONNX window on reversed channels;
Caffe -> TensorFlow by alpha_tf = alpha / n, r = (n - 1) / 2).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import normcli

SETTINGS = settings(max_examples=60, deadline=None)
INTRA = ("seed", "cudnn", "caffe")
ALL = ("seed", "pytorch", "onnx", "cudnn", "caffe", "tensorflow")

_values = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def maps(draw, min_ndim=2, max_ndim=4, dtype=np.float64, values=_values):
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    return draw(hnp.arrays(dtype, shape, elements=values))


@st.composite
def settings_(draw):
    """A valid (convention, mode, n) triple."""
    conv = draw(st.sampled_from(ALL))
    mode = draw(st.sampled_from(("inter", "intra") if conv in INTRA else ("inter",)))
    if conv == "caffe":
        n = draw(st.sampled_from([1, 3, 5, 7]))
    elif conv == "cudnn":
        n = draw(st.integers(1, 16))
    elif conv == "tensorflow":
        n = draw(st.integers(0, 6))
    else:
        n = draw(st.integers(1, 9))
    return conv, mode, n


@SETTINGS
@given(maps(), settings_(), st.floats(0.1, 10), st.floats(0.01, 2))
def test_alpha_zero_is_x_over_k_to_the_beta(x, s, k, beta):
    conv, mode, n = s
    out = normcli.lrn(x, convention=conv, mode=mode, n=n, k=k, alpha=0.0, beta=beta)
    k_used = 1.0 if (conv, mode) == ("caffe", "intra") else k
    np.testing.assert_allclose(out, x / k_used**beta, rtol=1e-13, atol=0)


# zero, or far enough from the underflow threshold that a / den cannot round to 0
_moderate = st.one_of(st.just(0.0), st.floats(1e-100, 1e3), st.floats(-1e3, -1e-100))


@SETTINGS
@given(maps(values=_moderate), settings_(), st.one_of(st.just(0.0), st.floats(1e-3, 3)),
       st.floats(1e-4, 10), st.floats(0.01, 1.0))
def test_sign_preserved_and_magnitude_bounded(x, s, k, alpha, beta):
    """sign(b) == sign(a); |b| <= |a| / k_eff^beta since the window sum is >= 0.

    beta <= 1 keeps den**beta inside float64 for these values; beta > 1, where
    den**beta itself over/underflows, is test_lrn_reference.py's
    test_denominator_power_out_of_range.
    """
    conv, mode, n = s
    if conv == "cudnn":
        k = max(k, 1e-5)
    out = normcli.lrn(x, convention=conv, mode=mode, n=n, k=k, alpha=alpha, beta=beta)
    np.testing.assert_array_equal(np.sign(out), np.sign(x))
    k_used = 1.0 if (conv, mode) == ("caffe", "intra") else k
    if k_used > 0:
        assert np.all(np.abs(out) <= np.abs(x) / k_used**beta * (1 + 1e-13))


@SETTINGS
@given(maps(), settings_(), st.floats(1e-3, 1e3), st.floats(1e-3, 10))
def test_scale_invariance_k0_beta_half(x, s, c, alpha):
    """k = 0, beta = 0.5: b = a / sqrt(alpha' sum a^2) is homogeneous of degree 0."""
    conv, mode, n = s
    assume(not (conv == "cudnn"))  # cuDNN needs k >= 1e-5
    assume(not (conv == "caffe" and mode == "intra"))  # Caffe uses k = 1 there
    # c * x must be x scaled: no element may be (or become) subnormal, where
    # scaling rounds to a step of 5e-324 (c * 5e-324 is 0 or 5e-324 again).
    tiny = np.finfo(np.float64).smallest_normal
    assume(np.all((x == 0) | ((np.abs(x) >= tiny) & (np.abs(c * x) >= tiny))))
    kw = dict(convention=conv, mode=mode, n=n, k=0.0, alpha=alpha, beta=0.5)
    # Results below the normal range have absolute, not relative, precision.
    np.testing.assert_allclose(normcli.lrn(c * x, **kw), normcli.lrn(x, **kw),
                               rtol=1e-12, atol=4 * tiny)


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=3, max_dims=3, max_side=5),
                  elements=_values))
def test_whole_window_l2_normalization(x):
    """(k, alpha, beta) = (0, 1, 0.5) with a window covering every channel is an L2 norm."""
    out = normcli.lrn(x, convention="tensorflow", n=x.shape[0], k=0.0, alpha=1.0, beta=0.5)
    # scaled by the largest magnitude so that tiny or huge x do not under/overflow here
    m = np.abs(x).max(axis=0)
    u = np.divide(x, m, out=np.zeros_like(x), where=m > 0)
    q = (u * u).sum(axis=0)  # in [1, C] where m > 0
    expected = np.divide(u, np.sqrt(q), out=np.zeros_like(x), where=m > 0)
    # atol: a subnormal result (x ~ 1e-309) has only a few significant bits
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-320)
    # the seed's "standard normalization" (0, 1, 1, N): b = a / sum(a^2)
    out = normcli.lrn(x, convention="seed", n=2 * x.shape[0], k=0.0, alpha=1.0, beta=1.0)
    with np.errstate(over="ignore"):  # 1 / (m q) may overflow for subnormal x
        expected = np.divide(u, m * q, out=np.zeros_like(x), where=m > 0)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-13, atol=1e-320)


@SETTINGS
@given(maps(min_ndim=3), st.sampled_from([1, 3, 5, 7]), st.floats(1e-5, 3),
       st.floats(1e-4, 1), st.floats(0.01, 1.5))
def test_odd_n_frameworks_agree(x, n, k, alpha, beta):
    """pytorch, onnx, cudnn and caffe are one inter-channel LRN for odd n, and
    TensorFlow with r = (n-1)/2, alpha_tf = alpha/n, bias = k is the same too."""
    kw = dict(n=n, k=k, alpha=alpha, beta=beta)
    ref = normcli.lrn(x, convention="pytorch", **kw)
    for conv in ("onnx", "cudnn", "caffe"):
        np.testing.assert_allclose(normcli.lrn(x, convention=conv, **kw), ref, rtol=1e-13)
    tf = normcli.lrn(x, convention="tensorflow", n=(n - 1) // 2, k=k, alpha=alpha / n,
                     beta=beta)
    np.testing.assert_allclose(tf, ref, rtol=1e-13)
    # and the seed's neighbourhood n-1 (radius (n-1)/2) with undivided alpha/n
    seed = normcli.lrn(x, convention="seed", n=n - 1 if n > 1 else 1, k=k, alpha=alpha / n,
                       beta=beta)
    np.testing.assert_allclose(seed, ref, rtol=1e-13)


@SETTINGS
@given(maps(min_ndim=3), st.integers(1, 8), st.floats(0.5, 3), st.floats(1e-4, 1))
def test_even_pytorch_is_onnx_on_reversed_channels(x, n, k, alpha):
    """PyTorch puts the extra channel before i, ONNX after: reversing C swaps them."""
    kw = dict(n=n, k=k, alpha=alpha, beta=0.75)
    pt = normcli.lrn(x, convention="pytorch", **kw)
    flipped = normcli.lrn(x[..., ::-1, :, :], convention="onnx", **kw)[..., ::-1, :, :]
    np.testing.assert_allclose(pt, flipped, rtol=1e-13)
    np.testing.assert_allclose(normcli.lrn(x, convention="cudnn", **kw),
                               normcli.lrn(x, convention="onnx", **kw), rtol=1e-13)


@SETTINGS
@given(maps(min_ndim=3, max_ndim=5), settings_(), st.floats(0.5, 3), st.floats(1e-4, 1))
def test_channels_last_is_a_transpose(x, s, k, alpha):
    conv, mode, n = s
    kw = dict(convention=conv, mode=mode, n=n, k=k, alpha=alpha, beta=0.75)
    a = normcli.lrn(np.moveaxis(x, -3, -1), channels_last=True, **kw)
    np.testing.assert_allclose(np.moveaxis(a, -1, -3), normcli.lrn(x, **kw), rtol=1e-14)


@SETTINGS
@given(maps(min_ndim=3, max_ndim=3), settings_(), st.integers(1, 3))
def test_batch_axes_are_independent(x, s, copies):
    conv, mode, n = s
    kw = dict(convention=conv, mode=mode, n=n, k=2.0, alpha=1e-3, beta=0.75)
    one = normcli.lrn(x, **kw)
    batch = normcli.lrn(np.stack([x * (i + 1) for i in range(copies)]), **kw)
    for i in range(copies):
        np.testing.assert_allclose(batch[i], normcli.lrn(x * (i + 1), **kw), rtol=1e-14)
    np.testing.assert_allclose(batch[0], one, rtol=1e-14)


@SETTINGS
@given(maps(min_ndim=2, max_ndim=3), st.sampled_from(INTRA), st.integers(1, 4))
def test_intra_is_transpose_symmetric(x, conv, n):
    """The intra window is the same square on both spatial axes."""
    if conv == "caffe":
        n = 2 * n - 1
    kw = dict(mode="intra", convention=conv, n=n, k=2.0, alpha=1e-2, beta=0.75)
    t = normcli.lrn(np.swapaxes(x, -1, -2), **kw)
    np.testing.assert_allclose(np.swapaxes(t, -1, -2), normcli.lrn(x, **kw), rtol=1e-14)


@SETTINGS
@given(st.sampled_from([np.float16, np.float32, np.float64, np.uint8, np.int8, np.int16,
                        np.int32, np.int64, np.uint16, np.bool_]),
       st.sampled_from(ALL))
def test_dtype_rules(dtype, conv):
    x = np.arange(24).reshape(2, 3, 4) % 7
    out = normcli.lrn(x.astype(dtype), convention=conv, n=3 if conv != "tensorflow" else 1,
                      k=1.0)
    expected = np.float32 if dtype in (np.float16, np.float32) else np.float64
    assert out.dtype == expected
    np.testing.assert_allclose(
        out, normcli.lrn(x.astype(dtype).astype(np.float64), convention=conv,
                         n=3 if conv != "tensorflow" else 1, k=1.0),
        rtol=1e-6 if expected == np.float32 else 1e-15)
