"""``normcli batchnorm``: the batch, saved statistics, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clihelp import one_line_error, usage_error

import normcli


@pytest.fixture
def batch(save):
    """Five (3, 4, 5) float32 samples in ``feats/``, and their stack."""
    rng = np.random.default_rng(5)
    xs = rng.normal(2, 3, size=(5, 3, 4, 5)).astype(np.float32)
    for i, x in enumerate(xs):
        save(f"feats/s{i}.npy", x)
    return xs


def test_seed_batch_per_activation(invoke, sample_data, tmp_path):
    result = invoke("batchnorm", sample_data / "seed_batch", "-o", "normed/")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "normed").iterdir()) == [
        "act0.npy", "act1.npy", "act2.npy"]
    out = [np.load(tmp_path / "normed" / f"act{i}.npy") for i in range(3)]
    for (c, r, col), want in {
        (0, 0, 0): (-1.224736, 0.0, 1.224736),
        (0, 0, 1): (-0.707106, -0.707106, 1.414213),
        (1, 2, 3): (1.414210, -0.707105, -0.707105),
    }.items():
        got = [float(o[c, r, col]) for o in out]
        np.testing.assert_allclose(got, want, atol=2e-6)
    assert result.stderr.splitlines()[0] == (
        "batch norm per activation (batch statistics): eps=1e-05, gamma=1, beta=0")
    assert result.stderr.strip().splitlines()[-1] == "wrote 3 files to normed"


def test_seed_batch_per_channel(invoke, sample_data, tmp_path):
    result = invoke("batchnorm", sample_data / "seed_batch", "--per", "channel", "-o", "n/",
                    "--save-stats", "s.npz")
    assert result.exit_code == 0, result.stderr
    assert np.load(tmp_path / "n" / "act0.npy")[0, 0, 0] == pytest.approx(-1.338321, abs=2e-6)
    with np.load(tmp_path / "s.npz") as s:
        np.testing.assert_allclose(s["mean"], [0.625, 3, 5.1875, 6.9375])
        np.testing.assert_allclose(s["var"], [11.9427, 11.25, 11.6107, 11.6419], atol=1e-4)
    assert result.stderr.strip().splitlines()[-1] == (
        "wrote 3 files to n; statistics saved to s.npz")


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_directory_equals_library_on_stack(invoke, batch, tmp_path, per):
    result = invoke("batchnorm", "feats", "--per", per, "-o", "out/")
    assert result.exit_code == 0, result.stderr
    want = normcli.batch_norm(batch, per=per)
    got = np.stack([np.load(tmp_path / "out" / f"s{i}.npy") for i in range(5)])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_directory_with_gamma_beta(invoke, batch, save, tmp_path, per):
    shape = batch.shape[1:] if per == "activation" else (batch.shape[1],)
    gamma = np.linspace(0.5, 2, int(np.prod(shape))).reshape(shape)
    save("gamma.npy", gamma)
    result = invoke("batchnorm", "feats", "--per", per, "--gamma", "gamma.npy",
                    "--beta", "0.25", "--eps", "0.001", "-o", "out.npy")
    assert result.exit_code == 0, result.stderr
    want = normcli.batch_norm(batch, per=per, gamma=gamma, beta=0.25, eps=1e-3)
    got = np.load(tmp_path / "out.npy")  # several inputs into one .npy: stacked
    assert got.shape == batch.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert result.stderr.splitlines()[0] == (
        f"batch norm per {per} (batch statistics): eps=0.001, gamma=gamma.npy, beta=0.25")


@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_single_input_is_its_first_axis(invoke, batch, save, tmp_path, per, channels_last):
    x = np.moveaxis(batch, 1, -1).copy() if channels_last else batch
    save("batch.npy", x)
    flags = ["--channels-last"] if channels_last else []
    result = invoke("batchnorm", "batch.npy", "--per", per, *flags, "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "y.npy"),
        normcli.batch_norm(x, per=per, channels_last=channels_last))


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_save_stats_contents(invoke, batch, tmp_path, per):
    result = invoke("batchnorm", "feats", "--per", per, "--save-stats", "train.npz", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    axes = (0,) if per == "activation" else (0, 2, 3)
    x = batch.astype(np.float64)
    with np.load(tmp_path / "train.npz") as s:
        assert sorted(s.files) == ["count", "mean", "per", "var", "var_unbiased"]
        assert str(s["per"]) == per
        count = 5 if per == "activation" else 5 * 4 * 5
        assert int(s["count"]) == count
        np.testing.assert_allclose(s["mean"], x.mean(axis=axes), rtol=1e-6)
        np.testing.assert_allclose(s["var"], x.var(axis=axes), rtol=1e-6)
        np.testing.assert_allclose(s["var_unbiased"], x.var(axis=axes, ddof=1), rtol=1e-6)
    # without -o nothing else is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats", "train.npz"]


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_stats_round_trip_equals_training(invoke, batch, tmp_path, per):
    first = invoke("batchnorm", "feats", "--per", per, "--save-stats", "train.npz",
                   "-o", "train_out/")
    assert first.exit_code == 0, first.stderr
    second = invoke("batchnorm", "feats", "--stats", "train.npz", "-o", "infer_out/")
    assert second.exit_code == 0, second.stderr
    assert second.stderr.splitlines()[0] == (
        f"batch norm per {per} (saved statistics train.npz): eps=1e-05, gamma=1, beta=0")
    for i in range(5):
        np.testing.assert_allclose(np.load(tmp_path / f"infer_out/s{i}.npy"),
                                   np.load(tmp_path / f"train_out/s{i}.npy"),
                                   rtol=1e-6, atol=1e-6)


def test_stats_on_new_data_equals_library(invoke, batch, save, tmp_path):
    assert invoke("batchnorm", "feats", "--per", "channel", "--save-stats", "t.npz",
                  "-q").exit_code == 0
    new = np.random.default_rng(9).normal(size=(2, 3, 4, 5)).astype(np.float32)
    save("new.npy", new)
    result = invoke("batchnorm", "new.npy", "--stats", "t.npz", "--gamma", "2", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    with np.load(tmp_path / "t.npz") as s:
        want = normcli.batch_norm(new, per="channel", mean=s["mean"], var=s["var"], gamma=2.0)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_json_numbers_match_numpy(invoke, batch):
    result = invoke("batchnorm", "feats", "--per", "channel", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert doc["params"]["per"] == "channel" and doc["params"]["eps"] == 1e-5
    y = normcli.batch_norm(batch, per="channel")
    assert len(doc["inputs"]) == 5
    for i, entry in enumerate(doc["inputs"]):
        assert entry["label"] == f"feats/s{i}.npy"
        assert entry["before"]["mean"] == pytest.approx(float(batch[i].mean(dtype=np.float64)))
        assert entry["after"]["mean"] == pytest.approx(float(y[i].mean(dtype=np.float64)),
                                                       abs=1e-6)
        assert entry["after"]["max"] == pytest.approx(float(y[i].max()), rel=1e-6)
    assert doc["total"]["after"]["std"] == pytest.approx(float(y.std(dtype=np.float64)),
                                                         rel=1e-5)


def test_help_shows_examples(invoke):
    result = invoke("batchnorm", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "normcli batchnorm new/ --stats train.npz -o new_normed/" in result.stdout


# ------------------------------------------------------------------- errors


def test_mismatched_shapes_in_batch(invoke, batch, save, tmp_path, files_in):
    save("feats/s9.npy", np.zeros((3, 4, 6), np.float32))
    result = invoke("batchnorm", "feats", "-o", "out/", "--save-stats", "s.npz")
    line = one_line_error(result)
    assert line == ("normcli: error: feats/s9.npy: has shape (3, 4, 6) but feats/s0.npy has "
                    "(3, 4, 5); the samples of a batch need one shape")
    assert files_in(tmp_path / "out") == []
    assert not (tmp_path / "s.npz").exists()


def test_wrong_shape_gamma_file(invoke, batch, save, tmp_path):
    save("gamma.npy", np.ones(4))
    result = invoke("batchnorm", "feats", "--per", "channel", "--gamma", "gamma.npy",
                    "-o", "out.npz")
    line = one_line_error(result)
    assert line.startswith("normcli: error: ")
    assert "gamma has shape (4,)" in line and "(3,)" in line
    assert not (tmp_path / "out.npz").exists()


def test_missing_gamma_file(invoke, batch, tmp_path):
    result = invoke("batchnorm", "feats", "--gamma", "nope.npy", "-o", "out.npy")
    assert one_line_error(result) == "normcli: error: nope.npy: no such file"
    assert not (tmp_path / "out.npy").exists()


def test_stats_with_wrong_per(invoke, batch, tmp_path, files_in):
    assert invoke("batchnorm", "feats", "--per", "channel", "--save-stats", "t.npz",
                  "-q").exit_code == 0
    result = invoke("batchnorm", "feats", "--per", "activation", "--stats", "t.npz",
                    "-o", "out/")
    assert one_line_error(result) == (
        "normcli: error: t.npz: holds statistics per channel, but --per activation was given")
    assert files_in(tmp_path / "out") == []


@pytest.mark.parametrize("many", [False, True], ids=["one input", "directory"])
def test_stats_with_wrong_shape(invoke, batch, save, tmp_path, files_in, many):
    assert invoke("batchnorm", "feats", "--per", "channel", "--save-stats", "t.npz",
                  "-q").exit_code == 0
    if many:
        for i in range(3):
            save(f"other/o{i}.npy", np.ones((7, 4, 5), np.float32))
        args, label = ["other"], "other/o0.npy"
    else:
        save("other.npy", np.ones((2, 7, 4, 5), np.float32))
        args, label = ["other.npy"], "other.npy"
    result = invoke("batchnorm", *args, "--stats", "t.npz", "-o", "out/")
    assert one_line_error(result) == (
        f"normcli: error: {label}: needs statistics of shape (7,) per channel, but t.npz "
        "holds shape (3,)")
    assert files_in(tmp_path / "out") == []


def test_stats_file_missing(invoke, batch):
    result = invoke("batchnorm", "feats", "--stats", "none.npz")
    line = one_line_error(result)
    assert line.startswith("normcli: error: none.npz: ")
    assert "no such file" in line


def test_stats_file_not_statistics(invoke, batch, tmp_path):
    np.savez(tmp_path / "junk.npz", mean=np.zeros(3))
    result = invoke("batchnorm", "feats", "--stats", "junk.npz")
    assert one_line_error(result) == (
        "normcli: error: junk.npz: not usable statistics: statistics lack var, count, per")


def test_batch_of_one_sample_per_activation(invoke, save, tmp_path):
    save("x.npy", np.ones((1, 3, 4, 4), np.float32))
    result = invoke("batchnorm", "x.npy", "-o", "out.npy")
    line = one_line_error(result)
    assert line.startswith("normcli: error: x.npy: x has shape (1, 3, 4, 4): a batch of one ")
    assert not (tmp_path / "out.npy").exists()


def test_existing_save_stats_needs_force(invoke, batch, tmp_path):
    (tmp_path / "t.npz").write_bytes(b"old")
    result = invoke("batchnorm", "feats", "--save-stats", "t.npz", "-o", "out/")
    assert one_line_error(result) == (
        "normcli: error: t.npz: exists (use --force to replace it)")
    assert (tmp_path / "t.npz").read_bytes() == b"old"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert invoke("batchnorm", "feats", "--save-stats", "t.npz", "--force",
                  "-q").exit_code == 0
    with np.load(tmp_path / "t.npz") as s:
        assert int(s["count"]) == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--save-stats", "a.npz", "--stats", "b.npz"],
         "Error: --save-stats and --stats exclude each other: fit statistics on one run, "
         "apply them on another"),
        (["--eps", "0"], "Error: Invalid value for '--eps': 0.0 must be finite and > 0"),
        (["--eps", "-1"], "Error: Invalid value for '--eps': -1.0 must be finite and > 0"),
        (["--eps", "nan"], "Error: Invalid value for '--eps': nan must be finite and > 0"),
        (["--per", "pixel"],
         "Error: Invalid value for '--per': 'pixel' is not one of 'activation', 'channel'."),
        (["--gamma", "big"],
         "Error: Invalid value for '--gamma': 'big' is neither a number nor a .npy file"),
        (["--save-stats", "s.txt"],
         "Error: Invalid value for '--save-stats': 's.txt' must be a .npz file"),
        (["-o", "x.txt"],
         "Error: Invalid value for '-o': 'x.txt' needs a suffix .npy, .npz, .png, .tif, .tiff, "
         "or a "
         "trailing / for a directory"),
    ],
)
def test_usage_errors(invoke, batch, tmp_path, args, message):
    result = invoke("batchnorm", "feats", *args)
    assert usage_error(result) == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats"]


@pytest.mark.parametrize("force", [False, True])
def test_save_stats_same_file_as_output_refused(invoke, batch, tmp_path, force):
    flags = ["--force"] if force else []
    result = invoke("batchnorm", "feats", "-o", "s.npz", "--save-stats", "s.npz", "-q", *flags)
    assert result.exit_code in (1, 2)
    assert "s.npz" in result.stderr
    assert not (tmp_path / "s.npz").exists()


def test_stdin_with_other_inputs_is_read_once(invoke, save, tmp_path):
    """`-` among several inputs: both passes must see it (stdin can be read only once)."""
    rng = np.random.default_rng(11)
    a0, a1 = (rng.standard_normal((3, 4, 4)).astype(np.float32) for _ in range(2))
    save("a0.npy", a0)
    save("a1.npy", a1)
    result = invoke("batchnorm", "-", "a1.npy", "-o", "o.npy", "-q",
                    input=(tmp_path / "a0.npy").read_bytes())
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"),
                               normcli.batch_norm(np.stack([a0, a1])), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flag", ["--gamma", "--beta"])
def test_non_finite_gamma_beta_numbers_are_usage_errors(invoke, batch, flag):
    result = invoke("batchnorm", "feats", flag, "nan", "-o", "o.npy")
    assert f"Invalid value for '{flag}': 'nan' must be a finite number" in usage_error(result)
