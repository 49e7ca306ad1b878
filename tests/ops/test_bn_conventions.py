"""Running batch-norm statistics, each framework's way (normcli.ops.bn_conventions).

Checked three ways: against PyTorch's own ``running_mean``/``running_var``
after several batches (stored by ``tools/make_fixtures.py`` in
``tests/fixtures/pytorch_porting.npz``), against onnxruntime and
``onnx.reference`` running ``BatchNormalization(training_mode=1)`` (when
installed), and against the update rules written out below from each
framework's source (Keras 3 ``BatchNormalization.call``, Caffe
``BatchNormLayer::Forward_cpu``, TensorFlow's fused CPU kernel, MXNet's
``BatchNormBackwardImpl``), independently of the conventions table.

Tolerances: PyTorch computes and stores in float32; the states here are
float32 too (rounded after each update, as PyTorch's buffers are), so after a
few batches they agree to a few float32 ulps: 2e-6 relative.  Against the
float64 rules written here: 1e-12.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from normcli.errors import ParameterError
from normcli.ops.bn_conventions import (
    BN_CONVENTIONS,
    RunningState,
    get_bn_convention,
    initial_state,
    update_running,
)
from normcli.ops.moments import batch_stats

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
F32 = 2e-6


def _porting() -> dict[str, np.ndarray]:
    path = FIXTURES / "pytorch_porting.npz"
    if not path.exists():
        pytest.skip("pytorch_porting.npz missing: run tools/make_fixtures.py --porting-only")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("case", ["m01", "mnone", "m07", "act"])
def test_pytorch_running_stats_after_several_batches(case):
    d = _porting()
    per = "activation" if case == "act" else "channel"
    momentum = float(d[f"{case}_momentum"])
    momentum = None if np.isnan(momentum) else momentum
    first = d[f"{case}_b0_x"]
    shape = first.shape[1:] if per == "activation" else (first.shape[1],)
    state = initial_state("pytorch", shape, per=per, dtype=np.float32)
    for i in range(int(d[f"{case}_batches"])):
        state = update_running(state, batch_stats(d[f"{case}_b{i}_x"], per=per),
                               momentum=momentum)
        want_mean = d[f"{case}_after{i}_running_mean"].reshape(shape)
        want_var = d[f"{case}_after{i}_running_var"].reshape(shape)
        np.testing.assert_allclose(state.mean, want_mean, rtol=F32, atol=F32)
        np.testing.assert_allclose(state.var, want_var, rtol=F32)
        assert state.extra == int(d[f"{case}_after{i}_num_batches_tracked"])


def test_pytorch_none_is_the_cumulative_average():
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(n, 3, 2, 2)) * 2 + 1 for n in (2, 5, 3)]
    state = initial_state("pytorch", (3,))
    for x in batches:
        state = update_running(state, batch_stats(x, per="channel"), momentum=None)
    stats = [batch_stats(x, per="channel") for x in batches]
    np.testing.assert_allclose(state.mean, np.mean([s.mean for s in stats], axis=0), rtol=1e-12)
    np.testing.assert_allclose(state.var, np.mean([s.var_unbiased for s in stats], axis=0),
                               rtol=1e-12)


def _keras_rule(batches, momentum):  # Keras 3: moving * m + batch * (1 - m), ops.moments (biased)
    mean, var = np.zeros(3), np.ones(3)
    for x in batches:
        mean = mean * momentum + x.mean(axis=(0, 2, 3)) * (1 - momentum)
        var = var * momentum + x.var(axis=(0, 2, 3)) * (1 - momentum)
    return mean, var


def _caffe_rule(batches, fraction):  # BatchNormLayer::Forward_cpu, TRAIN phase
    s_mean, s_var, factor = np.zeros(3), np.zeros(3), 0.0
    for x in batches:
        m = x.size // x.shape[1]
        correction = m / (m - 1) if m > 1 else 1.0
        factor = factor * fraction + 1
        s_mean = x.mean(axis=(0, 2, 3)) + fraction * s_mean
        s_var = correction * x.var(axis=(0, 2, 3)) + fraction * s_var
    return s_mean, s_var, factor


@pytest.fixture
def batches():
    rng = np.random.default_rng(7)
    return [rng.normal(size=(n, 3, h, 2)) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
            for n, h in ((4, 3), (2, 2), (6, 1), (1, 1))]


def _run(convention, batches, **kw):
    state = initial_state(convention, (3,))
    for x in batches:
        state = update_running(state, batch_stats(x, per="channel"), **kw)
    return state


@pytest.mark.parametrize("momentum", [0.99, 0.5, 0.0, 1.0])
def test_keras_rule(batches, momentum):
    state = _run("keras", batches, momentum=momentum)
    mean, var = _keras_rule(batches, momentum)
    np.testing.assert_allclose(state.mean, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state.var, var, rtol=1e-12)


def test_mxnet_rule_matches_keras_with_its_default(batches):
    state = _run("mxnet", batches)
    mean, var = _keras_rule(batches, 0.9)
    np.testing.assert_allclose(state.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(state.var, var, rtol=1e-12)
    assert BN_CONVENTIONS["mxnet"].gamma_fixed and BN_CONVENTIONS["mxnet"].eps == 1e-3


@pytest.mark.parametrize("fraction", [0.999, 0.5, 0.0])
def test_caffe_sums_and_scale_factor(batches, fraction):
    state = _run("caffe", batches, momentum=fraction)
    s_mean, s_var, factor = _caffe_rule(batches, fraction)
    np.testing.assert_allclose(state.mean, s_mean, rtol=1e-12)
    np.testing.assert_allclose(state.var, s_var, rtol=1e-12)
    assert state.extra == pytest.approx(factor, rel=1e-15)
    mean, var = state.statistics()
    np.testing.assert_allclose(mean, s_mean / factor, rtol=1e-12)
    np.testing.assert_allclose(var, s_var / factor, rtol=1e-12)


def test_caffe_zero_scale_factor_gives_zero_statistics():
    mean, var = initial_state("caffe", (2,)).statistics()
    assert mean.tolist() == [0.0, 0.0] and var.tolist() == [0.0, 0.0]


def test_tensorflow_factor_one_replaces_and_m_one_is_not_divided_by_zero():
    x = np.array([[[[3.0]], [[5.0]]]])  # one value per channel
    state = update_running(initial_state("tensorflow", (2,)), batch_stats(x, per="channel"))
    assert state.mean.tolist() == [3.0, 5.0] and state.var.tolist() == [0.0, 0.0]
    x = np.arange(8.0).reshape(4, 2, 1, 1)
    b = batch_stats(x, per="channel")
    state = update_running(initial_state("tensorflow", (2,)), b, momentum=0.25)
    np.testing.assert_allclose(state.var, 0.75 * 1 + 0.25 * b.var * 4 / 3, rtol=1e-15)


def test_pytorch_refuses_one_value_per_channel():
    x = np.ones((1, 2, 1, 1))
    with pytest.raises(ParameterError, match="single value per channel"):
        update_running(initial_state("pytorch", (2,)), batch_stats(x, per="channel"))


def test_onnxruntime_training_mode_agrees(batches):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    momentum = 0.8
    node = helper.make_node("BatchNormalization", ["X", "scale", "B", "mean", "var"],
                            ["Y", "running_mean", "running_var"], training_mode=1,
                            momentum=momentum, epsilon=1e-5)
    state = initial_state("onnx", (3,), dtype=np.float32)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    for x in batches:
        x = x.astype(np.float32)
        feeds = {"X": x, "scale": np.ones(3, np.float32), "B": np.zeros(3, np.float32),
                 "mean": mean, "var": var}
        ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
               for k, v in feeds.items()]
        outs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, None)
                for k in ("Y", "running_mean", "running_var")]
        model = helper.make_model(helper.make_graph([node], "g", ins, outs),
                                  opset_imports=[helper.make_opsetid("", 15)])
        model.ir_version = 8
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        _, mean, var = sess.run(None, feeds)
        state = update_running(state, batch_stats(x, per="channel"), momentum=momentum)
        np.testing.assert_allclose(state.mean, mean, rtol=F32, atol=F32)
        np.testing.assert_allclose(state.var, var, rtol=F32)
    del onnx


def test_defaults_and_words():
    assert {c: v.eps for c, v in BN_CONVENTIONS.items()} == {
        "pytorch": 1e-5, "tensorflow": 1e-3, "keras": 1e-3, "onnx": 1e-5, "caffe": 1e-5,
        "mxnet": 1e-3}
    assert {c: v.stored_var for c, v in BN_CONVENTIONS.items()} == {
        "pytorch": "unbiased", "tensorflow": "unbiased", "keras": "biased", "onnx": "biased",
        "caffe": "unbiased", "mxnet": "biased"}
    assert get_bn_convention(" PyTorch ").name == "pytorch"
    assert get_bn_convention("TF").name == "tensorflow"
    assert BN_CONVENTIONS["caffe"].momentum_name == "moving_average_fraction"
    assert BN_CONVENTIONS["tensorflow"].momentum_name == "exponential_avg_factor"


@pytest.mark.parametrize("convention,momentum,match", [
    ("keras", None, "PyTorch's cumulative average"),
    ("pytorch", 1.5, r"in \[0, 1\]"),
    ("caffe", -0.1, "moving_average_fraction"),
    ("onnx", "fast", r"in \[0, 1\]"),
    ("onnx", True, r"in \[0, 1\]"),
])
def test_bad_momentum(convention, momentum, match):
    b = batch_stats(np.ones((3, 2)), per="channel")
    with pytest.raises(ParameterError, match=match) as e:
        update_running(initial_state(convention, (2,)), b, momentum=momentum)
    assert e.value.param == "momentum"


def test_shape_mismatch_and_unknown_convention():
    with pytest.raises(ParameterError, match="shape"):
        update_running(initial_state("keras", (3,)), batch_stats(np.ones((3, 2)), per="channel"))
    with pytest.raises(ParameterError, match="not known") as e:
        initial_state("cntk", (3,))
    assert e.value.param == "convention"


@pytest.mark.parametrize("name", sorted(BN_CONVENTIONS))
def test_mapping_round_trip(name, batches):
    state = _run(name, batches)
    back = RunningState.from_mapping(state.to_mapping())
    assert back.convention is state.convention and back.per == "channel"
    assert np.array_equal(back.mean, state.mean) and np.array_equal(back.var, state.var)
    assert back.extra == state.extra


@pytest.mark.parametrize("data,match", [
    ({"running_mean": np.zeros(2)}, "need running_var"),
    ({"running_mean": np.zeros(2), "running_var": np.ones(3)}, "differ in shape"),
    ({"running_mean": np.zeros(2), "running_var": -np.ones(2)}, "negative"),
    ({"running_mean": np.array([np.nan, 0]), "running_var": np.ones(2)}, "NaN"),
    ({"running_mean": np.zeros(2, int), "running_var": np.ones(2)}, "float array"),
    ({"running_mean": np.zeros(2), "running_var": np.ones(2),
      "num_batches_tracked": np.array(1.5)}, "one integer"),
    ({"running_mean": np.zeros(2), "running_var": np.ones(2),  # (one more batch overflows)
      "num_batches_tracked": np.array(2**63 - 1)}, "must be below"),
    ({"running_mean": np.zeros(2), "running_var": np.ones(2),
      "num_batches_tracked": np.array(2**64 - 1, np.uint64)}, "must be below"),
    ({"running_mean": np.zeros(2), "running_var": np.ones(2),
      "convention": np.array("keras")}, "stored in the keras convention"),
    ({"running_mean": np.zeros(2), "running_var": np.ones(2), "per": np.array("row")},
     "not 'activation'"),
])
def test_from_mapping_refuses(data, match):
    with pytest.raises(ValueError, match=match):
        RunningState.from_mapping(data, "pytorch")


def test_from_mapping_caffe_factor_and_missing_convention():
    base = {"mean_sum": np.zeros(2), "var_sum": np.ones(2)}
    with pytest.raises(ValueError, match="scale_factor"):
        RunningState.from_mapping(base, "caffe")
    with pytest.raises(ValueError, match="finite and >= 0"):
        RunningState.from_mapping({**base, "scale_factor": np.array([-1.0])}, "caffe")
    with pytest.raises(ValueError, match="give the convention"):
        RunningState.from_mapping(base)
    s = RunningState.from_mapping({**base, "scale_factor": np.array([2.0], np.float32)}, "caffe")
    assert s.statistics()[1].tolist() == [0.5, 0.5]
    three_d = {"running_mean": np.zeros((2, 3, 3)), "running_var": np.ones((2, 3, 3))}
    assert RunningState.from_mapping(three_d, "pytorch").per == "activation"
