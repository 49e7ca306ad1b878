"""Porting over files: settings in each framework's words, identify on files, translate."""

from __future__ import annotations

import numpy as np
import pytest

from normcli.errors import InputError, ParameterError, UsageError
from normcli.ops.lrn import lrn
from normcli.runs import porting


def test_lrn_settings_take_each_framework_s_words():
    p = porting.lrn_settings(convention="PyTorch", size=4, bias=2.0)
    assert (p.convention.name, p.n, p.k) == ("pytorch", 4, 2.0)
    p = porting.lrn_settings(convention="tf", depth_radius=2, alpha=1e-4)
    assert (p.convention.name, p.lo, p.hi) == ("tensorflow", 2, 2)
    with pytest.raises(ParameterError) as e:
        porting.lrn_settings(convention="tensorflow", size=5)
    assert e.value.param == "size"
    with pytest.raises(ParameterError):
        porting.lrn_settings(convention="pytorch", n=5, size=5)


def test_a_model_layer_gives_every_setting(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text('layer { name: "norm1" type: "LRN" lrn_param { local_size: 5 alpha: 0.0001 '
                    'beta: 0.75 } }\n')
    p = porting.lrn_settings(from_caffe=path, layer="norm1")
    assert (p.convention.name, p.n, p.alpha) == ("caffe", 5, 1e-4)
    with pytest.raises(UsageError, match="the model's layer gives every LRN setting"):
        porting.lrn_settings(from_caffe=path, layer="norm1", n=3)
    with pytest.raises(UsageError, match="--layer names the layer"):
        porting.lrn_settings(from_caffe=path)
    with pytest.raises(InputError, match="no LRN or batch-norm layer named 'norm2'"):
        porting.lrn_settings(from_caffe=path, layer="norm2")


def test_identify_reads_the_two_files(tmp_path):
    x = np.random.default_rng(0).standard_normal((8, 9, 9)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", lrn(x, convention="pytorch", n=4))
    result, x_label, y_label = porting.identify([tmp_path / "x.npy"], [tmp_path / "y.npy"],
                                                normalizations=("lrn",))
    assert result.exact and (x_label, y_label) == (str(tmp_path / "x.npy"),
                                                   str(tmp_path / "y.npy"))
    best = result.matches[0].to_dict()
    assert best["normalization"] == "lrn" and best["max_rel_err"] < 1e-5
    np.save(tmp_path / "z.npy", x[:4])
    with pytest.raises(InputError, match="an output has the shape of its input"):
        porting.identify([tmp_path / "x.npy"], [tmp_path / "z.npy"])


def test_translate_takes_the_source_s_words():
    r = porting.translate("caffe", local_size=5, alpha=1e-4, to="tensorflow")
    form = r.translations[0].forms[0]
    assert r.translations[0].exact and form.n == 2
    assert form.alpha == pytest.approx(1e-4 / 5)
