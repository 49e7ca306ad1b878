"""normcli against stored outputs of the real frameworks (PyTorch, onnxruntime, TensorFlow).

The fixtures in ``tests/fixtures/*.npz`` are written by ``tools/make_fixtures.py``
and ``tools/make_tf_fixtures.py`` (fixed seeds, framework versions stored
alongside); this file needs none of the frameworks.  Every comparison is made
in float64.

Tolerances.  The frameworks computed in float32 (unit roundoff u = 6e-8).
LRN's denominator is a sum of non-negative terms (no cancellation) followed by
a power and a division, so each output carries a *relative* error of a few
tens of u at most (the sum adds <= n+1 roundings, ``pow`` multiplies the
relative error by beta <= 1.5, the division adds one more): 1e-5 relative is
~100 u, generous but still far below any convention mistake (an even window on
the wrong side or alpha not divided by n changes outputs by >= 1e-3 relative
on these inputs).  Batch norm's ``gamma * x_hat + beta`` can cancel, so its
error is bounded relative to the output's scale, not to each value: 1e-5 of
``max|y|`` absolute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reference import batch_norm_ref, batch_stats_ref, lrn_ref  # noqa: E402

import normcli  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
F32_RTOL = 1e-5  # see the module docstring
F64_RTOL = 1e-12


def _load(name: str) -> dict[str, np.ndarray]:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} missing: run tools/make_fixtures.py with torch/onnxruntime")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _lrn_cases(name: str) -> list[str]:
    path = FIXTURES / name
    if not path.exists():
        return []
    with np.load(path, allow_pickle=False) as f:
        return [str(c) for c in f["cases"]]


def _rtol(x: np.ndarray) -> float:
    return F64_RTOL if x.dtype == np.float64 else F32_RTOL


def _bn_close(actual, expected, rtol=F32_RTOL):
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected,
                               rtol=rtol, atol=rtol * np.abs(expected).max())


# --------------------------------------------------------------------- PyTorch LRN

PT_LRN = _lrn_cases("pytorch_lrn.npz")


def test_fixtures_record_versions():
    d = _load("pytorch_lrn.npz")
    assert str(d["torch_version"]).startswith("2.")
    assert len(PT_LRN) >= 30  # 5 inputs x sizes 1..6
    assert str(_load("pytorch_bn.npz")["torch_version"]) == str(d["torch_version"])
    if (FIXTURES / "onnx_lrn.npz").exists():
        for name in ("onnx_lrn.npz", "onnx_bn.npz"):
            o = _load(name)
            assert str(o["onnxruntime_version"]) and str(o["onnx_version"])
    total = sum(p.stat().st_size for p in FIXTURES.glob("*.npz"))
    assert total < 1_000_000


@pytest.mark.parametrize("case", PT_LRN)
def test_reference_matches_pytorch(case):
    """The float64 reference itself reproduces nn.LocalResponseNorm."""
    d = _load("pytorch_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    n, alpha, beta, k = d[f"{case}_params"]
    r = lrn_ref(x, convention="pytorch", n=int(n), alpha=alpha, beta=beta, k=k)
    np.testing.assert_allclose(r, y.astype(np.float64), rtol=_rtol(x), atol=0)


@pytest.mark.parametrize("case", PT_LRN)
def test_lrn_pytorch_convention(case):
    d = _load("pytorch_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    n, alpha, beta, k = d[f"{case}_params"]
    out = normcli.lrn(x, convention="pytorch", n=int(n), alpha=alpha, beta=beta, k=k)
    assert out.shape == x.shape
    assert out.dtype == x.dtype  # float32 stays float32, float64 stays float64
    np.testing.assert_allclose(np.asarray(out, np.float64), y.astype(np.float64),
                               rtol=_rtol(x), atol=0)


@pytest.mark.parametrize("case", [c for c in PT_LRN if c.startswith("nchw_")])
def test_lrn_pytorch_channels_last(case):
    d = _load("pytorch_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    n, alpha, beta, k = d[f"{case}_params"]
    out = normcli.lrn(np.moveaxis(x, 1, -1), convention="pytorch", n=int(n), alpha=alpha,
                      beta=beta, k=k, channels_last=True)
    np.testing.assert_allclose(np.asarray(out, np.float64),
                               np.moveaxis(y, 1, -1).astype(np.float64), rtol=F32_RTOL, atol=0)


@pytest.mark.parametrize("case", [c for c in PT_LRN if c.endswith(("_n2", "_n4", "_n6"))
                                  and not c.startswith("fewc")])  # C=2: both cover all
def test_even_pytorch_window_differs_from_onnx(case):
    """For even sizes the fixture separates PyTorch from ONNX (the extra channel's side)."""
    d = _load("pytorch_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    n, alpha, beta, k = d[f"{case}_params"]
    other = lrn_ref(x, convention="onnx", n=int(n), alpha=alpha, beta=beta, k=k)
    assert not np.allclose(other, y, rtol=1e-3, atol=0)


# --------------------------------------------------------------------- TensorFlow LRN

TF_LRN = _lrn_cases("tensorflow_lrn.npz")


def test_tensorflow_fixtures_cover_every_radius():
    d = _load("tensorflow_lrn.npz")
    assert str(d["tensorflow_version"]).startswith("2.")
    assert sorted({int(d[f"{c}_params"][0]) for c in TF_LRN}) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("case", TF_LRN)
def test_lrn_tensorflow_convention(case):
    """NHWC input, depth_radius r: normcli's tensorflow convention, channels last."""
    d = _load("tensorflow_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    r, alpha, beta, bias = d[f"{case}_params"]
    out = normcli.lrn(x, convention="tensorflow", n=int(r), k=bias, alpha=alpha, beta=beta,
                      channels_last=True)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.asarray(out, np.float64), y.astype(np.float64),
                               rtol=F32_RTOL, atol=0)


@pytest.mark.parametrize("case", TF_LRN)
def test_tensorflow_equals_caffe_mapping(case):
    """normalization.md: alpha_tf = alpha_caffe / n, r = (n - 1) / 2, bias = k."""
    d = _load("tensorflow_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    r, alpha, beta, bias = d[f"{case}_params"]
    n = 2 * int(r) + 1
    out = normcli.lrn(x, convention="caffe", n=n, k=bias, alpha=alpha * n, beta=beta,
                      channels_last=True)
    np.testing.assert_allclose(np.asarray(out, np.float64), y.astype(np.float64),
                               rtol=F32_RTOL, atol=0)


# --------------------------------------------------------------------- onnxruntime LRN

ORT_LRN = _lrn_cases("onnx_lrn.npz")


@pytest.mark.parametrize("case", ORT_LRN)
def test_reference_matches_onnxruntime(case):
    d = _load("onnx_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    n, alpha, beta, k = d[f"{case}_params"]
    r = lrn_ref(x, convention="onnx", n=int(n), alpha=alpha, beta=beta, k=k)
    np.testing.assert_allclose(r, y.astype(np.float64), rtol=F32_RTOL, atol=0)


@pytest.mark.parametrize("case", ORT_LRN)
def test_lrn_onnx_convention(case):
    d = _load("onnx_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    n, alpha, beta, k = d[f"{case}_params"]
    out = normcli.lrn(x, convention="onnx", n=int(n), alpha=alpha, beta=beta, k=k)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.asarray(out, np.float64), y.astype(np.float64),
                               rtol=F32_RTOL, atol=0)


@pytest.mark.parametrize("case", ORT_LRN)
@pytest.mark.parametrize("convention", ["pytorch", "cudnn", "caffe"])
def test_odd_sizes_agree_across_conventions(case, convention):
    """For odd n, pytorch, onnx, cudnn and caffe are the same inter-channel LRN."""
    d = _load("onnx_lrn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    n, alpha, beta, k = d[f"{case}_params"]
    out = normcli.lrn(x, convention=convention, n=int(n), alpha=alpha, beta=beta, k=max(k, 1e-5))
    np.testing.assert_allclose(np.asarray(out, np.float64), y.astype(np.float64),
                               rtol=F32_RTOL, atol=0)


# --------------------------------------------------------------------- PyTorch batch norm


@pytest.mark.parametrize("case", ["bn2d", "bn2d_eps"])
def test_reference_matches_batchnorm2d(case):
    d = _load("pytorch_bn.npz")
    x = d[f"{case}_x"]
    r = batch_norm_ref(x, per="channel", eps=float(d[f"{case}_eps"]),
                       gamma=d[f"{case}_weight"], beta=d[f"{case}_bias"])
    _bn_close(r, d[f"{case}_y"])


@pytest.mark.parametrize("case", ["bn2d", "bn2d_eps"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_norm_per_channel_vs_batchnorm2d(case, channels_last):
    d = _load("pytorch_bn.npz")
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    if channels_last:
        x, y = np.moveaxis(x, 1, -1), np.moveaxis(y, 1, -1)
    out = normcli.batch_norm(x, per="channel", eps=float(d[f"{case}_eps"]),
                             gamma=d[f"{case}_weight"], beta=d[f"{case}_bias"],
                             channels_last=channels_last)
    assert out.shape == x.shape
    _bn_close(out, y)


@pytest.mark.parametrize("case", ["bn2d", "bn2d_eps"])
def test_batch_stats_vs_batchnorm2d_running_stats(case):
    """running = (1 - momentum) * initial + momentum * batch, initial mean 0, var 1.

    PyTorch updates running_var with the *unbiased* variance.  The formula is
    applied forwards (not undone) so that the float32 rounding of running_var is
    not amplified by 1/momentum.
    """
    d = _load("pytorch_bn.npz")
    x = d[f"{case}_x"]
    m = float(d[f"{case}_momentum"])
    st = normcli.batch_stats(x, per="channel")
    N, C, H, W = x.shape
    assert st.per == "channel"
    assert st.count == N * H * W
    assert np.shape(st.mean) == np.shape(st.var) == np.shape(st.var_unbiased) == (C,)
    np.testing.assert_allclose((1 - m) * 1.0 + m * np.asarray(st.var_unbiased, np.float64),
                               d[f"{case}_running_var"], rtol=F32_RTOL)
    np.testing.assert_allclose(m * np.asarray(st.mean, np.float64), d[f"{case}_running_mean"],
                               rtol=F32_RTOL, atol=1e-6)
    ref = batch_stats_ref(x, per="channel")
    np.testing.assert_allclose(np.asarray(st.var_unbiased, np.float64), ref.var_unbiased,
                               rtol=F32_RTOL)


def test_reference_matches_batchnorm1d():
    d = _load("pytorch_bn.npz")
    r = batch_norm_ref(d["bn1d_x"], per="activation", eps=float(d["bn1d_eps"]),
                       gamma=d["bn1d_weight"], beta=d["bn1d_bias"])
    _bn_close(r, d["bn1d_y"])
    st = batch_stats_ref(d["bn1d_x"], per="activation")
    np.testing.assert_allclose(st.var_unbiased, d["bn1d_running_var"], rtol=F32_RTOL)


def test_batch_norm_per_activation_vs_batchnorm1d():
    """BatchNorm1d(C*H*W) on x.reshape(N, -1) is the per-activation (seed's) form."""
    d = _load("pytorch_bn.npz")
    x = d["bn1d_x"]
    out = normcli.batch_norm(x, per="activation", eps=float(d["bn1d_eps"]),
                             gamma=d["bn1d_weight"], beta=d["bn1d_bias"])
    assert out.shape == x.shape
    _bn_close(out, d["bn1d_y"])


def test_batch_stats_per_activation_vs_batchnorm1d_running_var():
    d = _load("pytorch_bn.npz")
    assert float(d["bn1d_momentum"]) == 1.0  # running stats are the batch's own
    st = normcli.batch_stats(d["bn1d_x"], per="activation")
    assert st.count == d["bn1d_x"].shape[0]
    assert np.shape(st.var_unbiased) == d["bn1d_x"].shape[1:]
    np.testing.assert_allclose(np.asarray(st.var_unbiased, np.float64),
                               d["bn1d_running_var"], rtol=F32_RTOL)
    np.testing.assert_allclose(np.asarray(st.mean, np.float64), d["bn1d_running_mean"],
                               rtol=F32_RTOL, atol=1e-6)


# --------------------------------------------------------------------- onnxruntime BN


@pytest.mark.parametrize("case", ["bn", "bn_eps"])
def test_batch_norm_inference_vs_onnxruntime(case):
    d = _load("onnx_bn.npz")
    kw = dict(per="channel", eps=float(d[f"{case}_eps"]), gamma=d[f"{case}_scale"],
              beta=d[f"{case}_bias"], mean=d[f"{case}_mean"], var=d[f"{case}_var"])
    _bn_close(batch_norm_ref(d[f"{case}_x"], **kw), d[f"{case}_y"])
    _bn_close(normcli.batch_norm(d[f"{case}_x"], **kw), d[f"{case}_y"])
