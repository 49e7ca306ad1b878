"""``normcli stats``: the statistics of the inputs alone, as a table or JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def arrays(save):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 4, 4)).astype(np.float32)
    a[0, 0] = 0
    b = (rng.random((2, 5)) * 10).astype(np.float64)
    c = np.arange(12, dtype=np.uint8).reshape(3, 4)
    save("d/a.npy", a)
    save("d/b.npy", b)
    save("d/c.npy", c)
    return {"d/a.npy": a, "d/b.npy": b, "d/c.npy": c}


def test_json_numbers_match_numpy(invoke, arrays):
    result = invoke("stats", "d", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert [e["label"] for e in doc["inputs"]] == list(arrays)
    for entry, x in zip(doc["inputs"], arrays.values(), strict=True):
        s = entry["before"]
        assert entry["after"] is None
        assert s["shape"] == list(x.shape) and s["dtype"] == str(x.dtype)
        assert s["size"] == s["count"] == x.size
        assert s["min"] == float(x.min()) and s["max"] == float(x.max())
        assert s["mean"] == pytest.approx(float(x.mean(dtype=np.float64)), rel=1e-12)
        assert s["std"] == pytest.approx(float(x.std(dtype=np.float64)), rel=1e-12)
        assert s["zeros"] == int(np.sum(x == 0)) and s["nonfinite"] == 0
        assert sum(s["hist"]) == x.size
    every = np.concatenate([x.ravel().astype(np.float64) for x in arrays.values()])
    total = doc["total"]["before"]
    assert total["size"] == every.size and total["dtype"] == "mixed"
    assert total["min"] == every.min() and total["max"] == every.max()
    assert total["mean"] == pytest.approx(every.mean(), rel=1e-12)
    assert total["std"] == pytest.approx(every.std(), rel=1e-12)
    assert doc["total"]["after"] is None


def test_table_one_row_per_file_and_total(invoke, arrays):
    result = invoke("stats", "d")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # the table is the result: stdout, one line per input
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "# statistics of the inputs"
    assert lines[1].split() == ["input", "shape", "dtype", "min", "max", "mean", "std", "zeros",
                                "nan/inf", "histogram"]
    assert len(lines) == 2 + len(arrays) + 1
    for label in arrays:
        assert sum(label in line for line in lines) == 1
    assert any(line.startswith("total") and "3-inputs" in line for line in lines)
    assert not any("after" in line for line in lines)
    assert "nothing written" not in result.stderr  # stats writes nothing, so no hint


def test_single_input_has_no_total(invoke, arrays):
    result = invoke("stats", "d/a.npy", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["total"] is None


def test_nonfinite_refused_then_counted(invoke, save):
    save("n.npy", np.array([[1.0, np.nan, np.inf, -np.inf]], np.float32))
    result = invoke("stats", "n.npy", "--json")  # stats counts NaN/Inf, never refuses them
    assert result.exit_code == 0, result.stderr
    s = json.loads(result.stdout)["inputs"][0]["before"]
    assert s["nonfinite"] == 3 and s["count"] == 1 and s["min"] == s["max"] == 1.0


def test_quiet(invoke, arrays):
    result = invoke("stats", "d", "-q")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


def test_stats_has_no_output_option(invoke, arrays):
    result = invoke("stats", "d", "-o", "x.npy")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("Error: No such option '-o'")


def test_help_shows_examples(invoke):
    result = invoke("stats", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "normcli stats sample_data/features/ --json" in result.stdout


def test_sample_features(invoke, sample_data):
    result = invoke("stats", sample_data / "features", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["inputs"]) == 12
    total = doc["total"]["before"]
    assert total["min"] == 0
    assert total["max"] == pytest.approx(17.7932, abs=1e-4)
    assert total["mean"] == pytest.approx(0.5462, abs=1e-4)
    assert total["zeros"] / total["size"] == pytest.approx(0.598, abs=1e-3)
