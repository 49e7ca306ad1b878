"""normcli.runs as a library: reports, progress, errors by cause, signals, no click or rich."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import normcli
from normcli import runs
from normcli.cli.main import cli
from normcli.errors import InputError, OutputError, ParameterError, UsageError
from normcli.runs.engine import ThreadEngine


def _dataset(folder: Path, count: int = 5, shape=(4, 6, 7), seed=0) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    batch = (np.random.default_rng(seed).standard_normal((count, *shape)) * 2 + 3).astype(
        np.float32)
    for i, x in enumerate(batch):
        np.save(folder / f"s{i}.npy", x)
    return batch


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _cli(*args: str) -> None:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("per", ["activation", "channel"])
def test_batchnorm_over_a_directory_writes_what_the_command_writes(tmp_path, per):
    _dataset(tmp_path / "d")
    report = runs.batchnorm([tmp_path / "d"], output=f"{tmp_path}/lib/", per=per,
                            save_stats=tmp_path / "lib.npz", jobs=2)
    _cli("batchnorm", tmp_path / "d", "-o", f"{tmp_path}/cli/", "--per", per, "--save-stats",
         tmp_path / "cli.npz", "-q")
    assert _files(tmp_path / "lib") == _files(tmp_path / "cli")
    with np.load(tmp_path / "lib.npz") as a, np.load(tmp_path / "cli.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert report.command == "batchnorm" and report.output_kind == "dir"
    assert [r.label for r in report.inputs] == [str(tmp_path / "d" / f"s{i}.npy")
                                                for i in range(5)]
    assert report.written == [*(str(tmp_path / "lib" / f"s{i}.npy") for i in range(5)),
                              str(tmp_path / "lib.npz")]
    assert report.saved_stats == str(tmp_path / "lib.npz")
    assert report.stats.per == per and report.stats.count == (5 if per == "activation"
                                                              else 5 * 6 * 7)
    assert report.total.before.size == 5 * 4 * 6 * 7


def test_lrn_and_stats_reports(tmp_path):
    batch = _dataset(tmp_path / "d", 3)
    report = runs.lrn([tmp_path / "d"], output=tmp_path / "o.npy", convention="pytorch", n=4)
    want = normcli.lrn(batch, convention="pytorch", n=4)
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), want)
    assert report.written == [str(tmp_path / "o.npy")] and report.output_kind == "file"
    assert report.description.startswith("LRN inter-channel, pytorch convention: window c-2..c+1")
    assert report.params["alpha_effective"] == pytest.approx(1e-4 / 4)
    assert report.inputs[0].after.max == pytest.approx(float(want[0].max()))
    stats = runs.stats([tmp_path / "d"])
    assert [r.after for r in stats.inputs] == [None] * 3 and stats.written == []
    assert stats.total.before.mean == pytest.approx(float(batch.mean(dtype=np.float64)))
    lean = runs.stats([tmp_path / "d"], summaries=False)
    assert [r.before for r in lean.inputs] == [None] * 3 and lean.total is None


def test_nothing_is_written_without_output(tmp_path):
    _dataset(tmp_path / "d", 2)
    report = runs.lrn([tmp_path / "d"])
    assert report.output_kind == "none" and report.written == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_progress_reports_every_stage_in_order(tmp_path):
    _dataset(tmp_path / "d", 6)
    calls, threads = [], set()

    def progress(stage, done, total, nbytes):
        threads.add(threading.current_thread().name)
        calls.append((stage, done, total, nbytes))

    runs.batchnorm([tmp_path / "d"], progress=progress, jobs=3)
    assert [c[0] for c in calls] == ["batch statistics"] * 7 + ["normalizing"] * 7
    for stage in ("batch statistics", "normalizing"):
        mine = [c for c in calls if c[0] == stage]
        assert [c[1] for c in mine] == list(range(7)) and {c[2] for c in mine} == {6}
        assert [c[3] for c in mine] == [i * 4 * 6 * 7 * 4 for i in range(7)]
    calls.clear()
    runs.lrn([tmp_path / "d"], progress=progress)
    assert [c[:3] for c in calls] == [("lrn", i, 6) for i in range(7)]


def test_bad_settings_are_usage_errors_before_anything_is_read(tmp_path):
    missing = [tmp_path / "missing"]
    with pytest.raises(ParameterError) as e:
        runs.batchnorm(missing, eps=0)
    assert (e.value.param, e.value.value) == ("eps", 0)
    with pytest.raises(ParameterError) as e:
        runs.lrn(missing, convention="caffe", n=4)
    assert e.value.param == "n"
    with pytest.raises(ParameterError) as e:
        runs.lrn(missing, jobs=0)
    assert e.value.param == "jobs"
    with pytest.raises(UsageError, match="exclude each other"):
        runs.batchnorm(missing, stats="a.npz", save_stats="b.npz")
    _dataset(tmp_path / "d", 2)
    with pytest.raises(ParameterError) as e:
        runs.lrn([tmp_path / "d"], output=tmp_path / "x.txt")
    assert e.value.param == "output" and e.value.problem.startswith(repr(str(tmp_path / "x.txt")))
    with pytest.raises(UsageError):
        runs.lrn([tmp_path / "d"], output=tmp_path / "o.npy", out_format="png")
    with pytest.raises(ParameterError):
        runs.stats([tmp_path / "d"], output=tmp_path / "o.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_errors_about_parameter_files_name_the_right_file(tmp_path):
    """The beta file is to blame, not the gamma file before it, nor the first input."""
    _dataset(tmp_path / "d", 3, shape=(4, 6, 7))
    np.save(tmp_path / "g.npy", np.ones((4, 1, 1)))
    np.save(tmp_path / "b.npy", np.zeros((5, 1, 1)))
    with pytest.raises(InputError) as e:
        runs.batchnorm([tmp_path / "d"], per="activation", gamma=tmp_path / "g.npy",
                       beta=tmp_path / "b.npy", output=f"{tmp_path}/o/")
    assert e.value.source == str(tmp_path / "b.npy")
    assert "beta has shape (5, 1, 1)" in e.value.problem
    np.save(tmp_path / "g.npy", np.full((4, 1, 1), np.nan))
    with pytest.raises(InputError) as e:
        runs.batchnorm([tmp_path / "d"], gamma=tmp_path / "g.npy", beta=0.5)
    assert e.value.source == str(tmp_path / "g.npy") and "non-finite" in e.value.problem
    assert not (tmp_path / "o").exists()


def test_the_command_line_names_the_beta_file_too(tmp_path, invoke):
    _dataset(tmp_path / "d", 3)
    np.save(tmp_path / "g.npy", np.ones((4, 1, 1)))
    np.save(tmp_path / "b.npy", np.zeros((5, 1, 1)))
    result = invoke("batchnorm", "d", "--gamma", "g.npy", "--beta", "b.npy", "-o", "o/")
    assert result.exit_code == 1
    assert result.stderr.startswith("normcli: error: b.npy: beta has shape (5, 1, 1)")


def test_an_interrupt_through_the_api_leaves_nothing(tmp_path, monkeypatch):
    _dataset(tmp_path / "d", 6)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "s1.npy").write_bytes(b"old")
    calls = []

    def progress(stage, done, total, nbytes):
        calls.append(done)
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.lrn([tmp_path / "d"], output=f"{tmp_path}/o/", force=True, progress=progress,
                 jobs=2)
    assert _files(tmp_path / "o") == {"s1.npy": b"old"}


SLOW_RUN = """
import sys, time
from normcli import runs

