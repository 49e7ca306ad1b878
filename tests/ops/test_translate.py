"""LRN translation between conventions (normcli.ops.translate) and framework words.

Exactness is checked against ``tests/reference.py``'s independent float64
LRN: an exact translation must reproduce the source to 1e-12 relative (the
two only differ by the rounding of ``alpha * n / n``).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from reference import INTRA, lrn_ref

from normcli.errors import ParameterError
from normcli.ops.conventions import CONVENTIONS
from normcli.ops.translate import exact_forms, max_rel_err, translate_lrn
from normcli.ops.words import lrn_words

NAMES = list(CONVENTIONS)


def _random_params(rng, convention):
    conv = CONVENTIONS[convention]
    n = int(rng.integers(max(conv.n_min, 1), 9))
    if conv.n_odd and n % 2 == 0:
        n += 1
    return {"n": n, "k": float(rng.uniform(0.5, 3)), "alpha": float(10 ** rng.uniform(-4, 0)),
            "beta": float(rng.uniform(0.25, 1.5))}


def _data(rng, mode, alpha_eff, size):
    shape = (2, 12, 4, 3) if mode == "inter" else (2, 2, 11, 10)
    window = size if mode == "inter" else size * size
    return rng.normal(size=shape) / np.sqrt(alpha_eff * window)


@pytest.mark.parametrize("source,mode", [(c, "inter") for c in NAMES]
                         + [(c, "intra") for c in INTRA])
def test_round_trip_through_every_pair(source, mode):
    rng = np.random.default_rng(zlib.crc32(f"{source} {mode}".encode()))
    for _ in range(4):
        params = _random_params(rng, source)
        if mode == "intra" and source == "caffe":
            params["k"] = 1.0  # Caffe's WITHIN_CHANNEL ignores k: only k=1 round-trips
        result = translate_lrn(source, mode=mode, **params)
        x = _data(rng, mode, result.alpha_eff, result.lo + result.hi + 1)
        want = lrn_ref(x, mode=mode, convention=source, **params)
        assert {t.convention for t in result.translations} == set(NAMES)
        for t in result.translations:
            if not t.exact:
                assert t.reason
                continue
            for form in t.forms:
                got = lrn_ref(x, mode=mode, convention=form.convention, n=form.n, k=form.k,
                              alpha=form.alpha, beta=form.beta)
                assert max_rel_err(got, want) < 1e-12, (form, params)
                back = translate_lrn(form.convention, mode=mode, n=form.n, k=form.k,
                                     alpha=form.alpha, beta=form.beta, to=source)
                (home,) = back.translations
                assert home.exact
                assert any(f.n == params["n"] and f.alpha == pytest.approx(params["alpha"],
                                                                            rel=1e-12)
                           and f.k == params["k"] and f.beta == params["beta"]
                           for f in home.forms), (form, home.forms)


def test_seed_n4_is_pytorch_n5_with_alpha_times_5():
    (t,) = translate_lrn("seed", n=4, alpha=1e-4, k=2, to="pytorch").translations
    assert [(f.n, f.alpha, f.k) for f in t.forms] == [(5, pytest.approx(5e-4), 2.0)]
    (t,) = translate_lrn("pytorch", n=5, alpha=5e-4, k=2, to="seed").translations
    assert [f.n for f in t.forms] == [4, 5]  # one window: c-2..c+2


def test_caffe_alexnet_to_tensorflow_divides_alpha():
    # The converters' bug: Caffe's alpha=1e-4 with local_size 5 is TensorFlow's alpha=2e-5, r=2.
    (t,) = translate_lrn("caffe", n=5, alpha=1e-4, k=1, to="tensorflow").translations
    assert [(f.n, f.alpha) for f in t.forms] == [(2, pytest.approx(2e-5))]


@pytest.mark.parametrize("target,match", [
    ("onnx", "extra channel before i; onnx puts it after"),
    ("cudnn", "extra channel before i; cudnn puts it after"),
    ("seed", "even window c-2..c+1 cannot be placed in seed"),
    ("caffe", "local_size must be odd"),
    ("tensorflow", "depth_radius r always gives the symmetric window"),
])
def test_even_pytorch_window_has_no_exact_equivalent(target, match):
    (t,) = translate_lrn("pytorch", n=4, to=target).translations
    assert not t.exact and match in t.reason
    assert t.closest is not None and t.closest.convention == target
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 12, 6, 6)) / np.sqrt(1e-4 / 4 * 4)
    src = lrn_ref(x, convention="pytorch", n=4)
    c = t.closest
    err = max_rel_err(lrn_ref(x, convention=target, n=c.n, k=c.k, alpha=c.alpha, beta=c.beta),
                      src)
    assert 1e-3 < t.max_rel_err < 10 and 1e-3 < err < 10  # not equal, but close


def test_onnx_even_window_is_cudnn_not_pytorch():
    result = translate_lrn("onnx", n=4, alpha=1e-3)
    by = {t.convention: t for t in result.translations}
    assert [f.n for f in by["cudnn"].forms] == [4]
    assert not by["pytorch"].exact and "before i" in by["pytorch"].reason


def test_cudnn_limits_and_caffe_intra_k():
    (t,) = translate_lrn("pytorch", n=17, to="cudnn").translations
    assert not t.exact and "n <= 16" in t.reason and t.closest.n in (15, 16)
    (t,) = translate_lrn("seed", k=0, to="cudnn").translations
    assert not t.exact and "k=0 is out of range" in t.reason and t.closest.k == 1e-5
    assert t.max_rel_err < 1e-2
    (t,) = translate_lrn("seed", mode="intra", k=2, to="caffe").translations
    assert not t.exact and "ignores k and uses 1" in t.reason
    (t,) = translate_lrn("caffe", mode="intra", k=7, to="cudnn").translations
    assert t.exact and t.forms[0].k == 1.0  # Caffe's k is ignored: cuDNN gets k=1
    (t,) = translate_lrn("seed", mode="intra", to="pytorch").translations
    assert not t.exact and t.closest is None and "no within-channel" in t.reason


def test_bad_requests():
    with pytest.raises(ParameterError) as e:
        translate_lrn("pytorch", to="theano")
    assert e.value.param == "to"
    with pytest.raises(ParameterError) as e:
        translate_lrn("caffe", n=4)
    assert e.value.param == "n"
    assert translate_lrn("PyTorch", n=3, to="ONNX").translations[0].exact


def test_exact_forms_bounded_by_max_half():
    p = translate_lrn("pytorch", n=3).source.params()
    forms, _ = exact_forms(p, "seed")
    assert [f.n for f in forms] == [2, 3]


def test_to_dict_is_json_ready():
    import json

    d = translate_lrn("pytorch", n=4, to="all").to_dict()
    text = json.dumps(d)
    assert d["from"]["convention"] == "pytorch" and d["window"] == [-2, 1]
    assert {t["convention"] for t in d["translations"]} == set(NAMES)
    assert "NaN" not in text


# ------------------------------------------------------------------ framework words

def test_words_map_onto_n_and_k():
    assert lrn_words("caffe", local_size=5) == {"convention": "caffe", "n": 5, "k": None}
    assert lrn_words("ONNX", size=3, bias=2.0) == {"convention": "onnx", "n": 3, "k": 2.0}
    assert lrn_words("tensorflow", depth_radius=2, bias=1.0)["n"] == 2
    assert lrn_words("seed", n=4, k=2.0) == {"convention": "seed", "n": 4, "k": 2.0}


@pytest.mark.parametrize("convention,words,param,match", [
    ("tensorflow", {"size": 5}, "size", "depth_radius, a radius"),
    ("seed", {"local_size": 5}, "local_size", "neighbourhood"),
    ("pytorch", {"depth_radius": 2}, "depth_radius", "TensorFlow's radius"),
    ("pytorch", {"n": 5, "size": 5}, "size", "give one of them"),
    ("onnx", {"k": 1.0, "bias": 2.0}, "bias", "same parameter"),
])
def test_words_refused_where_they_mean_something_else(convention, words, param, match):
    with pytest.raises(ParameterError, match=match) as e:
        lrn_words(convention, **words)
    assert e.value.param == param and e.value.problem


@pytest.mark.parametrize("convention, mode, n", [("onnx", "inter", 10**7),
                                                 ("onnx", "inter", 2**62),
                                                 ("caffe", "intra", 2001)])
def test_window_too_wide_to_check_is_a_parameter_error_not_a_memory_bomb(convention, mode, n):
    """n=10**7 built gigabytes of random data (the machine ran out of memory);
    n=2**62 crashed in numpy.  Refused before any data is made."""
    with pytest.raises(ParameterError, match="too wide to check") as e:
        translate_lrn(convention, mode=mode, n=n)
    assert e.value.param == "n"
