"""identify: which normalization made an output (normcli.ops.identify).

Outputs come from the real frameworks (PyTorch's ``LocalResponseNorm`` sizes
1-8 and legacy ``CrossMapLRN2d`` in ``pytorch_porting.npz``, onnxruntime's LRN,
TensorFlow's NHWC LRN) and from every convention's own kernel with random
parameters.  "Recovered" means: among the matches is the generating
convention with its own ``n`` and ``k, alpha, beta`` within 1e-4 relative
(float32 outputs pin the parameters to about 1e-6; the matches are rounded
to the shortest decimals that still fit).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from normcli.errors import ParameterError
from normcli.ops.batchnorm import batch_norm
from normcli.ops.conventions import CONVENTIONS
from normcli.ops.identify import cross_map_lrn2d, identify, output_precision
from normcli.ops.lrn import lrn

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REL = 1e-4


def _load(name):
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path.name} missing: run tools/make_fixtures.py")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _cases(name, key="cases"):
    path = FIXTURES / name
    if not path.exists():
        return []
    with np.load(path, allow_pickle=False) as f:
        return [str(c) for c in f[key]]


def _recovered(result, convention, mode, n, k, alpha, beta):
    for m in result.matches:
        if (m.convention, m.mode, m.n) != (convention, mode, n):
            continue
        k_ok = m.k == pytest.approx(k, rel=REL) or (convention == "caffe" and mode == "intra")
        if k_ok and m.alpha == pytest.approx(alpha, rel=REL) and m.beta == pytest.approx(
                beta, rel=REL):
            assert m.max_rel_err <= result.tolerance
            return True
    return False


@pytest.mark.parametrize("case", _cases("pytorch_porting.npz", "lrn_cases"))
def test_recovers_pytorch_local_response_norm(case):
    d = _load("pytorch_porting.npz")
    n, alpha, beta, k = d[f"{case}_params"]
    result = identify(d[f"{case}_x"], d[f"{case}_y"])
    assert _recovered(result, "pytorch", "inter", int(n), k, alpha, beta), result.matches
    # the forms of one window are one group: pytorch n=5 is seed n=4 and n=5 with alpha/5;
    # an even window only PyTorch places
    group = next(m.group for m in result.matches if m.convention == "pytorch")
    same = {m.convention for m in result.matches if m.group == group}
    assert same == ({"pytorch"} if n % 2 == 0 else set(CONVENTIONS))


@pytest.mark.parametrize("case", _cases("pytorch_porting.npz", "xmap_cases"))
def test_cross_map_lrn2d_is_no_exact_match(case):
    d = _load("pytorch_porting.npz")
    n, alpha, beta, k = d[f"{case}_params"]
    x, y = d[f"{case}_x"], d[f"{case}_y"]
    # the numpy model of the legacy module is right (to float32 rounding)...
    ours = cross_map_lrn2d(x, size=int(n), alpha=alpha, beta=beta, k=k)
    np.testing.assert_allclose(ours, y, rtol=2e-6, atol=0)
    # ...and identify says so, with the closest convention and where it differs
    result = identify(x, y)
    assert not result.exact and result.closest is not None
    c = result.closest
    assert c.convention == "pytorch" and c.n == int(n)
    assert "CrossMapLRN2d" in c.diagnosis and "never drops channel 0" in c.diagnosis
    assert "differs at channels" in c.diagnosis and c.max_rel_err > 1e-3


@pytest.mark.parametrize("case", _cases("tensorflow_lrn.npz"))
def test_recovers_tensorflow(case):
    d = _load("tensorflow_lrn.npz")
    r, alpha, beta, bias = d[f"{case}_params"]
    result = identify(d[f"{case}_x"], d[f"{case}_y"], channels_last=True)
    assert _recovered(result, "tensorflow", "inter", int(r), bias, alpha, beta)


@pytest.mark.parametrize("case", _cases("onnx_lrn.npz"))
def test_recovers_onnxruntime(case):
    d = _load("onnx_lrn.npz")
    size, alpha, beta, bias = d[f"{case}_params"]
    result = identify(d[f"{case}_x"], d[f"{case}_y"])
    assert _recovered(result, "onnx", "inter", int(size), bias, alpha, beta)


_OWN = [(name, mode, dtype) for name, c in CONVENTIONS.items() for mode in c.modes
        for dtype in ("float32", "float64")]


@pytest.mark.parametrize("name,mode,dtype", _OWN)
def test_recovers_every_conventions_own_kernel(name, mode, dtype):
    import zlib

    rng = np.random.default_rng(zlib.crc32(f"{name} {mode} {dtype}".encode()))
    conv = CONVENTIONS[name]
    n = int(rng.integers(max(1, conv.n_min), 8))
    n += conv.n_odd and n % 2 == 0
    k, alpha, beta = rng.uniform(0.5, 3), 10 ** rng.uniform(-4, 0), rng.uniform(0.25, 1.5)
    x = (rng.normal(size=(2, 10, 9, 8)) / np.sqrt(alpha)).astype(dtype)
    y = lrn(x, convention=name, mode=mode, n=n, k=k, alpha=alpha, beta=beta)
    result = identify(x, y)
    assert _recovered(result, name, mode, n, k, alpha, beta), (n, k, alpha, beta)
    if dtype == "float64":
        assert result.tolerance < 1e-12  # float64 outputs are held to float64's rounding


def test_wrong_layout_is_pointed_out():
    d = _load("tensorflow_lrn.npz")
    result = identify(d["nhwc_r2_x"], d["nhwc_r2_y"])  # NHWC read as NCHW
    assert not result.exact
    assert any("channel axis last" in n and "channels_last=True" in n for n in result.notes)


def test_float16_tolerance_is_capped():
    x = np.random.default_rng(8).normal(size=(2, 6, 4, 4)).astype(np.float16)
    y = lrn(x, convention="pytorch", n=3, alpha=1e-1).astype(np.float16)
    result = identify(x, y)
    assert result.tolerance == 1e-2  # not 128 float16 units (12%)
    first = next(m for m in result.matches if m.convention == "pytorch")
    assert (first.n, first.k, first.alpha, first.beta) == (3, 1.0, 0.1, 0.75)


def test_float64_holding_float32_values_is_judged_as_float32():
    y = np.arange(4, dtype=np.float32).astype(np.float64) / 3
    assert output_precision(y) == np.finfo(np.float64).eps
    assert output_precision(y.astype(np.float32).astype(np.float64)) == np.finfo(np.float32).eps


@pytest.mark.parametrize("per", ["channel", "activation"])
@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_batch_norm_per_and_eps(per, eps):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(4, 3, 5, 6)) * rng.uniform(0.5, 3, size=(1, 3, 1, 1)) + 1)
    y = batch_norm(x.astype(np.float32), per=per, eps=eps)
    result = identify(x.astype(np.float32), y)
    bn = [m for m in result.matches if m.normalization == "batchnorm"]
    assert bn and bn[0].per == per and bn[0].statistics == "batch"
    assert any(m.eps == eps for m in bn)
    assert all(m.per == per for m in bn)
    assert not [m for m in result.matches if m.normalization == "lrn"]


def test_batch_norm_with_fixed_statistics():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 3, 5, 6)).astype(np.float32)
    y = batch_norm(x, per="channel", eps=1e-3, mean=np.array([0.5, 1, 2]),
                   var=np.array([1.0, 2, 3]))
    (m,) = identify(x, y).matches
    assert (m.per, m.statistics, m.eps) == ("channel", "fixed", None)


def test_pytorch_batchnorm2d_with_weight_and_bias_is_affine_per_channel():
    d = _load("pytorch_bn.npz")
    (m,) = identify(d["bn2d_x"], d["bn2d_y"]).matches
    assert (m.normalization, m.per, m.statistics) == ("batchnorm", "channel", "fixed")


def test_nothing_fits():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 4, 4))
    y = np.tanh(x)  # same signs, but no LRN or BN
    result = identify(x, y)
    assert not result.exact and result.closest is not None
    assert result.closest.max_rel_err > result.tolerance and result.closest.diagnosis


def test_json_shape():
    rng = np.random.default_rng(6)
    x = (rng.normal(size=(2, 8, 4, 4)) * 30).astype(np.float32)
    y = lrn(x, convention="pytorch", n=4, alpha=1e-3)
    d = identify(x, y).to_dict()
    json.dumps(d, allow_nan=False)
    first = d["matches"][0]
    assert set(first) >= {"normalization", "mode", "convention", "n", "k", "alpha", "beta",
                          "max_rel_err"}
    assert first["normalization"] == "lrn" and d["closest"] is None
    xb = rng.normal(size=(4, 3, 2, 2))
    d = identify(xb, batch_norm(xb, per="channel")).to_dict()
    assert set(d["matches"][0]) >= {"normalization", "per", "eps", "max_rel_err"}


@pytest.mark.parametrize("x,y,param", [
    (np.ones((2, 3)), np.ones((3, 2)), "y"),
    (np.ones((2, 3)), np.full((2, 3), np.nan), "y"),
    (np.ones(3), np.ones(3), "x"),
])
def test_bad_inputs(x, y, param):
    with pytest.raises(ParameterError) as e:
        identify(x, y)
    assert e.value.param == param


@pytest.mark.parametrize("settings,param", [
    ({"sample": 3}, "sample"), ({"max_half": -1}, "max_half"), ({"tolerance": 0.0}, "tolerance"),
    ({"normalizations": ("pca",)}, "normalizations"),
])
def test_bad_settings(settings, param):
    with pytest.raises(ParameterError) as e:
        identify(np.ones((2, 3)), np.ones((2, 3)), **settings)
    assert e.value.param == param