def progress(stage, done, total, nbytes):
    if done == 1:
        print("started", flush=True)
    if done:
        time.sleep(0.5)

runs.batchnorm([sys.argv[1]], output=sys.argv[2], force=True, progress=progress, jobs=1)
print("finished", flush=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGQUIT"])
def test_termination_signals_unwind_a_library_run(tmp_path, signame):
    """A library call cleans up after SIGTERM, SIGHUP and SIGQUIT as the CLI does:
    exit 128 + signum, existing outputs untouched, no temporary file left."""
    _dataset(tmp_path / "d", 8)
    out = tmp_path / "o"
    out.mkdir()
    (out / "s2.npy").write_bytes(b"old")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(tmp_path / "d"), f"{out}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.2)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + getattr(signal, signame), stderr
    assert "finished" not in stdout and "Traceback" not in stderr
    assert sorted(os.listdir(out)) == ["s2.npy"] and (out / "s2.npy").read_bytes() == b"old"


def test_a_handler_of_the_callers_own_is_left_alone():
    from normcli.runs import signals

    mine = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        own = signal.getsignal(signal.SIGTERM)
        with signals.handled():
            assert signal.getsignal(signal.SIGTERM) is own
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with signals.handled():
            assert signal.getsignal(signal.SIGTERM) is signals._stop
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, mine)


