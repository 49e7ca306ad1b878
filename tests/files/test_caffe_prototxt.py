"""Caffe text prototxt: LRN and BatchNorm layers, and a bounded parser for hostile input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import lrn_ref

from normcli.errors import InputError
from normcli.files import caffe_prototxt as cp
from normcli.files.caffe_prototxt import (
    batchnorm_from_caffe,
    lrn_from_caffe,
    parse_prototxt,
    read_caffe_layers,
)
from normcli.ops.lrn import lrn

DEPLOY = """\
name: "AlexNet"  # the BVLC reference model's LRN layers
layer {
  name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 10 dim: 3 dim: 227 dim: 227 } }
}
layer {
  name: "norm1"
  type: "LRN"
  bottom: "conv1"
  top: "norm1"
  lrn_param {
    local_size: 5
    alpha: 0.0001
    beta: 0.75
  }
}
layer {
  name: "norm_within" type: "LRN" bottom: "x" top: "y"
  lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75 k: 2 norm_region: WITHIN_CHANNEL }
}
layer {
  name: "conv2/bn" type: "BatchNorm" bottom: "conv2" top: "conv2"
  param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 }
  batch_norm_param { eps: 1e-3 use_global_stats: true }
}
layer {
  name: "conv2/scale" type: "Scale" bottom: "conv2" top: "conv2"
  scale_param { bias_term: true }
}
layers { name: "old_norm" type: LRN lrn_param < local_size: 7 alpha: 1.0 beta: 0.5 > }
"""


@pytest.fixture
def deploy(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    return path


def test_layers(deploy):
    layers = read_caffe_layers(deploy)
    assert [(layer.name, layer.op) for layer in layers] == [
        ("norm1", "LRN"), ("norm_within", "LRN"), ("conv2/bn", "BatchNorm"),
        ("old_norm", "LRN")]
    p = lrn_from_caffe(deploy, "norm1")
    assert (p.convention.name, p.mode, p.n, p.k, p.alpha, p.beta) == (
        "caffe", "inter", 5, 1.0, 1e-4, 0.75)  # Caffe's default k is 1
    p = lrn_from_caffe(deploy, "norm_within")
    assert (p.mode, p.k, p.k_eff) == ("intra", 2.0, 1.0)
    assert "ignores k" in layers[1].notes[0]
    bn = batchnorm_from_caffe(deploy, "conv2/bn")
    assert (bn.per, bn.eps, bn.statistics, bn.convention) == ("channel", 1e-3, "fixed", "caffe")
    assert not bn.has_stats
    assert any("conv2/scale" in n and "bias_term: true" in n for n in layers[2].notes)
    assert lrn_from_caffe(deploy, "old_norm").n == 7


def test_lrn_from_caffe_runs_caffes_formula(deploy):
    x = np.random.default_rng(0).normal(size=(2, 8, 4, 4)) * 100
    p = lrn_from_caffe(deploy, "norm1")
    want = lrn_ref(x, convention="caffe", n=5, alpha=1e-4, beta=0.75, k=1.0)
    np.testing.assert_allclose(lrn(x, params=p), want, rtol=1e-12)


def test_parser_forms():
    msg = parse_prototxt('a: 1 b { c: "x" "y" d: [1, 2.5e-3, -3] } e < f: WORD >; g: \'q\'')
    assert msg == [("a", "1"), ("b", [("c", "xy"), ("d", "1"), ("d", "2.5e-3"), ("d", "-3")]),
                   ("e", [("f", "WORD")]), ("g", "q")]


@pytest.mark.parametrize("text,match", [
    ("layer { name: 'x' ", "line 1: the file ends inside a message"),
    ("layer }", r"line 1: expected ':' or '\{' after 'layer'"),
    ("}", "line 1: unexpected '}'"),
    ("a: 1\nb: @", "line 2: unexpected character '@'"),
    ("a < b: 1 }", "line 1: unexpected '}'"),
    ("a: [1, {", r"unexpected '\{' in the list"),
    ("a:", "has no value"),
    ("a " * 3, "expected ':'"),
])
def test_parser_errors_name_the_line(text, match):
    with pytest.raises(InputError, match=match):
        parse_prototxt(text, source="net.prototxt")


def test_bounded_against_hostile_input(tmp_path, monkeypatch):
    deep = "a { " * (cp.MAX_DEPTH + 5) + "}" * (cp.MAX_DEPTH + 5)
    with pytest.raises(InputError, match="nested over"):
        parse_prototxt(deep)
    monkeypatch.setattr(cp, "MAX_TOKENS", 100)
    with pytest.raises(InputError, match="over 100 tokens"):
        parse_prototxt("a: 1 " * 100)
    big = tmp_path / "big.prototxt"
    big.write_text("a: 1\n" * 100)
    with pytest.raises(InputError, match="over the limit"):
        read_caffe_layers(big, max_bytes=50)
    binary = tmp_path / "b.prototxt"
    binary.write_bytes(b"\xff\xfe\x00layer")
    with pytest.raises(InputError, match="not UTF-8"):
        read_caffe_layers(binary)
    with pytest.raises(InputError, match="no such file"):
        read_caffe_layers(tmp_path / "none.prototxt")


@pytest.mark.parametrize("param,match", [
    ("lrn_param { local_size: 4 }", "must be odd"),
    ("lrn_param { local_size: five }", "not an integer"),
    ("lrn_param { alpha: -1 }", "alpha=-1 is out of range"),
    ("lrn_param { norm_region: SIDEWAYS }", "not ACROSS_CHANNELS"),
    # what Caffe refuses was read silently: a typo left the default size of 5, the
    # first of two values was taken, a quoted number read as one; 'inf' lost its f
    ("lrn_param { locl_size: 3 }", "lrn_param has no field 'locl_size'"),
    ("lrn_param { local_size: 3 local_size: 7 }", "local_size is given more than once"),
    ("lrn_param { local_size: [3, 5] }", "local_size is given more than once"),
    ('lrn_param { local_size: "5" }', 'local_size: "5" is a quoted string'),
    ("lrn_param { beta: inf }", "beta=inf"),
    ("lrn_param { k: 1 } lrn_param { k: 2 }", "lrn_param is given more than once"),
])
def test_bad_lrn_layers(tmp_path, param, match):
    path = tmp_path / "n.prototxt"
    path.write_text(f'layer {{ name: "bad" type: "LRN" {param} }}')
    with pytest.raises(InputError, match=match) as e:
        read_caffe_layers(path)
    assert "layer 'bad'" in str(e.value)


def test_bad_batchnorm_layers(tmp_path):
    path = tmp_path / "n.prototxt"
    path.write_text('layer { name: "b" type: "BatchNorm" batch_norm_param { eps: 0 } }')
    with pytest.raises(InputError, match="eps=0.0 must be > 0"):
        read_caffe_layers(path)
    path.write_text('layer { name: "b" type: "BatchNorm" batch_norm_param '
                    '{ use_global_stats: maybe } }')
    with pytest.raises(InputError, match="not true or false"):
        read_caffe_layers(path)
    path.write_text('layer { name: "b" type: "BatchNorm" batch_norm_param '
                    '{ use_global_stats: false } }')
    assert batchnorm_from_caffe(path, "b").statistics == "batch"
    path.write_text('layer { name: "b" type: "BatchNorm" batch_norm_param { epsilon: 1 } }')
    with pytest.raises(InputError, match="batch_norm_param has no field 'epsilon'"):
        read_caffe_layers(path)


def test_what_is_not_caffe_or_not_quite_text(tmp_path):
    """A TensorFlow graph said "no LRN or batch-norm layer" (exit 0); a byte-order
    mark was an unexpected character; Caffe's layer types are case-sensitive."""
    path = tmp_path / "n.prototxt"
    path.write_text('node { name: "lrn" op: "LRN" attr { key: "depth_radius" } }')
    with pytest.raises(InputError, match="a TensorFlow graph, not a Caffe network"):
        read_caffe_layers(path)
    path.write_text('\ufefflayer { name: "n" type: "LRN" lrn_param { local_size: 3 } }')
    assert read_caffe_layers(path)[0].lrn.n == 3
    path.write_text('layer { name: "n" type: "lrn" lrn_param { local_size: 3 } }')
    assert read_caffe_layers(path) == []


COUNTS: Counter = Counter()  # bad inputs tried, for the run's robustness summary


@given(st.text(alphabet=st.sampled_from(list('layer{}<>:[],;"\'#\n 0123456789.-eE_ab')),
               max_size=200))
@settings(max_examples=300, deadline=None)
def test_parser_never_fails_otherwise(text):
    COUNTS["prototxt text"] += 1
    try:
        msg = parse_prototxt(text)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(msg, list)


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_layers_from_any_bytes_fail_cleanly(tmp_path_factory, data):
    COUNTS["prototxt bytes"] += 1
    path = tmp_path_factory.mktemp("p") / "x.prototxt"
    path.write_bytes(b'layer { type: "LRN" ' + data + b" }")
    try:
        read_caffe_layers(path)
    except InputError as e:
        assert "\n" not in str(e) and str(path) in str(e)
