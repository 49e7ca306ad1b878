"""normcli explain: the numbers of one position equal the library's, and how they are shown."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pytest
from rich.console import Console

from normcli import batch_norm, lrn
from normcli.ops.conventions import CONVENTIONS
from normcli.ops.explain import (
    SEED_BATCH,
    SEED_INTER,
    SEED_INTRA,
    axis_names,
    check_position,
    explain_batch_norm,
    explain_lrn,
)
from normcli.render.explain import bn_equation, bn_explanation, lrn_equation, lrn_explanation


def render(renderable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def positions(shape):
    return itertools.product(*(range(s) for s in shape))


# --------------------------------------------------------------------------- numbers


LRN_CASES = [
    (name, mode, n)
    for name, c in CONVENTIONS.items()
    for mode in c.modes
    for n in (1, 2, 3, 4)
    if not (c.n_odd and n % 2 == 0)
]


@pytest.mark.parametrize(("convention", "mode", "n"), LRN_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_lrn_explanation_equals_the_library_everywhere(convention, mode, n, channels_last):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, 5, 4, 3) if not channels_last else (2, 4, 3, 5))
    c = CONVENTIONS[convention]
    kw = dict(mode=mode, convention=convention, n=n, k=max(c.k_min, 0.5), alpha=0.7, beta=0.75)
    y = lrn(x, channels_last=channels_last, **kw)
    for pos in positions(x.shape):
        e = explain_lrn(x, pos, channels_last=channels_last, **kw)
        assert e.result == pytest.approx(y[pos], rel=1e-12, abs=1e-15)
        assert e.value == x[pos]
        assert e.sum_squares == pytest.approx(np.sum(e.values**2), rel=1e-15)
        assert e.denominator == e.params.k_eff + e.params.alpha_eff * e.sum_squares


@pytest.mark.parametrize(("convention", "mode"), [(n, m) for n, c in CONVENTIONS.items()
                                                   for m in c.modes])
def test_lrn_explanation_with_defaults_3d_and_2d(convention, mode):
    x = np.random.default_rng(1).standard_normal((6, 5, 4))
    for arr in (x, x[0]):
        y = lrn(arr, mode=mode, convention=convention)
        for pos in positions(arr.shape):
            e = explain_lrn(arr, pos, mode=mode, convention=convention)
            assert e.result == pytest.approx(y[pos], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_bn_explanation_equals_the_library_everywhere(per, channels_last):
    x = np.random.default_rng(2).normal(3, 2, size=(3, 4, 3, 5))
    kw = dict(per=per, eps=1e-5, gamma=1.5, beta=-0.25)
    y = batch_norm(x, channels_last=channels_last, **kw)
    for pos in positions(x.shape):
        e = explain_batch_norm(x, pos, channels_last=channels_last, **kw)
        assert e.result == pytest.approx(y[pos], rel=1e-12, abs=1e-12)
        assert e.normalized == pytest.approx((e.value - e.mean) / np.sqrt(e.var + 1e-5))


def test_bn_explanation_2d_batch_and_statistics():
    x = np.random.default_rng(3).standard_normal((5, 7))
    y = batch_norm(x)
    for pos in positions(x.shape):
        assert explain_batch_norm(x, pos).result == pytest.approx(y[pos], rel=1e-12, abs=1e-12)
    e = explain_batch_norm(SEED_BATCH, (1, 2, 3, 0), per="channel")
    channel = SEED_BATCH[:, 2].astype(np.float64)
    assert e.count == 48 and e.values.tolist() == channel.reshape(-1)[:8].tolist()
    assert e.mean == pytest.approx(5.1875) and e.var == pytest.approx(channel.var())


def test_seed_examples():
    e = explain_lrn(SEED_INTER, (0, 0, 0), k=0, alpha=1, beta=1, n=2)
    assert (e.channels, e.nominal, e.clipped) == ((0, 1), ((-1, 1),), True)
    assert lrn_equation(e) == "b = 1 / (1² + 1²) = 0.5"
    e = explain_lrn(SEED_INTER, (2, 2, 1), k=0, alpha=1, beta=1, n=2)
    assert lrn_equation(e) == "b = 3 / (2² + 3² + 4²) = 0.103448"
    e = explain_lrn(SEED_INTRA, (4, 4), mode="intra", k=0, alpha=1, beta=1, n=2)
    assert (e.rows, e.cols, e.result) == ((3, 4), (3, 4), 0.3)
    e = explain_batch_norm(SEED_BATCH, (0, 0, 0, 0))
    assert bn_equation(e) == "y = 1 · (-4 - (-3)) / sqrt(0.666667 + 1e-05) + 0 = -1.22474"


def test_all_zero_window_with_k0_is_0_like_the_library():
    x = np.zeros((3, 2, 2))
    e = explain_lrn(x, (1, 0, 0), k=0, alpha=1, beta=1, n=2)
    assert e.result == 0 and lrn(x, k=0, alpha=1, beta=1, n=2)[1, 0, 0] == 0


def test_check_position_messages():
    names = axis_names(3)
    assert check_position((4, 3, 3), (3, 2, 2), names) == (3, 2, 2)
    with pytest.raises(ValueError, match=r"has 2 indices but the array has 3 axes \(C, H, W\)"):
        check_position((4, 3, 3), (0, 0), names)
    with pytest.raises(ValueError, match=r"index 4 is out of range for axis 0 \(C\) of size 4: "
                       r"allowed 0..3"):
        check_position((4, 3, 3), (4, 0, 0), names)
    with pytest.raises(ValueError, match="index -1 is out of range"):
        check_position((4, 3, 3), (0, -1, 0), names)


def test_explanation_views_at_width_100():
    e = explain_lrn(SEED_INTER, (0, 0, 0), k=0, alpha=1, beta=1, n=2)
    out = render(lrn_explanation(e, source="seed_inter.npy"))
    lines = [line.rstrip() for line in out.splitlines()]
    assert "LRN inter-channel, seed convention: window c-1..c+1, n=2, k=0, alpha=1, beta=1" in out
    assert "neighbourhood: channels c-1..c+1 = -1..1; channel -1 does not exist, so 0..1" in out
    assert "  b = 1 / (1² + 1²) = 0.5" in lines
    row = next(line for line in lines if line.lstrip().startswith("denominator"))
    assert row.split()[-1] == "2" and "0 + 2" in row
    assert all(len(line) <= 100 for line in lines)

    e = explain_batch_norm(SEED_BATCH, (2, 0, 0, 0))
    out = render(bn_explanation(e, source="seed_batch/"))
    assert "position: (2, 0, 0, 0) = sample 2, activation (0, 0, 0): x = -2" in out
    assert "(-4 + (-3) + (-2)) / 3" in out
    assert any(line.split()[:3] == ["2", "-2", "1"] and "this sample" in line
               for line in out.splitlines())


# --------------------------------------------------------------------------- CLI


def test_cli_seed_example(invoke, sample_data):
    result = invoke("explain", "lrn", sample_data / "seed_inter.npy", "--mode", "inter",
                    "--k", "0", "--alpha", "1", "--beta", "1", "--n", "2", "--at", "0,0,0",
                    env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "  b = 1 / (1² + 1²) = 0.5" in result.stdout.splitlines()
    assert result.stderr == ""


SEED_PARAMS = ("--n", "2", "--k", "0", "--alpha", "1", "--beta", "1")


def test_cli_builtin_examples(invoke):
    out = invoke("explain", "lrn", *SEED_PARAMS).stdout
    assert "built-in example" in out and "b = 1 / (1² + 1²) = 0.5" in out
    out = invoke("explain", "lrn", "--mode", "intra", "--at", "1,1", *SEED_PARAMS).stdout
    assert "b = 1 / (1² + 0² + 2² + 0² + 1² + 0² + 3² + 0² + 1²) = 0.0625" in out
    out = invoke("explain", "batchnorm", "--at", "0,0,0,1").stdout
    assert "y = 1 · (-2 - 0) / sqrt(8 + 1e-05) + 0 = -0.707106" in out


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_cli_json_equals_the_library(invoke, save, convention):
    x = np.random.default_rng(4).standard_normal((5, 4, 4))
    path = save("x.npy", x)
    result = invoke("explain", "lrn", path, "--convention", convention, "--n", "3",
                    "--at", "2,3,1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    want = lrn(x, convention=convention, n=3)[2, 3, 1]
    assert doc["result"] == pytest.approx(want, rel=1e-12)
    assert doc["channels"] == ([0, 1, 2, 3, 4] if convention == "tensorflow" else [1, 2, 3])


def test_cli_batchnorm_stacks_inputs(invoke, sample_data):
    result = invoke("explain", "batchnorm", sample_data / "seed_batch", "--at", "1,1,2,3",
                    "--json")
    doc = json.loads(result.stdout)
    x = np.stack([np.load(sample_data / f"seed_batch/act{i}.npy") for i in range(3)])
    assert doc["values"] == x[:, 1, 2, 3].tolist()
    assert doc["result"] == pytest.approx(batch_norm(x.astype(np.float64))[1, 1, 2, 3])


@pytest.mark.parametrize(("at", "message"), [
    ("0,0", "Invalid value for '--at': 0,0 has 2 indices but the array has 3 axes (C, H, W) "
            "of shape (4, 3, 3): give 3"),
    ("0,3,0", "Invalid value for '--at': 0,3,0 index 3 is out of range for axis 1 (H) of "
              "size 3: allowed 0..2"),
    ("0,x,0", "Invalid value for '--at': '0,x,0': 'x' is not an integer; give "
              "comma-separated indices such as 0,0,0"),
    ("0,,0", "'(empty)' is not an integer"),
])
def test_cli_bad_position_is_a_usage_error(invoke, sample_data, at, message):
    result = invoke("explain", "lrn", sample_data / "seed_inter.npy", "--at", at)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_cli_bad_settings_and_data(invoke, save):
    result = invoke("explain", "lrn", "--convention", "onnx", "--mode", "intra")
    assert result.exit_code == 2 and "not available in the onnx convention" in result.stderr
    result = invoke("explain", "batchnorm", save("one.npy", np.ones((1, 3))))
    assert result.exit_code == 1 and "batch of one" in result.stderr
    result = invoke("explain", "batchnorm", "--eps", "0")
    assert result.exit_code == 2


@pytest.mark.parametrize("per", ["activation", "channel"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_bn_explanation_with_saved_statistics_equals_inference(per, channels_last):
    """stats=: the saved mean and variance of the position's statistic, as
    batch_norm(x, mean=, var=) uses them; this batch's values do not enter."""
    import normcli

    rng = np.random.default_rng(9)
    train = rng.normal(3, 2, (6, 3, 4, 5))
    x = rng.normal(0, 1, (2, 3, 4, 5))  # another batch: a batch of one is fine too
    if channels_last:
        train, x = np.moveaxis(train, 1, -1).copy(), np.moveaxis(x, 1, -1).copy()
    stats = normcli.batch_stats(train, per=per, channels_last=channels_last)
    want = batch_norm(x, per=per, mean=stats.mean, var=stats.var, gamma=1.5, beta=0.25,
                      channels_last=channels_last)
    for pos in [(0, 0, 0, 0), (1, 2, 3, 2), (1, 1, 2, 4)]:
        pos = pos if not channels_last else (pos[0], pos[2], pos[3] % 4, pos[1])
        e = explain_batch_norm(x, pos, per=per, gamma=1.5, beta=0.25,
                               channels_last=channels_last, stats=stats)
        assert e.saved and e.count == stats.count
        assert e.result == pytest.approx(float(want[pos]), rel=1e-12, abs=1e-12)
        view = bn_explanation(e, source="x.npy", stats_source="s.npz")
        text = " ".join(render(view, 200).split())
        assert "saved (s.npz)" in text and "μ, saved" in text
    with pytest.raises(ValueError, match="statistics are per"):
        fewer = x[..., :2] if channels_last else x[:, :2]  # two channels of three
        explain_batch_norm(fewer, (0, 0, 0, 0), per=per, stats=stats,
                           channels_last=channels_last)


