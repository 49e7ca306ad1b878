"""batchnorm in the frameworks' conventions: --convention, --update-stats,
--stats in a framework's stored form, --from-onnx/--from-caffe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clihelp import one_line_error, usage_error

from normcli import runs
from normcli.ops.bn_conventions import BN_CONVENTIONS

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="module")
def porting():
    with np.load(FIXTURES / "pytorch_porting.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("case", ["m01", "mnone", "m07", "act"])
def test_update_stats_equals_pytorch_after_several_batches(porting, tmp_path, case):
    """PyTorch's running_mean/running_var (torch, in the committed fixture) after
    each batch, and the training-mode output of every batch."""
    momentum = float(porting[f"{case}_momentum"])
    momentum = None if np.isnan(momentum) else momentum
    running = tmp_path / "running.npz"
    per = "activation" if case == "act" else "channel"
    for i in range(int(porting[f"{case}_batches"])):
        x = porting[f"{case}_b{i}_x"]
        np.save(tmp_path / "x.npy", x.reshape(x.shape[0], -1) if case == "act" else x)
        runs.batchnorm([tmp_path / "x.npy"], output=tmp_path / "y.npy", force=True,
                       convention="PyTorch", per=per, update_stats=running,
                       momentum=momentum)
        with np.load(running) as got:
            for key in ("running_mean", "running_var"):
                np.testing.assert_allclose(got[key], porting[f"{case}_after{i}_{key}"],
                                           rtol=2e-6, atol=1e-6, err_msg=f"{key} after {i}")
            assert int(got["num_batches_tracked"]) == int(
                porting[f"{case}_after{i}_num_batches_tracked"])
            assert str(got["convention"]) == "pytorch"
        y = np.load(tmp_path / "y.npy").reshape(x.shape)
        np.testing.assert_allclose(y, porting[f"{case}_b{i}_y"], rtol=1e-4, atol=2e-5)


def _stats(x):
    """Per-channel float64 mean and biased variance of an (N, C, ...) batch."""
    axes = (0, *range(2, x.ndim))
    return x.astype(np.float64).mean(axis=axes), x.astype(np.float64).var(axis=axes)


@pytest.mark.parametrize("convention, momentum", [("keras", 0.99), ("onnx", 0.9),
                                                  ("keras", 0.5), ("onnx", 0.3)])
def test_update_stats_follows_the_documented_keras_and_onnx_rules(tmp_path, convention,
                                                                    momentum):
    """Keras: moving = m * moving + (1 - m) * batch, biased variance, from mean 0 and
    variance 1; ONNX (training_mode=1): the same rule with its momentum 0.9."""
    rng = np.random.default_rng(3)
    mean, var = np.zeros(3), np.ones(3)
    keys = BN_CONVENTIONS[convention].keys
    args = [] if momentum == BN_CONVENTIONS[convention].momentum else ["--momentum", momentum]
    for _ in range(3):
        x = (rng.standard_normal((6, 3, 4, 4)) * 2 + 1).astype(np.float32)
        np.save(tmp_path / "x.npy", x)
        runs.batchnorm([tmp_path / "x.npy"], convention=convention, per="channel",
                       update_stats=tmp_path / "r.npz",
                       **({"momentum": momentum} if args else {}))
        b_mean, b_var = _stats(x)
        mean = momentum * mean + (1 - momentum) * b_mean
        var = momentum * var + (1 - momentum) * b_var
        with np.load(tmp_path / "r.npz") as got:
            np.testing.assert_allclose(got[keys[0]], mean, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(got[keys[1]], var, rtol=1e-12)


def test_update_stats_writes_with_the_outputs_and_reports(invoke, save, tmp_path):
    x = np.random.default_rng(4).standard_normal((5, 2, 3)).astype(np.float32)
    save("x.npy", x)
    result = invoke("batchnorm", "x.npy", "--convention", "caffe", "--per", "channel",
                    "--update-stats", "caffe.npz", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    assert "running statistics updated in caffe.npz" in result.stderr
    with np.load(tmp_path / "caffe.npz") as got:  # Caffe: sums, scale_factor 1 after one
        assert float(got["scale_factor"][0]) == 1.0
        np.testing.assert_allclose(got["mean_sum"], _stats(x)[0], rtol=1e-12)
        np.testing.assert_allclose(got["var_sum"], _stats(x)[1] * 15 / 14, rtol=1e-12)
    # the file names its convention: a second run needs no --convention, and
    # --stats reads it as Caffe normalizes with it (sums / scale_factor)
    assert invoke("batchnorm", "x.npy", "--per", "channel", "--update-stats", "caffe.npz",
                  "-q").exit_code == 0
    with np.load(tmp_path / "caffe.npz") as got:
        assert float(got["scale_factor"][0]) == pytest.approx(1.999)
    result = invoke("batchnorm", "x.npy", "--stats", "caffe.npz", "--json")
    assert json.loads(result.stdout)["params"]["per"] == "channel"


def test_stats_in_each_framework_s_stored_form(invoke, save, tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    save("x.npy", x)
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    want = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
    np.savez(tmp_path / "keras.npz", moving_mean=mean, moving_variance=var)
    result = invoke("batchnorm", "x.npy", "--convention", "Keras", "--stats", "keras.npz",
                    "-o", "k.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), want, rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "caffe.npz", mean_sum=mean * 4, var_sum=var * 4,
             scale_factor=np.array([4.0]))
    assert invoke("batchnorm", "x.npy", "--convention", "caffe", "--eps", "1e-3", "--stats",
                  "caffe.npz", "-o", "c.npy").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), want, rtol=1e-5, atol=1e-6)
    line = one_line_error(invoke("batchnorm", "x.npy", "--convention", "pytorch", "--stats",
                                 "keras.npz"))
    assert line.startswith("normcli: error: keras.npz: not usable batch-norm statistics: "
                           "pytorch statistics need running_mean, running_var")


@pytest.mark.parametrize("convention, eps", [(name, c.eps) for name, c in
                                             BN_CONVENTIONS.items()] + [("TF", 1e-3)])
def test_convention_takes_its_eps_and_an_explicit_eps_wins(save, tmp_path, convention, eps):
    save("x.npy", np.random.default_rng(6).standard_normal((4, 3)).astype(np.float32))
    report = runs.batchnorm([tmp_path / "x.npy"], convention=convention)
    assert report.params["eps"] == eps
    assert runs.batchnorm([tmp_path / "x.npy"], convention=convention, eps=0.5
                          ).params["eps"] == 0.5
    assert runs.batchnorm([tmp_path / "x.npy"]).params["eps"] == 1e-5


def test_help_lists_the_table_and_cli_names_match_it(invoke):
    from normcli.cli.frameworks import BN_ALIASES, BN_NAMES
    from normcli.ops import bn_conventions

    assert BN_NAMES == tuple(BN_CONVENTIONS) and BN_ALIASES == bn_conventions._BN_ALIASES
    text = invoke("batchnorm", "--help").stdout
    assert "keras       0.001  biased      momentum=0.99 (the old)" in text


@pytest.mark.parametrize("args, message", [
    (["--convention", "jax"], "Invalid value for '--convention'"),
    (["--momentum", "0.5"], "--momentum goes with --update-stats"),
    (["--update-stats", "r.npz"], "--update-stats needs --convention NAME"),
    (["--convention", "keras", "--update-stats", "r.npz", "--momentum", "none"],
     "None is PyTorch's; keras's momentum must be a number in [0, 1]"),
    (["--convention", "onnx", "--update-stats", "r.npz", "--momentum", "2"],
     "must be a number in [0, 1]"),
    (["--convention", "onnx", "--update-stats", "r.npz", "--momentum", "fast"],
     "is not a number or 'none'"),
    (["--convention", "onnx", "--update-stats", "r.txt"], "must be a .npz file"),
    (["--convention", "onnx", "--update-stats", "r.npz", "--stats", "s.npz"],
     "--update-stats and --stats exclude each other"),
    (["--convention", "onnx", "--update-stats", "y.npy", "-o", "y.npy"], "must be a .npz"),
    (["--convention", "onnx", "--update-stats", "r.npz", "--save-stats", "./r.npz", "--force"],
     "'r.npz' is also the file of save_stats"),  # (one file written twice)
])
def test_bad_flags_exit_2(invoke, save, args, message):
    save("x.npy", np.ones((3, 2), np.float32))
    assert message in usage_error(invoke("batchnorm", "x.npy", *args))


def test_bad_running_files_exit_1_and_write_nothing(invoke, save, tmp_path):
    save("x.npy", np.random.default_rng(7).standard_normal((3, 2)).astype(np.float32))
    np.savez(tmp_path / "r.npz", running_mean=np.zeros(5), running_var=np.ones(5))
    line = one_line_error(invoke("batchnorm", "x.npy", "--convention", "pytorch", "--per",
                                 "channel", "--update-stats", "r.npz", "-o", "y.npy"))
    assert line.startswith("normcli: error: r.npz: holds running statistics of shape (5,)")
    assert not (tmp_path / "y.npy").exists()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    line = one_line_error(invoke("batchnorm", "x.npy", "--convention", "pytorch",
                                 "--update-stats", "bad.npz", "-o", "y.npy"))
    assert line.startswith("normcli: error: bad.npz")
    assert not (tmp_path / "y.npy").exists()


def _onnx_bn(tmp_path, rng, c, *, training=False, eps=1e-5, momentum=None,
             dtype=np.float32, **given):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    arrays = {"scale": rng.uniform(0.5, 2, c), "B": rng.normal(size=c),
              "mean": rng.normal(size=c), "var": rng.uniform(0.2, 3, c)}
    arrays.update({k: np.full(c, v) for k, v in given.items()})
    inits = [numpy_helper.from_array(a.astype(dtype), n) for n, a in arrays.items()]
    attrs = {"epsilon": eps, **({"momentum": momentum} if momentum is not None else {})}
    outputs = ["Y", "running_mean", "running_var"] if training else ["Y"]
    node = helper.make_node("BatchNormalization", ["X", *arrays], outputs, name="bn1",
                            **attrs, **({"training_mode": 1} if training else {}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, None)], [helper.make_tensor_value_info(
            n, TensorProto.FLOAT, None) for n in outputs], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    return arrays


def _ort(tmp_path, x):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(tmp_path / "m.onnx"), providers=[
        "CPUExecutionProvider"]).run(None, {"X": x})


@pytest.mark.parametrize("shape, eps", [((3, 4, 5, 6), 1e-5), ((6, 4), 1e-3),
                                        ((2, 4, 3), 2e-2)])
def test_batchnorm_from_an_onnx_node_equals_onnxruntime(invoke, save, tmp_path, shape, eps):
    rng = np.random.default_rng(len(shape))
    _onnx_bn(tmp_path, rng, shape[1], eps=eps)
    x = (rng.normal(size=shape) * 2 + 1).astype(np.float32)
    save("x.npy", x)
    want = _ort(tmp_path, x)[0]
    result = invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node", "bn1", "-o",
                    "y.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5,
                               atol=1e-5 * np.abs(want).max())


def test_batchnorm_from_an_onnx_training_node_equals_onnxruntime(invoke, save, tmp_path):
    rng = np.random.default_rng(11)
    start = _onnx_bn(tmp_path, rng, 3, training=True, momentum=0.8)
    x = (rng.normal(size=(4, 3, 2, 5)) * 3 - 1).astype(np.float32)
    save("x.npy", x)
    try:
        y, running_mean, running_var = _ort(tmp_path, x)
    except Exception as e:  # noqa: BLE001 - an onnxruntime without training-mode kernels
        pytest.skip(f"onnxruntime does not run training_mode=1: {e}")
    result = invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node", "bn1",
                    "--update-stats", "r.npz", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), y, rtol=1e-5,
                               atol=1e-5 * np.abs(y).max())
    with np.load(tmp_path / "r.npz") as got:  # from the node's mean and var, momentum 0.8
        assert str(got["convention"]) == "onnx"
        np.testing.assert_allclose(got["input_mean"], running_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["input_var"], running_var, rtol=1e-5, atol=1e-6)
        b_mean, b_var = _stats(x)
        np.testing.assert_allclose(got["input_mean"], 0.8 * start["mean"] + 0.2 * b_mean,
                                   rtol=1e-6)


@pytest.mark.parametrize("momentum", [5.0, float("nan")])
def test_a_model_s_bad_momentum_is_the_model_s_error_not_a_flag_s(invoke, save, tmp_path,
                                                                  momentum):
    """No --momentum was given: a momentum out of range in the node names the model (exit 1)."""
    _onnx_bn(tmp_path, np.random.default_rng(2), 2, momentum=momentum)
    save("x.npy", np.ones((3, 2), np.float32))
    line = one_line_error(invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node",
                                 "bn1", "--update-stats", "r.npz"))
    assert line.startswith("normcli: error: m.onnx: layer 'bn1': its momentum ")
    assert not (tmp_path / "r.npz").exists()


def test_a_model_s_scale_beyond_the_data_s_type_is_the_model_s_error(invoke, save, tmp_path):
    """(It was a usage error, exit 2, on a --gamma flag nobody gave.)"""
    _onnx_bn(tmp_path, np.random.default_rng(2), 2, dtype=np.float64, scale=1e300)
    save("x.npy", np.ones((3, 2), np.float32))
    line = one_line_error(invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node",
                                 "bn1", "-o", "y.npy"))
    assert line.startswith("normcli: error: m.onnx: layer 'bn1': its scale holding 1e+300 is "
                           "beyond float32's range"), line
    assert not (tmp_path / "y.npy").exists()
    save("x.npy", np.ones((3, 2)))  # (float64 data holds it)
    assert invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node", "bn1", "-o",
                  "y.npy", "-q").exit_code == 0


def test_statistics_whose_every_output_overflows_name_their_file(invoke, save, tmp_path):
    """A --stats file or a model whose mean (1e300, float64) no float32 output can hold
    gave -Inf everywhere, exit 0."""
    save("x.npy", np.full((3, 2), 0.5, np.float32))
    np.savez(tmp_path / "s.npz", mean=np.full(2, 1e300), var=np.ones(2), count=np.array(8),
             per=np.array("channel"))
    line = one_line_error(invoke("batchnorm", "x.npy", "--per", "channel", "--stats", "s.npz",
                                 "-o", "y.npy"))
    assert line.startswith("normcli: error: s.npz: its mean holding 1e+300 is beyond "
                           "float32's range"), line
    _onnx_bn(tmp_path, np.random.default_rng(2), 2, dtype=np.float64, mean=1e300)
    line = one_line_error(invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node",
                                 "bn1", "-o", "y.npy"))
    assert line.startswith("normcli: error: m.onnx: layer 'bn1': its mean holding 1e+300"), line
    assert not (tmp_path / "y.npy").exists()


def test_layers_json_of_a_model_holding_nan(invoke, tmp_path):
    """JSON has no NaN: ``layers --json`` of a node whose momentum is NaN was a
    ValueError; it is null there."""
    _onnx_bn(tmp_path, np.random.default_rng(2), 2, momentum=float("nan"))
    result = invoke("layers", "m.onnx", "--json")
    assert result.exit_code == 0, result.stderr
    (layer,) = json.loads(result.stdout)["layers"]
    assert layer["attributes"]["momentum"] is None


def test_a_model_layer_s_settings_are_not_given_twice(invoke, save, tmp_path):
    _onnx_bn(tmp_path, np.random.default_rng(1), 2)
    save("x.npy", np.ones((3, 2), np.float32))
    for args in (["--eps", "1e-3"], ["--gamma", "2"], ["--per", "channel"],
                 ["--convention", "onnx"], ["--stats", "s.npz"]):
        line = usage_error(invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node",
                                  "bn1", *args))
        assert line.startswith(f"Error: {args[0]}: the model's layer 'bn1' gives that")
    line = usage_error(invoke("batchnorm", "x.npy", "--node", "bn1"))
    assert line == "Error: --node names a node of --from-onnx MODEL.onnx"
    line = one_line_error(invoke("batchnorm", "x.npy", "--from-onnx", "m.onnx", "--node",
                                 "bn9"))
    assert "no LRN or batch-norm layer named 'bn9'; it has bn1 (BatchNormalization)" in line


def test_batchnorm_from_a_caffe_layer_needs_its_statistics(invoke, save, tmp_path,
                                                           sample_data):
    proto = sample_data / "models" / "cnn_norms.prototxt"
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    save("x.npy", x)
    line = one_line_error(invoke("batchnorm", "x.npy", "--from-caffe", proto, "--layer",
                                 "bn_conv1"))
    assert line.endswith("layer 'bn_conv1' normalizes with stored statistics "
                         "(use_global_stats: true), which live in the .caffemodel: give them "
                         "with --stats FILE.npz (mean_sum, var_sum, scale_factor)")
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    np.savez(tmp_path / "blobs.npz", mean_sum=mean * 999.0, var_sum=var * 999.0,
             scale_factor=np.array([999.0]))
    save("g.npy", np.array([2.0, 1.0, 0.5]))
    result = invoke("batchnorm", "x.npy", "--from-caffe", proto, "--layer", "bn_conv1",
                    "--stats", "blobs.npz", "--gamma", "g.npy", "--beta", "0.5", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    want = (np.array([2.0, 1.0, 0.5])[:, None, None] * (x - mean[:, None, None])
            / np.sqrt(var[:, None, None] + 1e-5) + 0.5)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)
    assert "--eps: the model's layer" in usage_error(invoke(
        "batchnorm", "x.npy", "--from-caffe", proto, "--layer", "bn_conv1", "--eps", "1"))


def test_the_sample_onnx_model_equals_onnxruntime(invoke, tmp_path, sample_data):
    """sample_data/models/cnn_norms.onnx (written by tools/make_sample_data.py without
    the onnx package): LRN then batch norm, node by node, equals onnxruntime's run."""
    ort = pytest.importorskip("onnxruntime")
    model = sample_data / "models" / "cnn_norms.onnx"
    features = sorted((sample_data / "features").glob("*.npy"))[:3]
    x = np.stack([np.load(f) for f in features])
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(
        None, {"X": x})[0]
    np.save(tmp_path / "x.npy", x)
    assert invoke("lrn", "x.npy", "--from-onnx", model, "--node", "norm1", "-o", "l.npy",
                  "-q").exit_code == 0
    result = invoke("batchnorm", "l.npy", "--from-onnx", model, "--node", "bn1", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5,
                               atol=1e-5 * np.abs(want).max())


