"""normcli conventions: every convention, from the table of data."""

from __future__ import annotations

import json

import pytest

from normcli.ops.conventions import CONVENTIONS


def test_table_lists_every_convention(invoke):
    result = invoke("conventions", env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    header = next(li for li in lines if "seed" in li and "tensorflow" in li)
    assert header.split() == list(CONVENTIONS)
    for c in CONVENTIONS.values():
        for text in (c.framework, c.n_means, c.window.formula, c.restrictions(), c.note):
            assert " ".join(text.split()) in out or set(text.split()) <= set(out.split())
    row = next(li for li in lines if li.lstrip().startswith("α'' intra"))
    assert row.split()[2:] == ["α", "–", "–", "α/n²", "α/n²", "–"]
    row = next(li for li in lines if li.lstrip().startswith("k intra"))
    assert row.split()[2:] == ["k", "–", "–", "k", "1", "(k", "ignored)", "–"]


def test_table_fits_100_columns(invoke):
    out = invoke("conventions", env={"COLUMNS": "100"}).stdout
    assert all(len(li.rstrip()) <= 100 for li in out.splitlines())
    assert "1 <= n <=" in out and "16, k >=" in out


def test_json(invoke):
    doc = json.loads(invoke("conventions", "--json").stdout)["lrn"]
    assert doc == json.loads(invoke("conventions", "--json", "--only", "lrn").stdout)
    assert [d["name"] for d in doc] == list(CONVENTIONS)
    for d, c in zip(doc, CONVENTIONS.values(), strict=True):
        assert d["restrictions"] == c.restrictions()
        assert d["defaults"] == {"n": c.default_n, "k": c.default_k, "alpha": c.default_alpha,
                                 "beta": c.default_beta}
        assert d["window"]["n5"] == list(c.window.bounds(5))
        n4 = d["window"]["n4"]  # null where n=4 is refused (caffe: n must be odd)
        assert n4 == (None if c.n_odd else list(c.window.bounds(4)))
        assert d["modes"] == list(c.modes)


@pytest.mark.parametrize("columns", [60, 100])
def test_narrow_consoles_get_one_convention_after_another(invoke, columns):
    """Below 150 columns six side-by-side columns would break words in the middle
    ("neighbourho / od"): each convention is drawn on its own, words whole."""
    out = invoke("conventions", env={"COLUMNS": str(columns)}).stdout
    assert all(len(li.rstrip()) <= columns for li in out.splitlines())
    for c in CONVENTIONS.values():
        assert f"{c.name}  {c.framework}" in out
    assert "neighbourhood" in out and "nn.LocalResponseNorm" in out


@pytest.mark.parametrize("columns", [60, 80, 100, 120, 140, 160, 180, 220, 400])
def test_no_word_is_ever_broken_or_cut(invoke, columns):
    """Side by side only when every word fits its column whole (once "nn.LocalRes /
    ponseNorm" at 100 columns, "tf.nn.local_response_normalizati / on" at 220)."""
    out = invoke("conventions", env={"COLUMNS": str(columns)}).stdout
    assert all(len(li.rstrip()) <= columns for li in out.splitlines())
    drawn = set(out.split())
    for c in CONVENTIONS.values():
        for text in (c.name, c.framework, c.n_means, c.window.formula, c.restrictions(), c.note):
            assert set(text.split()) <= drawn, (text, columns)
    side_by_side = any(li.split() == list(CONVENTIONS) for li in out.splitlines())
    assert side_by_side == (columns >= 140)


def test_examples_use_an_n_the_convention_allows(invoke):
    out = " ".join(invoke("conventions", env={"COLUMNS": "60"}).stdout.split())
    caffe = out[out.index("caffe Caffe"):out.index("tensorflow TensorFlow")]
    assert "(n=5: i-2 .. i+2)" in caffe and "n=4" not in caffe
    assert "(n=4: i-2 .. i+1)" in out  # pytorch: an even window shows its extra element


def test_both_tables_batch_norm_too(invoke):
    from normcli.ops.bn_conventions import BN_CONVENTIONS

    result = invoke("conventions", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in BN_CONVENTIONS:
        assert name in result.stdout
    assert "moving_average_fraction" in result.stdout and "running_var" in result.stdout
    doc = json.loads(invoke("conventions", "--json").stdout)
    assert [d["name"] for d in doc["batchnorm"]] == list(BN_CONVENTIONS)
    only = invoke("conventions", "--only", "batchnorm", env={"COLUMNS": "200"}).stdout
    assert "tensorflow" in only and "local_size" not in only
