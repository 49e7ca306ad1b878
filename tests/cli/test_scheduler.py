"""``--scheduler`` on the command line, without a cluster: the missing extra, refusals, imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
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


def test_an_address_dask_cannot_parse_is_refused_before_connecting(invoke, save, tmp_path):
    """An unknown scheme, no port, a bad port: a traceback after Dask's 20 s wait."""
    import time

    save("x.npy", np.ones((2, 3), np.float32))
    start = time.monotonic()
    for address, said in (("foo://x:1", "unknown address scheme 'foo'"),
                          ("tcp://", "missing port number"),
                          ("tcp://[::1", "invalid address"),
                          ("tcp://127.0.0.1:notaport", "notaport"),
                          ("tcp://127.0.0.1:99999", "port 99999 is not in 1..65535")):
        line = usage_error(invoke("stats", "x.npy", "--scheduler", address))
        assert f"--scheduler {address!r} is not a scheduler address: " in line, line
        assert said in line, line
    assert time.monotonic() - start < 10


def test_a_scheduler_file_that_is_not_one_names_the_file(invoke, save, tmp_path):
    save("x.npy", np.ones((2, 3), np.float32))
    for content, said in (("{garbage", "not a scheduler file (JSON)"),
                          ("[]", 'no "address" string in it'),
                          ('{"address": 5}', 'no "address" string in it'),
                          ("", "not a scheduler file (JSON)"),
                          ('{"address": "foo://x:1"}', "is not a scheduler address")):
        (tmp_path / "s.json").write_text(content)
        line = one_line_error(invoke("stats", "x.npy", "--scheduler", "s.json"))
        assert line.startswith("normcli: error: s.json: "), line
        assert said in line, line