def test_a_file_that_names_its_convention_gives_its_eps(save, tmp_path):
    x = np.random.default_rng(8).standard_normal((6, 3)).astype(np.float32)
    save("x.npy", x)
    runs.batchnorm([tmp_path / "x.npy"], convention="keras", per="channel",
                   update_stats=tmp_path / "k.npz")
    again = runs.batchnorm([tmp_path / "x.npy"], per="channel", update_stats=tmp_path / "k.npz")
    assert (again.params["convention"], again.params["eps"]) == ("keras", 1e-3)
    applied = runs.batchnorm([tmp_path / "x.npy"], stats=tmp_path / "k.npz")
    assert (applied.params["convention"], applied.params["eps"]) == ("keras", 1e-3)
    assert runs.batchnorm([tmp_path / "x.npy"], stats=tmp_path / "k.npz",
                          eps=0.25).params["eps"] == 0.25


def test_save_stats_files_read_as_they_are_with_any_convention(save, tmp_path):
    x = np.random.default_rng(10).standard_normal((6, 3)).astype(np.float32)
    save("x.npy", x)
    runs.batchnorm([tmp_path / "x.npy"], per="channel", save_stats=tmp_path / "s.npz")
    plain = runs.batchnorm([tmp_path / "x.npy"], stats=tmp_path / "s.npz", eps=1e-3,
                           output=tmp_path / "a.npy")
    keras = runs.batchnorm([tmp_path / "x.npy"], stats=tmp_path / "s.npz", convention="keras",
                           output=tmp_path / "b.npy")
    assert keras.params["eps"] == plain.params["eps"] == 1e-3
    assert np.load(tmp_path / "a.npy").tobytes() == np.load(tmp_path / "b.npy").tobytes()
