"""``normcli lrn``: numbers equal the library's, the table, usage errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clihelp import usage_error

import normcli

SEED_INTER_EXPECTED = np.array(
    [
        [[1 / 2, 1 / 2, 1 / 4], [1 / 5, 3 / 25, 1], [0, 1 / 5, -4 / 25]],
        [[1 / 3, 1 / 2, 1 / 6], [2 / 9, 4 / 25, 0], [1 / 2, 1 / 7, 3 / 25]],
        [[1 / 3, 0, 1 / 6], [2 / 9, 0, 0], [1 / 2, 3 / 29, 0]],
        [[1 / 2, 1 / 2, 1 / 4], [1 / 5, 1, 1], [0, 4 / 25, 1 / 5]],
    ]
)
HINT = "nothing written: add -o FILE, -o DIR/ or -o - to save the results"


def test_seed_example_gives_one_half(invoke, sample_data, tmp_path):
    result = invoke("lrn", sample_data / "seed_inter.npy", "--k", "0", "--alpha", "1",
                    "--beta", "1", "--n", "2", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == (4, 3, 3)
    assert y[0, 0, 0] == 0.5
    np.testing.assert_allclose(y, SEED_INTER_EXPECTED, rtol=1e-6, atol=1e-7)
    assert result.stderr.strip().splitlines()[-1] == "wrote y.npy"


def test_seed_intra_example(invoke, sample_data, tmp_path):
    result = invoke("lrn", sample_data / "seed_intra.npy", "--mode", "intra", "--n", "2",
                    "--k", "0", "--alpha", "1", "--beta", "1", "-o", "out.npy")
    assert result.exit_code == 0, result.stderr
    y = np.load(tmp_path / "out.npy")
    assert y.shape == (5, 5)
    for (r, c), want in {(0, 0): 0.5, (0, 4): 1, (4, 0): 0.2, (4, 4): 0.3, (0, 2): 0.4,
                         (1, 1): 1 / 16, (2, 2): 1 / 3}.items():
        assert y[r, c] == pytest.approx(want, rel=1e-6)


def test_alpha_zero_divides_by_k(invoke, sample_data, tmp_path):
    x = np.load(sample_data / "seed_inter.npy")
    result = invoke("lrn", sample_data / "seed_inter.npy", "--k", "2", "--alpha", "0",
                    "--beta", "1", "--n", "2", "-o", "out.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), x / 2)


FLAG_SETS = [
    [],
    ["--mode", "intra"],
    ["--convention", "pytorch", "--n", "4"],
    ["--convention", "onnx", "--n", "4", "--k", "0.5", "--alpha", "0.01"],
    ["--convention", "cudnn", "--mode", "intra", "--n", "3"],
    ["--convention", "caffe", "--n", "3", "--beta", "0.5"],
    ["--convention", "caffe", "--mode", "intra", "--n", "3"],
    ["--convention", "tensorflow", "--n", "1", "--alpha", "0.5"],
    ["--channels-last"],
    ["--convention", "pytorch", "--channels-last", "--n", "2"],
]


def _kwargs(flags: list[str]) -> dict:
    kw: dict = {}
    i = 0
    while i < len(flags):
        name = flags[i].lstrip("-").replace("-", "_")
        if name == "channels_last":
            kw[name] = True
            i += 1
            continue
        value = flags[i + 1]
        kw[name] = int(value) if name == "n" else value if name in ("mode", "convention") \
            else float(value)
        i += 2
    return kw


@pytest.mark.parametrize("flags", FLAG_SETS, ids=[" ".join(f) or "defaults" for f in FLAG_SETS])
def test_output_equals_library(invoke, save, tmp_path, flags):
    rng = np.random.default_rng(7)
    x = rng.normal(0, 3, size=(2, 6, 5, 4)).astype(np.float32)
    save("x.npy", x)
    result = invoke("lrn", "x.npy", *flags, "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    want = normcli.lrn(x, **_kwargs(flags))
    assert y.dtype == want.dtype
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int16", "float16", "float64"])
def test_dtypes_equal_library(invoke, save, tmp_path, dtype):
    x = (np.arange(60).reshape(3, 4, 5) % 7).astype(dtype)
    save("x.npy", x)
    result = invoke("lrn", "x.npy", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    y, want = np.load(tmp_path / "y.npy"), normcli.lrn(x)  # written in the input's float type,
    assert y.dtype == (x.dtype if x.dtype.kind == "f" else np.float32)  # else in float32
    np.testing.assert_array_equal(y, want.astype(y.dtype))


def test_several_inputs_each_equal_library(invoke, save, tmp_path):
    rng = np.random.default_rng(3)
    xs = [rng.random((3, 4, 4), dtype=np.float32) for _ in range(3)]
    for i, x in enumerate(xs):
        save(f"in/x{i}.npy", x)
    result = invoke("lrn", "in", "--n", "3", "-o", "out/")
    assert result.exit_code == 0, result.stderr
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(np.load(tmp_path / f"out/x{i}.npy"), normcli.lrn(x, n=3))


# ----------------------------------------------------------------- the table


def test_table_title_names_effective_parameters(invoke, sample_data):
    result = invoke("lrn", sample_data / "seed_inter.npy")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("LRN inter-channel, seed convention: window c-2..c+2, n=5, k=2, "
                        "alpha=0.0001, beta=0.75")
    assert lines[-1] == HINT


def test_table_title_pytorch_divides_alpha(invoke, sample_data):
    result = invoke("lrn", sample_data / "seed_inter.npy", "--convention", "pytorch")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "LRN inter-channel, pytorch convention: window c-2..c+2, n=5, k=1, "
        "alpha/5=2e-05, beta=0.75"
    )


def test_table_title_intra_window(invoke, sample_data):
    result = invoke("lrn", sample_data / "seed_intra.npy", "--mode", "intra", "--n", "2")
    assert result.exit_code == 0, result.stderr
    title = result.stderr.splitlines()[0]
    assert title.startswith("LRN intra-channel, seed convention: window 3x3 square "
                            "(y-1..y+1, x-1..x+1), n=2")


def test_table_title_caffe_intra_ignores_k(invoke, sample_data):
    result = invoke("lrn", sample_data / "seed_intra.npy", "--mode", "intra", "--n", "3",
                    "--convention", "caffe", "--k", "2")
    assert result.exit_code == 0, result.stderr
    assert "k=1 (k ignored), alpha/9=0.1111" in result.stderr.splitlines()[0]


def test_table_rows_per_file_and_total(invoke, save):
    for name in ("b.npy", "a.npy", "c.npy"):
        save(f"d/{name}", np.ones((2, 3, 3), np.float32))
    result = invoke("lrn", "d")
    assert result.exit_code == 0, result.stderr
    err = result.stderr
    positions = [err.index(f"d/{n}") for n in ("a.npy", "b.npy", "c.npy")]
    assert positions == sorted(positions)
    assert any(line.startswith("total") and "3 inputs" in line for line in err.splitlines())
    assert err.strip().splitlines()[-1] == HINT


def test_quiet_prints_nothing(invoke, save, tmp_path):
    save("x.npy", np.ones((2, 3, 3), np.float32))
    result = invoke("lrn", "x.npy", "-q", "-o", "y.npy")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    assert (tmp_path / "y.npy").exists()


def test_json_numbers_match_numpy(invoke, save):
    rng = np.random.default_rng(11)
    xs = [rng.normal(size=(4, 5, 5)).astype(np.float32) for _ in range(2)]
    xs[0][0, 0, :3] = 0
    for i, x in enumerate(xs):
        save(f"d/x{i}.npy", x)
    result = invoke("lrn", "d", "--json", "--convention", "onnx", "--n", "3")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert doc["params"]["convention"] == "onnx" and doc["params"]["n"] == 3
    assert doc["params"]["window"] == "c-1..c+1"
    assert doc["params"]["alpha_effective"] == pytest.approx(1e-4 / 3)
    assert [i["label"] for i in doc["inputs"]] == ["d/x0.npy", "d/x1.npy"]
    ys = [normcli.lrn(x, convention="onnx", n=3) for x in xs]
    for entry, x, y in zip(doc["inputs"], xs, ys, strict=True):
        for key, data in (("before", x), ("after", y)):
            s = entry[key]
            assert s["shape"] == list(data.shape) and s["dtype"] == "float32"
            assert s["min"] == float(data.min()) and s["max"] == float(data.max())
            assert s["mean"] == pytest.approx(float(data.mean(dtype=np.float64)), rel=1e-12)
            assert s["std"] == pytest.approx(float(data.std(dtype=np.float64)), rel=1e-12)
            assert s["zeros"] == int(np.sum(data == 0)) and s["nonfinite"] == 0
            assert sum(s["hist"]) == data.size
    total = doc["total"]
    both = np.concatenate([y.ravel() for y in ys])
    assert total["after"]["size"] == both.size
    assert total["after"]["mean"] == pytest.approx(float(both.mean(dtype=np.float64)), rel=1e-9)
    assert total["after"]["std"] == pytest.approx(float(both.std(dtype=np.float64)), rel=1e-9)


def test_help_shows_examples_and_conventions(invoke):
    result = invoke("lrn", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "normcli lrn --mode inter x.npy -o y.npy" in result.stdout
    for name in ("seed", "pytorch", "onnx", "cudnn", "caffe", "tensorflow"):
        assert name in result.stdout
    assert result.stderr == ""


# ------------------------------------------------------------ usage errors (exit 2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n", "abc"], "Error: Invalid value for '--n': 'abc' is not a valid integer."),
        (["--mode", "across"],
         "Error: Invalid value for '--mode': 'across' is not one of 'inter', 'intra'."),
        (["--convention", "keras"],
         "Error: Invalid value for '--convention': 'keras' is not one of 'seed', 'pytorch', "
         "'onnx', 'cudnn', 'caffe', 'tensorflow'."),
        (["--mode", "intra", "--convention", "pytorch"],
         "Error: mode='intra' is not available in the pytorch convention (PyTorch "
         "nn.LocalResponseNorm has no within-channel LRN); conventions with an intra-channel "
         "form: seed, cudnn, caffe"),
        (["--convention", "caffe", "--n", "4"],
         "Error: n=4 must be odd in the caffe convention; caffe allows 1 <= n, n odd, k >= 0, "
         "alpha >= 0, beta >= 0"),
        (["--k", "0", "--alpha", "0"],
         "Error: k=0 with alpha=0 makes every denominator 0; give k > 0 or alpha > 0"),
        (["--convention", "cudnn", "--n", "17"],
         "Error: n=17 is out of range; cudnn allows 1 <= n <= 16, k >= 1e-05, alpha >= 0, "
         "beta >= 0.01"),
        (["-o", "x.txt"],
         "Error: Invalid value for '-o': 'x.txt' needs a suffix .npy, .npz, .png, .tif, .tiff, "
         "or a "
         "trailing / for a directory"),
    ],
)
def test_usage_errors(invoke, save, tmp_path, args, message):
    save("x.npy", np.ones((2, 3, 3), np.float32))
    result = invoke("lrn", "x.npy", *args)
    assert usage_error(result) == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_unknown_option(invoke, save):
    save("x.npy", np.ones((2, 3, 3), np.float32))
    result = invoke("lrn", "x.npy", "--frobnicate")
    assert usage_error(result).startswith("Error: No such option '--frobnicate'")


def test_no_input_is_a_usage_error(invoke):
    result = invoke("lrn")
    assert usage_error(result) == ("Error: no inputs given: name files or folders, or "
                                   "--files-from FILE")
