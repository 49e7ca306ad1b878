"""Options before the command: `normcli --json stats x` is `normcli stats --json x`."""

from __future__ import annotations

import json

import numpy as np
from clihelp import usage_error


def test_json_before_the_command_is_the_command_s(invoke, sample_data):
    path = sample_data / "seed_inter.npy"
    before = invoke("--json", "stats", path)
    after = invoke("stats", path, "--json")
    assert before.exit_code == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)


def test_options_with_values_and_flags_before_the_command(invoke, sample_data, tmp_path):
    result = invoke("-q", "--force", "-o", "y.npy", "lrn", sample_data / "seed_inter.npy")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert np.load(tmp_path / "y.npy").shape == (4, 3, 3)


def test_before_a_two_word_command(invoke):
    result = invoke("--json", "explain", "lrn")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["normalization"] == "lrn"


def test_an_option_the_command_lacks_is_refused_by_that_command(invoke, sample_data):
    line = usage_error(invoke("--preview", "p.png", "stats", sample_data / "seed_inter.npy"))
    assert "No such option" in line and "--preview" in line


def test_without_a_command_the_error_says_where_options_go(invoke):
    line = usage_error(invoke("--json"))
    assert "put it after the command" in line
    assert "--version" not in line  # (click's "Did you mean '--version'?")


def test_help_and_version_stay_the_group_s(invoke):
    assert "Commands:" in invoke("--help", "lrn").stdout
    assert invoke("-V", "stats").stdout.startswith("normcli, version")
