"""``--scheduler`` on the command line, without a cluster: the missing extra, refusals, imports."""

from __future__ import annotations

import subprocess
import sys

from clihelp import one_line_error, usage_error


def test_without_dask_one_line_names_the_extra(invoke, sample_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # (import distributed fails)
    result = invoke("stats", sample_data / "photos", "--per", "channel", "--scheduler", "local")
    assert one_line_error(result) == ('normcli: error: --scheduler: needs dask.distributed: '
                                      'pip install "normcli[dask]"')


def test_what_a_cluster_cannot_do_is_a_usage_error(invoke, sample_data, tmp_path):
    photos = sample_data / "photos"
    for args, said in ((["-o", "-"], "give -o DIR/"), (["-o", "all.npz"], "give -o DIR/"),
                       (["-o", "d/", "--resume", "--stats", "s.npz"], None)):
        result = invoke("lrn", photos, "--scheduler", "local", *args)
        if said is not None:
            assert said in usage_error(result)
        else:
            assert result.exit_code in (1, 2) and "Traceback" not in result.stderr
    result = invoke("lrn", photos, "--scheduler", "local", "-o", "d/", "--resume")
    assert "--resume is for local runs" in usage_error(result)
    assert not (tmp_path / "d").exists()


def test_neither_import_nor_help_imports_dask():
    code = ("import sys, normcli, normcli.runs; from normcli.cli.main import cli\n"
            "try:\n    cli(['lrn', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--scheduler ADDRESS" in result.stdout
