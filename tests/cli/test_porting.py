"""normcli identify, translate and layers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clihelp import one_line_error, usage_error

import normcli


@pytest.fixture
def pair(save):
    x = np.random.default_rng(2).standard_normal((2, 12, 10, 10)).astype(np.float32)
    save("x.npy", x)
    save("y.npy", normcli.lrn(x, convention="pytorch", n=4))
    save("b.npy", normcli.batch_norm(x, per="channel", eps=1e-3))
    return x


def test_identify_finds_the_lrn_and_its_group(invoke, pair):
    result = invoke("identify", "x.npy", "y.npy", "--only", "lrn", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    best = doc["matches"][0]
    assert (best["normalization"], best["convention"], best["n"], best["mode"]) == (
        "lrn", "pytorch", 4, "inter")
    assert best["alpha"] == pytest.approx(1e-4) and best["beta"] == pytest.approx(0.75)
    assert doc["closest"] is None
    table = invoke("identify", "x.npy", "y.npy", "--only", "lrn")
    assert table.exit_code == 0 and "c-2..c+1" in table.stdout and table.stderr == ""


def test_identify_finds_the_batch_norm_and_says_whose_eps(invoke, pair):
    doc = json.loads(invoke("identify", "x.npy", "b.npy", "--json").stdout)
    best = doc["matches"][0]
    assert (best["normalization"], best["per"], best["statistics"]) == (
        "batchnorm", "channel", "batch")
    assert best["eps"] == pytest.approx(1e-3) and "keras" in best["conventions"]


def test_nothing_fits_exit_1_with_the_closest(invoke, pair, save):
    save("z.npy", np.tanh(pair))
    result = invoke("identify", "x.npy", "z.npy", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["matches"] == [] and doc["closest"] is not None


def test_identify_shapes_must_agree(invoke, pair, save):
    save("small.npy", pair[:1])
    line = one_line_error(invoke("identify", "x.npy", "small.npy"))
    assert line.startswith("normcli: error: small.npy: has shape (1, 12, 10, 10) but x.npy")


def test_identify_reads_standard_input_once(invoke):
    """``identify - -`` said "<stdin>: not a .npy file (empty)" of the second read."""
    assert usage_error(invoke("identify", "-", "-")) == (
        "Error: - (standard input) can be read once: give the input or the output as a file")


def test_translate_caffe_to_tensorflow(invoke):
    result = invoke("translate", "--from", "Caffe", "--local-size", "5", "--alpha", "1e-4",
                    "--to", "tensorflow", "--json")
    assert result.exit_code == 0, result.stderr
    t = json.loads(result.stdout)["translations"][0]
    assert t["exact"] and t["forms"][0]["n"] == 2
    assert t["forms"][0]["alpha"] == pytest.approx(2e-5)


def test_translate_refuses_a_word_that_means_something_else(invoke):
    line = usage_error(invoke("translate", "--from", "tensorflow", "--size", "5"))
    assert line.startswith("Error: Invalid value for '--size': 5: tensorflow's n is "
                           "depth_radius")


def test_translate_says_why_an_even_window_has_no_exact_form(invoke):
    result = invoke("translate", "--from", "pytorch", "--size", "4", "--to", "onnx")
    assert result.exit_code == 0
    assert "closest" in result.stdout and "extra channel before i" in " ".join(
        result.stdout.split())


def test_layers_of_a_caffe_prototxt(invoke, tmp_path):
    (tmp_path / "deploy.prototxt").write_text(
        'layer { name: "norm1" type: "LRN" lrn_param { local_size: 5 alpha: 0.0001 '
        'beta: 0.75 } }\nlayer { name: "bn1" type: "BatchNorm" batch_norm_param '
        '{ eps: 0.001 } }\n')
    result = invoke("layers", "deploy.prototxt", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    names = [layer["name"] for layer in doc["layers"]]
    assert names == ["norm1", "bn1"]
    assert invoke("layers", "deploy.prototxt").exit_code == 0
    line = one_line_error(invoke("layers", "model.h5"))
    assert line == ("normcli: error: model.h5: not a model file normcli reads (.onnx, or "
                    "Caffe's .prototxt)")


def test_layers_shows_a_name_s_control_characters_as_escapes(invoke, tmp_path):
    """A node named with an escape sequence and a newline sent them to the terminal."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("LRN", ["X"], ["Y"], name="evil\x1b[31mRED\n2nd", size=3)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, None)], [helper.make_tensor_value_info(
            "Y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              tmp_path / "evil.onnx")
    result = invoke("layers", "evil.onnx")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\n2nd" not in result.stdout
    assert "evil\\x1b[31mRED\\n2nd" in result.stdout.replace("\n", "")


@pytest.mark.parametrize("size", [3, 5])
def test_lrn_from_an_onnx_node_equals_onnxruntime(invoke, save, tmp_path, size):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = np.random.default_rng(size).standard_normal((1, 7, 6, 6)).astype(np.float32)
    save("x.npy", x)
    node = helper.make_node("LRN", ["X"], ["Y"], name="norm1", size=size, alpha=2e-4,
                            beta=0.6, bias=1.5)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, x.shape)], [helper.make_tensor_value_info(
            "Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx")
    want = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=[
        "CPUExecutionProvider"]).run(None, {"X": x})[0]
    result = invoke("lrn", "x.npy", "--from-onnx", "m.onnx", "--node", "norm1", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=2e-6, atol=1e-7)
    line = usage_error(invoke("lrn", "x.npy", "--from-onnx", "m.onnx", "--node", "norm1",
                              "--n", "3"))
    assert line == "Error: --n: the model's layer gives every LRN setting; leave them out"
    line = one_line_error(invoke("lrn", "x.npy", "--from-onnx", "m.onnx", "--node", "norm9"))
    assert "no LRN or batch-norm layer named 'norm9'; it has norm1 (LRN)" in line


def test_lrn_from_a_caffe_layer_and_in_tensorflow_s_words(invoke, save, sample_data, tmp_path):
    x = np.random.default_rng(1).standard_normal((9, 5, 5)).astype(np.float32)
    save("x.npy", x)
    proto = sample_data / "models" / "cnn_norms.prototxt"
    assert invoke("lrn", "x.npy", "--from-caffe", proto, "--layer", "norm1", "-o", "c.npy",
                  "-q").exit_code == 0
    # the same LRN in TensorFlow's words: radius 2, bias 1, alpha / 5
    assert invoke("lrn", "x.npy", "--convention", "TF", "--depth-radius", "2", "--bias", "1",
                  "--alpha", "2e-5", "--beta", "0.75", "-o", "t.npy", "-q").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), np.load(tmp_path / "t.npy"),
                               rtol=1e-6)
    assert usage_error(invoke("lrn", "x.npy", "--layer", "norm1")) == (
        "Error: --layer names a layer of --from-caffe PROTOTXT")