IMPORTS = """
import sys
from normcli import runs
d, o = sys.argv[1], sys.argv[2]
runs.stats([d]); runs.lrn([d], output=o + "/l/"); runs.batchnorm([d], output=o + "/b/")
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"click", "rich"})
print(heavy)
"""


def test_the_runs_import_neither_click_nor_rich(tmp_path):
    _dataset(tmp_path / "d", 3)
    done = subprocess.run([sys.executable, "-c", IMPORTS, str(tmp_path / "d"), str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_lrn_command_does_not_load_batch_norm(tmp_path):
    _dataset(tmp_path / "d", 2)
    code = ("import sys; from normcli.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('normcli.ops')))")
    done = subprocess.run([sys.executable, "-c", code, "lrn", str(tmp_path / "d"), "-o",
                           str(tmp_path / "o") + "/"], capture_output=True, text=True, check=True)
    loaded = done.stdout.strip().splitlines()[-1]
    assert "normcli.ops.lrn" in loaded
    assert "batchnorm" not in loaded and "moments" not in loaded


def test_engine_on_done_sees_each_success_once():
    seen = []
    with ThreadEngine(3) as engine:
        assert engine.map(lambda i: -i, 20, on_done=lambda i, r: seen.append((i, r))) == [
            -i for i in range(20)]
    assert sorted(seen) == [(i, -i) for i in range(20)]


def test_outputs_that_exist_are_refused_before_any_work(tmp_path):
    _dataset(tmp_path / "d", 2)
    (tmp_path / "o.npy").write_bytes(b"old")
    with pytest.raises(OutputError, match="exists"):
        runs.lrn([tmp_path / "d"], output=tmp_path / "o.npy",
                 progress=lambda *a: pytest.fail("work started"))


@pytest.mark.parametrize("as_path", [str, Path])
def test_one_path_is_one_input_not_a_sequence_of_characters(tmp_path, as_path):
    batch = _dataset(tmp_path / "d")
    one = runs.stats(as_path(tmp_path / "d"), per="channel")
    listed = runs.stats([tmp_path / "d"], per="channel")
    assert one.dataset.images == listed.dataset.images == len(batch)
    assert np.array_equal(one.dataset.mean, listed.dataset.mean)
    report = runs.lrn(as_path(tmp_path / "d" / "s0.npy"), output=f"{tmp_path}/o/")
    assert [r.label for r in report.inputs] == [str(tmp_path / "d" / "s0.npy")]


@pytest.mark.parametrize("kwargs, param", [
    ({"force": "no"}, "force"), ({"channels_last": "no"}, "channels_last"),
    ({"sync": 0}, "sync"), ({"keep_going": "yes"}, "keep_going"),
    ({"histograms": "x"}, "histograms"), ({"png_bits": 8.0}, "png_bits"),
    ({"output": 3}, "output"), ({"output": b"out/"}, "output"), ({"progress": 3}, "progress"),
])
def test_run_settings_of_the_wrong_type_are_refused_before_anything(tmp_path, kwargs, param):
    """``force="no"`` replaced an existing output (any string is true to Python); the
    others were TypeErrors from deep inside, some mid-run."""
    np.save(tmp_path / "a.npy", np.ones((2, 3, 3), np.float32))
    (tmp_path / "out.npy").write_bytes(b"keep")
    kwargs = {"output": str(tmp_path / "out.npy"), **kwargs}
    with pytest.raises(ParameterError) as e:
        runs.lrn([str(tmp_path / "a.npy")], **kwargs)
    assert e.value.param == param
    assert (tmp_path / "out.npy").read_bytes() == b"keep"


@pytest.mark.parametrize("inputs", [3, None, [3], [None], [b"a.npy"], b"a.npy",
                                    np.ones((2, 3))])
def test_inputs_that_are_not_paths_are_refused_naming_them(tmp_path, inputs):
    with pytest.raises(ParameterError) as e:
        runs.stats(inputs)
    assert e.value.param == "inputs"


def test_batchnorm_stats_of_the_wrong_type(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    for name in ("stats", "update_stats", "save_stats"):
        with pytest.raises(ParameterError) as e:
            runs.batchnorm([str(tmp_path / "a.npy")], output=str(tmp_path / "o.npy"),
                           **{name: 3})
        assert e.value.param == name
