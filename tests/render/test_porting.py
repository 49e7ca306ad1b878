"""normcli.render.porting: identify, translate, layers and the BN conventions, drawn."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from normcli.files.caffe_prototxt import read_caffe_layers
from normcli.ops.batchnorm import batch_norm
from normcli.ops.bn_conventions import BN_CONVENTIONS
from normcli.ops.identify import identify
from normcli.ops.lrn import lrn
from normcli.ops.translate import translate_lrn
from normcli.render.porting import (
    all_conventions_view,
    bn_conventions_data,
    bn_conventions_table,
    identify_view,
    layers_data,
    layers_view,
    translate_view,
)


def render(renderable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


@pytest.fixture(scope="module")
def lrn_case():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2, 8, 4, 4)) * 30).astype(np.float32)
    return x, lrn(x, convention="pytorch", n=5, alpha=1e-3)


def test_identify_groups_the_forms_of_one_window(lrn_case):
    text = render(identify_view(identify(*lrn_case)))
    assert "1 LRN window (7 forms) reproduce the output (2×8×4×4)" in text
    lines = [line for line in text.splitlines() if "pytorch" in line or "seed" in line]
    assert any("c-2..c+2" in line and "seed" in line and "0.0002" in line for line in lines)
    assert any("pytorch" in line and " 5 " in line and "0.001" in line for line in lines)
    assert "compute the same thing" in text


def test_identify_batch_norm_and_nothing():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 2, 2))
    text = render(identify_view(identify(x, batch_norm(x, per="channel", eps=1e-3))))
    assert "batch norm" in text and "channel" in text and "0.001" in text
    assert "tensorflow, keras, mxnet" in text
    text = render(identify_view(identify(x, np.tanh(x))), width=70)
    assert "no normalization reproduces the output" in text and "closest" in text


def test_identify_names_cross_map_lrn2d():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "fixtures" / "pytorch_porting.npz"
    if not path.exists():
        pytest.skip("pytorch_porting.npz missing")
    with np.load(path) as d:
        text = render(identify_view(identify(d["xmap_n3_x"], d["xmap_n3_y"])), width=80)
    assert "CrossMapLRN2d" in text and "differs at channels" in text


def test_translate_view():
    text = render(translate_view(translate_lrn("pytorch", n=4, alpha=1e-4)), width=120)
    assert "window c-2..c+1" in text
    assert "pytorch      exact" in text
    for name in ("seed", "onnx", "cudnn", "caffe", "tensorflow"):
        assert f"{name}" in text and "closest" in text
    assert "local_size must be odd" in text
    text = render(translate_view(translate_lrn("seed", mode="intra", to="pytorch")), width=140)
    assert "none" in text and "no within-channel LRN" in text


def test_layers_view_escapes_names(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('layer { name: "[bold]x[/bold]" type: "LRN" '
                    'lrn_param { local_size: 5 alpha: 1e-4 } }\n'
                    'layer { name: "bn" type: "BatchNorm" }')
    text = render(layers_view(read_caffe_layers(path), source=str(path)), width=120)
    assert "[bold]x[/bold]" in text  # shown as written, not as markup
    assert "caffe inter: n=5" in text and "per channel, eps=1e-05" in text
    assert "in every convention" in text and "tensorflow" in text
    assert "no LRN or batch-norm layer" in render(layers_view([], source="m.onnx"))
    data = layers_data(read_caffe_layers(path), source=str(path))
    json.dumps(data, allow_nan=False)
    first = data["layers"][0]
    assert first["kind"] == "lrn" and first["name"] == "[bold]x[/bold]"
    by = {t["convention"]: t for t in first["equivalents"]}
    assert by["tensorflow"]["forms"][0]["n"] == 2 and by["pytorch"]["exact"]
    assert "equivalents" not in data["layers"][1]


def test_layers_of_an_lrn_too_wide_to_translate_still_list_it(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('layer { name: "wide" type: "LRN" lrn_param { local_size: 20000001 } }')
    layers = read_caffe_layers(path)
    text = render(layers_view(layers, source=str(path)), width=200)
    assert "caffe inter: n=20000001" in text and "not shown" in text
    first = layers_data(layers, source=str(path))["layers"][0]
    assert first["equivalents"] is None and "too wide" in first["equivalents_problem"]


@pytest.mark.parametrize("width", [150, 80])
def test_bn_conventions_table(width):
    text = render(bn_conventions_table(), width=width)
    for c in BN_CONVENTIONS.values():
        assert c.name in text and c.momentum_name.split("_")[0] in text
    assert "moving_average_fraction" in text and "scale_factor" in text
    text = render(all_conventions_view(), width=width)
    assert "LRN conventions" in text and "Batch-norm conventions" in text


def test_bn_conventions_data_is_json():
    data = bn_conventions_data()
    json.dumps(data, allow_nan=False)
    by = {d["name"]: d for d in data}
    assert by["pytorch"]["stored"] == ["running_mean", "running_var", "num_batches_tracked"]
    assert by["keras"]["momentum_weights"] == "old" and by["caffe"]["storage"] == "sums"
    assert by["mxnet"]["gamma_fixed"] is True
