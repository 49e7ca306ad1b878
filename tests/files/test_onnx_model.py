"""LRN and BatchNormalization nodes from ONNX models, against onnxruntime.

Models are built here with ``onnx.helper``; ``--from-onnx`` must reproduce
what onnxruntime computes for the node: LRN to 1e-5 relative per value (both
float32; see tests/ops/test_frameworks.py), batch norm to 1e-5 of the
output's largest magnitude.
"""

from __future__ import annotations

import builtins
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normcli.errors import InputError
from normcli.files.models import find_layer, read_layers
from normcli.files.onnx_model import batchnorm_from_onnx, lrn_from_onnx, read_onnx_layers
from normcli.ops.batchnorm import batch_norm
from normcli.ops.lrn import lrn

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _model(nodes, inputs, initializers=(), opset=13, outputs=("Y",)):
    ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    graph = helper.make_graph(nodes, "g", ins, outs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _ort(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _save(tmp_path, model, name="m.onnx", **kw):
    path = tmp_path / name
    onnx.save_model(model, str(path), **kw)
    return path


@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_lrn_node_equals_onnxruntime(tmp_path, size):
    rng = np.random.default_rng(size)
    alpha, beta, bias = 10 ** rng.uniform(-4, -1), rng.uniform(0.3, 1.2), rng.uniform(0.5, 2)
    x = (rng.normal(size=(2, 9, 4, 5)) / np.sqrt(alpha)).astype(np.float32)
    node = helper.make_node("LRN", ["X"], ["Y"], name="norm1", size=size, alpha=alpha,
                            beta=beta, bias=bias)
    model = _model([node], {"X": x.shape})
    path = _save(tmp_path, model)
    p = lrn_from_onnx(path, "norm1")
    assert (p.convention.name, p.n) == ("onnx", size)
    want = _ort(model, {"X": x})
    np.testing.assert_allclose(lrn(x, params=p), want, rtol=1e-5, atol=0)


def _bn_model(rng, c, *, eps, opset=15, external=False, spatial=None, shape=None):
    scale = rng.uniform(0.5, 2, size=shape or c).astype(np.float32)
    b = rng.normal(size=shape or c).astype(np.float32)
    mean = rng.normal(size=shape or c).astype(np.float32)
    var = rng.uniform(0.2, 3, size=shape or c).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((scale, "gamma"), (b, "beta"), (mean, "rm"), (var, "rv"))]
    attrs = {"epsilon": eps}
    if spatial is not None:
        attrs["spatial"] = spatial
    node = helper.make_node("BatchNormalization", ["X", "gamma", "beta", "rm", "rv"], ["Y"],
                            name="bn1", **attrs)
    return node, inits, (scale, b, mean, var)


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_batchnorm_node_equals_onnxruntime(tmp_path, eps):
    rng = np.random.default_rng(int(eps * 1e6))
    x = (rng.normal(size=(3, 4, 5, 6)) * 2 + 1).astype(np.float32)
    node, inits, _ = _bn_model(rng, 4, eps=eps)
    model = _model([node], {"X": x.shape}, inits, opset=15)
    path = _save(tmp_path, model)
    bn = batchnorm_from_onnx(path, "bn1")
    assert (bn.per, bn.eps, bn.statistics) == ("channel", pytest.approx(eps), "fixed")
    got = batch_norm(x, params=bn.params, mean=bn.mean, var=bn.var, per="channel")
    want = _ort(model, {"X": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_external_data_inside_the_folder(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    node, inits, _ = _bn_model(rng, 4, eps=1e-5)
    model = _model([node], {"X": x.shape}, inits, opset=15)
    path = _save(tmp_path, model, save_as_external_data=True, all_tensors_to_one_file=True,
                 location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    bn = batchnorm_from_onnx(path, "bn1")
    want = _ort(onnx.load(str(path)), {"X": x})
    got = batch_norm(x, params=bn.params, mean=bn.mean, var=bn.var)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def _external(tmp_path, location, **info):
    rng = np.random.default_rng(2)
    node, inits, _ = _bn_model(rng, 4, eps=1e-5)
    model = _model([node], {"X": (1, 4, 2, 2)}, inits, opset=15)
    t = model.graph.initializer[0]
    raw = t.raw_data or np.asarray(numpy_helper.to_array(t)).tobytes()
    (tmp_path / "w.bin").write_bytes(raw)
    t.ClearField("raw_data")
    del t.float_data[:]
    t.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": "0", "length": str(len(raw)), **info}
    for key, value in entries.items():
        e = t.external_data.add()
        e.key, e.value = key, value
    path = tmp_path / "sub" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("location,info,match", [
    ("../w.bin", {}, "relative path inside the model's folder"),
    ("/etc/passwd", {}, "relative path inside"),
    ("missing.bin", {}, "no such file"),
    ("w.bin", {"length": "3"}, "tensor's shape needs 16"),
])
def test_external_data_outside_or_wrong_is_refused(tmp_path, location, info, match):
    path = _external(tmp_path, location, **info)
    if location == "w.bin":
        (path.parent / "w.bin").write_bytes((tmp_path / "w.bin").read_bytes())
    with pytest.raises(InputError, match=match) as e:
        read_onnx_layers(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    path = _external(tmp_path, "link.bin")
    (path.parent / "link.bin").symlink_to(tmp_path / "w.bin")
    with pytest.raises(InputError, match="leads outside the model's folder"):
        read_onnx_layers(path)


def test_layers_listing_and_notes(tmp_path):
    rng = np.random.default_rng(3)
    bn, inits, _ = _bn_model(rng, 4, eps=1e-3)
    nodes = [helper.make_node("LRN", ["X"], ["L"], size=4),  # unnamed, even size
             helper.make_node("Relu", ["L"], ["R"]), bn]
    bn.input[0] = "R"
    model = _model(nodes, {"X": (1, 4, 3, 3)}, inits)
    path = _save(tmp_path, model)
    layers = read_layers(path)
    assert [(layer.name, layer.op, layer.kind) for layer in layers] == [
        ("L", "LRN", "lrn"), ("bn1", "BatchNormalization", "batchnorm")]
    assert "refuses even sizes" in layers[0].notes[0]
    assert layers[0].lrn.n == 4 and layers[0].lrn.k == 1.0  # ONNX defaults
    d = layers[1].to_dict()
    assert d["attributes"]["mean"] == [4] and d["eps"] == pytest.approx(1e-3)
    with pytest.raises(InputError, match="not an LRN layer"):
        find_layer(layers, "bn1", kind="lrn")
    with pytest.raises(InputError, match=r"no LRN or batch-norm layer named 'x'.*L \(LRN\)"):
        find_layer(layers, "x")


def test_training_mode_and_spatial(tmp_path):
    rng = np.random.default_rng(4)
    bn, inits, _ = _bn_model(rng, 3, eps=1e-5)
    bn.attribute.append(helper.make_attribute("training_mode", 1))
    path = _save(tmp_path, _model([bn], {"X": (2, 3, 2, 2)}, inits, opset=15))
    (layer,) = read_onnx_layers(path)
    assert layer.bn.statistics == "batch" and "training_mode=1" in layer.notes[0]
    bn, inits, _ = _bn_model(rng, 3, eps=1e-5, spatial=0, shape=(3, 2, 2))
    path = _save(tmp_path, _model([bn], {"X": (2, 3, 2, 2)}, inits, opset=7), "s.onnx")
    (layer,) = read_onnx_layers(path)
    assert layer.bn.per == "activation"


def test_lrn_in_a_subgraph_is_found(tmp_path):
    inner = helper.make_graph([helper.make_node("LRN", ["X"], ["Z"], name="deep", size=3)],
                              "body", [], [helper.make_tensor_value_info("Z", TensorProto.FLOAT,
                                                                         None)])
    cond = helper.make_node("If", ["C"], ["Y"], then_branch=inner, else_branch=inner)
    graph = helper.make_graph([cond], "g", [
        helper.make_tensor_value_info("C", TensorProto.BOOL, []),
        helper.make_tensor_value_info("X", TensorProto.FLOAT, (1, 3, 2, 2))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = _save(tmp_path, model)
    assert [layer.name for layer in read_onnx_layers(path)] == ["deep", "deep"]
    with pytest.raises(InputError, match="2 layers are named 'deep'"):
        lrn_from_onnx(path, "deep")


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"\x08\x96\x01garbage\xff\xff\xff", "not a valid ONNX model"),
    (b"\x12\x00", "no graph"),
])
def test_hostile_files(tmp_path, content, match):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        read_onnx_layers(path)


def test_size_limit_and_non_float_tensor(tmp_path):
    rng = np.random.default_rng(5)
    node, inits, _ = _bn_model(rng, 4, eps=1e-5)
    path = _save(tmp_path, _model([node], {"X": (1, 4, 2, 2)}, inits, opset=15))
    with pytest.raises(InputError, match="over the limit"):
        read_onnx_layers(path, max_bytes=10)
    inits[3] = numpy_helper.from_array(np.ones(4, np.int64), "rv")
    path = _save(tmp_path, _model([node], {"X": (1, 4, 2, 2)}, inits, opset=15), "i.onnx")
    with pytest.raises(InputError, match="data type 7"):
        read_onnx_layers(path)
    node.input[2] = "nowhere"
    path = _save(tmp_path, _model([node], {"X": (1, 4, 2, 2)}, inits, opset=15), "n.onnx")
    with pytest.raises(InputError, match="not a stored tensor"):
        read_onnx_layers(path)


def test_without_onnx_one_line_names_the_extra(tmp_path, monkeypatch):
    real = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"whatever")
    with pytest.raises(InputError, match=r"needs the onnx package: pip install 'normcli\[onnx\]'"):
        read_onnx_layers(path)


COUNTS: Counter = Counter()  # bad inputs tried, for the run's robustness summary


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_mutated_models_fail_cleanly(tmp_path_factory, data):
    """Flipped, cut or inserted bytes of a valid model: layers or one InputError line."""
    COUNTS["onnx mutation"] += 1
    rng = np.random.default_rng(0)
    node, inits, _ = _bn_model(rng, 3, eps=1e-5)
    lrn_node = helper.make_node("LRN", ["Y"], ["Z"], name="l", size=3)
    raw = bytearray(_model([node, lrn_node], {"X": (1, 3, 2, 2)}, inits,
                           outputs=("Z",)).SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if how == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif how == "cut":
            del raw[at:]
            if not raw:
                raw = bytearray(b"\x00")
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    path.write_bytes(bytes(raw))
    try:
        layers = read_onnx_layers(path)
    except InputError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return
    for layer in layers:
        assert layer.kind in ("lrn", "batchnorm")


@pytest.mark.parametrize("key", ["epsilon", "momentum", "training_mode"])
def test_a_batchnorm_attribute_of_another_type_is_the_file_s_error(tmp_path, key):
    """(Found by test_mutated_models_fail_cleanly: a flipped attribute type gave a
    ValueError traceback.)"""
    rng = np.random.default_rng(5)
    bn, inits, _ = _bn_model(rng, 3, eps=1e-5)
    bn.attribute.append(helper.make_attribute(key, "fast"))  # a string
    if key == "epsilon":
        del bn.attribute[0]
    path = _save(tmp_path, _model([bn], {"X": (2, 3, 2, 2)}, inits, opset=15))
    problem = "it must be the integer 0 or 1" if key == "training_mode" else "not a number"
    with pytest.raises(InputError, match=f"attribute {key} is 'fast'[,;] {problem}"):
        read_onnx_layers(path)


@pytest.mark.parametrize("opset,key,value,match", [
    (15, "training_mode", float("inf"), "training_mode is inf; it must be the integer 0 or 1"),
    (15, "training_mode", float("nan"), "training_mode is nan; it must be"),
    (15, "training_mode", 2, "training_mode is 2; it must be"),
    (7, "spatial", float("nan"), "spatial is nan; it must be"),
    (7, "spatial", 0.5, "spatial is 0.5; it must be"),
    (15, "epsilon", 1e-3, "attribute epsilon is given more than once"),
])
def test_batchnorm_switches_and_repeated_attributes(tmp_path, opset, key, value, match):
    """An inf or NaN switch was a traceback (int(inf)); 2 was training mode, 0.5 per
    activation; a repeated attribute took the last (onnx's checker refuses it)."""
    rng = np.random.default_rng(6)
    bn, inits, _ = _bn_model(rng, 3, eps=1e-5, shape=(3,))
    bn.attribute.append(helper.make_attribute(key, value))
    path = _save(tmp_path, _model([bn], {"X": (2, 3, 2, 2)}, inits, opset=opset))
    with pytest.raises(InputError, match=match) as e:
        read_onnx_layers(path)
    assert "node 'bn1'" in str(e.value)


def test_lrn_size_must_be_an_integer_attribute(tmp_path):
    for size, match in ((5.0, "attribute size is 5.0, not an integer"),
                        (None, "attribute size is given more than once")):
        node = helper.make_node("LRN", ["X"], ["Y"], name="n1", size=3)
        node.attribute.append(helper.make_attribute("size", 5 if size is None else size))
        if size is not None:
            del node.attribute[0]
        path = _save(tmp_path, _model([node], {"X": (1, 4, 3, 3)}))
        with pytest.raises(InputError, match=match):
            read_onnx_layers(path)
