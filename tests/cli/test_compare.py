"""normcli compare: the after-statistics of LRN inter, LRN intra and BN side by side."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from normcli import batch_norm, lrn
from normcli.ops.summary import summarize
from normcli.render.compare import LRN_VS_BN, compare_table, lrn_vs_bn_table


def render(renderable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_json_numbers_equal_the_library(invoke, sample_data):
    path = sample_data / "features" / "img00_conv1.npy"
    result = invoke("compare", path, "--n", "3", "--per", "channel", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    x = np.load(path)
    want = {"input": x, "lrn_inter": lrn(x, n=3), "lrn_intra": lrn(x, mode="intra", n=3),
            "batchnorm": batch_norm(x, per="channel")}
    for key, y in want.items():  # (mean and std to float64 rounding: BLAS threads may differ)
        got, expected = doc["columns"][key]["stats"], summarize(y).to_dict()
        assert got == {**expected, "mean": pytest.approx(expected["mean"], rel=1e-12),
                       "std": pytest.approx(expected["std"], rel=1e-12)}
    assert doc["params"]["window_intra"] == "3x3 square (y-1..y+1, x-1..x+1)"
    assert doc["params"]["batch"] == "axis 0 of the input (its 16 channels taken as samples)"
    assert [li[:6] for li in result.stderr.splitlines()] == ["hint: "]  # ... is the only input


def test_table_at_width_100(invoke, sample_data):
    result = invoke("compare", sample_data / "seed_batch", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    head = lines.index(next(li for li in lines if li.startswith(" statistic")))
    assert " ".join(" ".join(lines[:head]).split()).endswith(
        "act0.npy, …) (3×4×4×4): statistics after each normalization")
    assert lines[head].split() == ["statistic", "input", "LRN", "inter", "LRN", "intra", "BN"]
    assert lines[head + 2].split() == ["min", "-6", "-3.561", "-3.54", "-1.225"]
    assert lines[head + 5].split() == ["std", "4.149", "2.451", "2.417", "1"]
    assert lines[head + 7].startswith(" histogram")
    assert "LRN and BN side by side" in result.stdout
    assert any(line.split()[:3] == ["trainable", "no", "yes"] for line in lines)
    assert all(len(line) <= 100 for line in lines)


def test_convention_without_intra_shows_a_dash(invoke, sample_data):
    result = invoke("compare", sample_data / "seed_inter.npy", "--convention", "pytorch")
    assert result.exit_code == 0, result.output
    row = next(li for li in result.stdout.splitlines() if li.lstrip().startswith("mean"))
    assert row.split()[3] == "–"
    assert "the pytorch convention has no within-channel LRN" in " ".join(result.stdout.split())
    doc = json.loads(invoke("compare", sample_data / "seed_inter.npy", "--convention",
                            "pytorch", "--json").stdout)
    assert doc["columns"]["lrn_intra"]["stats"] is None


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--convention", "caffe", "--n", "4"], 2, "must be odd"),
    (["--eps", "-1"], 2, "must be finite and > 0"),
])
def test_errors(invoke, sample_data, args, code, message):
    result = invoke("compare", sample_data / "seed_inter.npy", *args)
    assert result.exit_code == code and message in result.stderr


def test_batch_of_one_is_a_data_error(invoke, save):
    result = invoke("compare", save("one.npy", np.ones((1, 2, 2))))
    assert result.exit_code == 1 and "one.npy: " in result.stderr


def test_renderables():
    s = summarize(np.arange(10.0))
    out = render(compare_table([("input", s), ("none", None)], title="t", caption="c"))
    assert out.splitlines()[0] == "t"
    assert next(li for li in out.splitlines() if "max" in li).split() == ["max", "9", "–"]
    out = render(lrn_vs_bn_table(), 120)
    for label, _, _ in LRN_VS_BN:
        assert label in out


def test_one_input_given_as_a_directory_is_not_stacked(tmp_path):
    """A directory holding one array is that array, not a stack of one."""
    from click.testing import CliRunner

    from normcli.cli.main import cli

    (tmp_path / "one").mkdir()
    np.save(tmp_path / "one" / "x.npy", np.random.default_rng(0).random((5, 6, 7)))
    result = CliRunner().invoke(cli, ["compare", str(tmp_path / "one")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert "over a batch of 5: axis 0 of the input (its 5 channels taken as samples)" in \
        " ".join(result.stdout.split())