def test_explain_batchnorm_stats_on_the_command_line(invoke, tmp_path):
    """--stats FILE.npz takes per from the file; a contradicting --per is refused."""
    import normcli

    rng = np.random.default_rng(2)
    np.save(tmp_path / "train.npy", rng.normal(5, 3, (8, 2, 3, 3)).astype(np.float32))
    np.save(tmp_path / "new.npy", rng.normal(5, 3, (1, 2, 3, 3)).astype(np.float32))
    assert invoke("batchnorm", "train.npy", "--per", "channel", "--save-stats", "s.npz",
                  "-q").exit_code == 0
    result = invoke("explain", "batchnorm", "new.npy", "--at", "0,1,2,2", "--stats", "s.npz",
                    "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["statistics"] == "saved" and data["per"] == "channel"
    with np.load(tmp_path / "s.npz") as s:
        want = normcli.batch_norm(np.load(tmp_path / "new.npy"), per="channel",
                                  mean=s["mean"], var=s["var"])
    assert data["result"] == pytest.approx(float(want[0, 1, 2, 2]), rel=1e-6)
    result = invoke("explain", "batchnorm", "new.npy", "--at", "0,1,2,2", "--stats", "s.npz",
                    "--per", "activation")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("normcli: error: s.npz: holds statistics per channel, "
                                     "but --per activation was given")


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_bn_explanation_with_array_gamma_and_beta(per):
    """Arrays of γ and β (broadcasting to the statistics' shape, as batch_norm takes
    them): the explanation uses their element for the position's statistic."""
    rng = np.random.default_rng(3)
    x = rng.normal(2, 3, (5, 3, 4, 4))
    shape = (3, 4, 4) if per == "activation" else (3,)
    gamma, beta = rng.uniform(0.5, 2, shape), rng.normal(0, 1, shape)
    want = batch_norm(x, per=per, gamma=gamma, beta=beta)
    for pos in [(0, 0, 0, 0), (4, 2, 3, 1), (2, 1, 0, 3)]:
        e = explain_batch_norm(x, pos, per=per, gamma=gamma, beta=beta)
        assert e.result == pytest.approx(float(want[pos]), rel=1e-12, abs=1e-12)
    with pytest.raises(ValueError, match="gamma has shape"):
        explain_batch_norm(x, (0, 0, 0, 0), per=per, gamma=np.ones(7))
    bad = gamma.copy()
    bad.flat[-1] = np.nan  # not the element explained: refused all the same, as batch_norm
    with pytest.raises(ValueError, match="gamma holds non-finite values"):
        explain_batch_norm(x, (0, 0, 0, 0), per=per, gamma=bad)


def test_explain_batchnorm_gamma_file_on_the_command_line(invoke, tmp_path):
    """--gamma FILE.npy as in batchnorm; a file of the wrong shape is named."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (4, 2, 3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    gamma = rng.uniform(1, 2, (2,))
    np.save(tmp_path / "g.npy", gamma)
    np.save(tmp_path / "bad.npy", np.ones(5))
    result = invoke("explain", "batchnorm", "x.npy", "--per", "channel", "--at", "3,1,2,0",
                    "--gamma", "g.npy", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    want = batch_norm(x.astype(np.float64), per="channel", gamma=gamma)[3, 1, 2, 0]
    assert data["gamma"] == gamma[1] and data["result"] == pytest.approx(float(want), rel=1e-12)
    result = invoke("explain", "batchnorm", "x.npy", "--per", "channel", "--gamma", "bad.npy")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("normcli: error: bad.npy: gamma has shape (5,)")


@pytest.mark.parametrize("args", [(), ("--mode", "intra"), SEED_PARAMS, ("--n", "3"),
                                  ("--convention", "pytorch", "--at", "1,2,0")])
def test_builtin_example_and_the_same_data_from_its_file_agree(invoke, sample_data, args):
    """`explain lrn` once used (n, k, alpha, beta) = (2, 0, 1, 1) and `explain lrn
    sample_data/seed_inter.npy` the defaults: two answers for the same data."""
    name = "seed_intra.npy" if "intra" in args else "seed_inter.npy"
    builtin = invoke("explain", "lrn", *args, "--json")
    from_file = invoke("explain", "lrn", sample_data / name, *args, "--json")
    assert builtin.exit_code == from_file.exit_code == 0, builtin.stderr + from_file.stderr
    assert json.loads(builtin.stdout) == json.loads(from_file.stdout)
    text = invoke("explain", "lrn", *args).stdout
    assert text.splitlines()[2:] == invoke("explain", "lrn", sample_data / name, *args
                                           ).stdout.splitlines()[2:]  # (all but the input)


def test_the_parameters_not_given_are_named_with_their_defaults(invoke):
    out = " ".join(invoke("explain", "lrn").stdout.split())
    assert ("parameters: n, k, alpha, beta not given: the seed convention's defaults (n=5, "
            "k=2, alpha=0.0001, beta=0.75), as for normcli lrn") in out
    out = " ".join(invoke("explain", "lrn", "--convention", "caffe", "--n", "3").stdout.split())
    assert "k, alpha, beta not given: the caffe convention's defaults (k=1, alpha=1, beta=0.75)" \
        in out
    assert "not given" not in invoke("explain", "lrn", *SEED_PARAMS, "--at", "0,0,0").stdout


@pytest.mark.parametrize("command", ["lrn", "batchnorm"])
def test_on_a_sparse_relu_map_the_default_position_is_not_a_zero(invoke, sample_data, command):
    path = sample_data / "features" / "img00_conv1.npy"
    x = np.load(path)
    assert x[0, 0, 0] == 0  # (so --at 0,0,0 explained a zero)
    doc = json.loads(invoke("explain", command, path, "--json").stdout)
    assert doc["value"] != 0
    first = np.flatnonzero(x)[0]
    assert tuple(doc["position"]) == np.unravel_index(first, x.shape)
    assert doc["notes"][-1] == "--at not given: explaining the first value that is not 0"
    out = invoke("explain", command, path).stdout
    assert "--at not given: explaining the first value that is not 0" in out
    at = "0,0,0"
    given = json.loads(invoke("explain", command, path, "--at", at, "--json").stdout)
    assert given["value"] == 0 and not any("--at" in note for note in given["notes"])


def test_explain_lrn_help_holds_the_conventions_table_it_refers_to(invoke):
    from normcli.cli.conventions import conventions_text

    help_text = invoke("explain", "lrn", "--help").stdout
    assert "follow --convention:" in " ".join(help_text.split())
    for line in conventions_text().splitlines()[1:]:
        assert line.strip() in help_text, line
