"""Attacks and accidents: signals at any moment, parameter files and stdout as outputs,
names that would drive the terminal, markup in names.

Every family here counts in the suite's closing robustness line (``COUNTS``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

COUNTS: Counter[str] = Counter()
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT]


def _inputs(folder: Path, count: int, shape=(8, 48, 48)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        np.save(folder / f"a{i:02d}.npy", rng.standard_normal(shape).astype(np.float32))


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _normcli(*args, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "NORMCLI_MAX_BYTES"}
    return subprocess.run([sys.executable, "-m", "normcli", *map(str, args)], cwd=cwd,
                          env={**environment, "COLUMNS": "200", **env}, capture_output=True,
                          timeout=60)


# ---------------------------------------------------------- signals at random moments

# normcli with the signal handlers in place before "ready" is printed: the moments
# tested are those of normcli's own code (its imports included), not those of the
# interpreter's start-up, before any code of the program runs.  Every rename is
# slowed a little, so that the moments include the commit.
RANDOM_MOMENT = """
import os, sys, time
from normcli.runs import signals
signals.install()
real = os.replace
def replace(*args, **kwargs):
    time.sleep(0.01)
    return real(*args, **kwargs)
os.replace = replace
from normcli.cli.entry import main
print("ready", flush=True)
main(sys.argv[1:])
"""


@pytest.mark.parametrize("command", [["batchnorm"], ["lrn", "-j", "2"]])
def test_signals_at_random_moments_leave_all_old_or_all_new(tmp_path, command):
    """Each run gets SIGINT, SIGTERM, SIGHUP or SIGQUIT at a random moment: it ends
    within 30 s (a hang detector) with 128 + signum, or 0 if it had finished;
    the outputs are all the old ones or all new ones; no temporary file stays;
    no traceback."""
    src, out = tmp_path / "in", tmp_path / "out"
    _inputs(src, 24)
    rng = random.Random(7)
    for run in range(10):
        sig = SIGNALS[run % len(SIGNALS)]
        out.mkdir(exist_ok=True)
        for i in range(24):
            (out / f"a{i:02d}.npy").write_bytes(b"old")
        proc = subprocess.Popen([sys.executable, "-c", RANDOM_MOMENT, *command, str(src), "-o",
                                 f"{out}/", "--force", "-q"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.8))
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {run}: normcli hung after {sig.name}")
        finally:
            proc.kill()
        COUNTS[f"signal at a random moment: {sig.name}"] += 1
        old = sum((out / f"a{i:02d}.npy").read_bytes() == b"old" for i in range(24))
        assert b"Traceback" not in err and b"Exception ignored" not in err, err.decode()
        assert _temps(out) == [], run
        if proc.returncode == 0:
            assert old == 0, f"run {run}: exit 0 with {old} old outputs"
        else:
            # 128 + signum, or killed by the signal itself when it came as the
            # interpreter was finalizing, the run done (a shell's $? is the same)
            assert proc.returncode in (128 + sig, -sig), (run, proc.returncode, err.decode())
            assert old in (0, 24), f"run {run}: {24 - old} of 24 outputs replaced"


SLOW_COMMIT = """
import os, sys, time
real = os.replace
def replace(*args, **kwargs):
    time.sleep(0.15)
    return real(*args, **kwargs)
os.replace = replace
from normcli.cli.entry import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_during_the_commit_waits_for_it(tmp_path, sig):
    """Once the outputs are being put in place, a signal is held until all of them
    are: never some new and some old (once 54 of 60 were replaced)."""
    src, out = tmp_path / "in", tmp_path / "out"
    _inputs(src, 8, shape=(2, 4, 4))
    out.mkdir()
    for i in range(8):
        (out / f"a{i:02d}.npy").write_bytes(b"old")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_COMMIT, "lrn", str(src), "-o", f"{out}/",
                             "--force", "-q", "--no-sync"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while (out / "a00.npy").read_bytes() == b"old" and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    COUNTS[f"signal during the commit: {sig.name}"] += 1
    assert proc.returncode == 128 + sig, err.decode()
    assert [(out / f"a{i:02d}.npy").read_bytes() == b"old" for i in range(8)] == [False] * 8
    assert _temps(out) == []


THREAD_START_INTERRUPT = """
import sys, threading
n, count = int(sys.argv[1]), [0]
start = threading.Thread.start
def interrupted_start(self):
    start(self)
    if threading.current_thread() is threading.main_thread():
        count[0] += 1
        if count[0] == n:
            raise KeyboardInterrupt
threading.Thread.start = interrupted_start
from normcli.cli.main import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("args", [["batchnorm", "in", "-o", "o/"],
                                  ["lrn", "one.npy", "-o", "o.npy"],
                                  ["batchnorm", "one.npy", "-o", "o.npy"]])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_an_interrupt_while_a_thread_starts_does_not_hang_the_exit(tmp_path, args, n):
    """Ctrl-C right after a pool's worker thread started, before the pool recorded it,
    once left a worker that the interpreter waited for forever at exit."""
    _inputs(tmp_path / "in", 6, shape=(16, 96, 96))
    np.save(tmp_path / "one.npy", np.ones((8, 16, 96, 96), np.float32))
    COUNTS["interrupt while a thread starts"] += 1
    try:
        done = subprocess.run([sys.executable, "-c", THREAD_START_INTERRUPT, str(n), *args],
                              cwd=tmp_path, capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("normcli hung at exit")
    assert done.returncode in (0, 130), done.stderr.decode()
    assert b"Traceback" not in done.stderr
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


# ---------------------------------------------------------- parameter files and stdout


@pytest.mark.parametrize("args, victim", [
    (["--gamma", "g.npy", "-o", "g.npy"], "g.npy"),
    (["--beta", "g.npy", "-o", "out/"], None),
    (["--stats", "s.npz", "-o", "s.npz"], "s.npz"),
    (["--gamma", "g.npy", "--save-stats", "link.npz"], "link.npz"),
    (["--beta", "g.npy", "--preview", "link.png"], "link.png"),
])
def test_parameter_files_are_inputs_and_never_replaced(tmp_path, args, victim):
    np.save(tmp_path / "b.npy", np.random.default_rng(0).standard_normal((4, 3, 5, 5)))
    np.save(tmp_path / "g.npy", np.ones((3, 5, 5)))
    assert _normcli("batchnorm", "b.npy", "--save-stats", "s.npz", "-q",
                    cwd=tmp_path).returncode == 0
    if victim is None:  # an output directory whose file would be the parameter file
        (tmp_path / "out").mkdir()
        os.link(tmp_path / "g.npy", tmp_path / "out" / "b.npy")
        victim = "out/b.npy"
    elif victim.startswith("link"):  # another name of the parameter file
        os.link(tmp_path / "g.npy", tmp_path / victim)
    before = (tmp_path / victim).read_bytes()
    COUNTS["parameter file as an output"] += 1
    done = _normcli("batchnorm", "b.npy", *args, "--force", cwd=tmp_path)
    assert done.returncode in (1, 2), done.stderr.decode()
    assert b"is also an input" in done.stderr or b"is also an output" in done.stderr
    assert (tmp_path / victim).read_bytes() == before


def test_stdout_opened_on_an_input_is_refused(tmp_path):
    """``normcli lrn a.npy -o - 1<>a.npy``: stdout is the input file itself."""
    np.save(tmp_path / "a.npy", np.ones((3, 4, 4), np.float32))
    before = (tmp_path / "a.npy").read_bytes()
    COUNTS["stdout is an input"] += 1
    with open(tmp_path / "a.npy", "r+b") as same:
        done = subprocess.run([sys.executable, "-m", "normcli", "lrn", "a.npy", "-o", "-"],
                              cwd=tmp_path, stdout=same, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 1
    assert done.stderr.decode() == ("normcli: error: <stdout>: is a.npy, an input (refusing to "
                                    "overwrite it, even with --force)\n")
    assert (tmp_path / "a.npy").read_bytes() == before


# ---------------------------------------------------------- names that drive the terminal

HOSTILE = ["esc\x1b[2J.npy", "bel\x07.npy", "cr\rnormcli: ok.npy", "nl\nnormcli: error: x.npy",
           "rtl\u202ey.npy", "tab\t.npy"]


@pytest.mark.parametrize("name", HOSTILE)
def test_control_characters_in_names_are_escaped(tmp_path, name):
    np.save(tmp_path / "x.npy", np.ones((3, 4, 4), np.float32))
    os.replace(tmp_path / "x.npy", tmp_path / name)
    COUNTS["hostile file name"] += 3
    for args in (["stats", name], ["lrn", name, "-o", "out.npy"], ["lrn", name + ".missing"]):
        done = _normcli(*args, cwd=tmp_path)
        text = done.stderr.decode() + done.stdout.decode()  # (stats: its table on stdout)
        assert not any(c in text for c in "\x1b\x07\r\u202e\t"), repr(text)
        assert "\\x1b" in text or "\\x07" in text or "\\r" in text or "\\n" in text or (
            "\\u202e" in text or "\\t" in text), repr(text)
        if done.returncode:  # one line, whatever the name holds
            text = done.stderr.decode()
            assert text.count("\n") == 1 and text.startswith("normcli: error: "), repr(text)


def test_markup_in_an_output_name_is_printed_as_it_is(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 4, 4), np.float32))
    (tmp_path / "[").mkdir()
    COUNTS["rich markup in a name"] += 1
    done = _normcli("lrn", "a.npy", "-o", "[/x]/", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert b"wrote 1 file to [/x]" in done.stderr
    assert (tmp_path / "[" / "x]" / "a.npy").exists()


# ---------------------------------------------------------- output-size bombs


def test_explain_bounds_what_it_lists(invoke, save):
    """explain lrn --n 1e12 listed the window element by element (forever); a batch of
    100,000 drew a line per sample; a 200x200 intra window drew 40,000 cells."""
    COUNTS["output-size bomb"] += 4
    result = invoke("explain", "lrn", "--n", "1000000000000")
    assert result.exit_code == 0, result.stderr
    assert "channels -500000000000..-1 and 4..500000000000 do not exist" in " ".join(
        result.stdout.split())
    save("tall.npy", np.arange(100_000, dtype=np.float32).reshape(-1, 1, 1))
    for args in (["explain", "batchnorm", "tall.npy", "--at", "500,0,0"],
                 ["explain", "lrn", "tall.npy", "--n", "100000000", "--at", "50000,0,0"]):
        result = invoke(*args)
        assert result.exit_code == 0, result.stderr
        assert len(result.stdout.splitlines()) < 60 and "more" in result.stdout
    save("wide.npy", np.ones((1, 200, 200), np.float32))
    result = invoke("explain", "lrn", "wide.npy", "--mode", "intra", "--n", "500",
                    "--at", "0,100,100")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) < 60
    assert "39,775 more values of the window not shown" in result.stdout


def test_a_png_grid_of_a_million_channels_is_refused(invoke, save):
    COUNTS["output-size bomb"] += 1
    save("many.npy", np.ones((1_000_000, 1, 1), np.float32))
    result = invoke("lrn", "many.npy", "-o", "many.png")
    assert result.exit_code == 1
    assert result.stderr == ("normcli: error: many.png: 1,000,000 channels are too many for one "
                             "image (a grid shows at most 1,024); write .npy instead\n")


def test_the_memory_limit_bounds_the_result_not_only_the_input(invoke, save, tmp_path):
    """A 1 MiB uint8 input has an 8 MiB float64 result: under a 4 MiB limit it is
    refused before any work, naming the file and what it would need."""
    COUNTS["output-size bomb"] += 3
    save("u8.npy", np.ones((16, 256, 256), np.uint8))
    for command in (["lrn"], ["batchnorm"], ["compare"]):
        result = invoke(*command, "u8.npy", *(["-o", "o.npy"] if command != ["compare"] else []),
                        env={"NORMCLI_MAX_BYTES": "4M"})
        assert result.exit_code == 1, (command, result.stderr)
        assert result.stderr.startswith("normcli: error: u8.npy: normalizing it needs about "), (
            result.stderr)
        assert "over the limit of 4,194,304 (set NORMCLI_MAX_BYTES to raise it)" in result.stderr
    assert not (tmp_path / "o.npy").exists()
    assert invoke("lrn", "u8.npy", "-o", "o.npy", "-q",
                  env={"NORMCLI_MAX_BYTES": "16M"}).exit_code == 0


def test_results_written_together_are_bounded_too(invoke, save, tmp_path):
    COUNTS["output-size bomb"] += 1
    for i in range(4):
        save(f"d/a{i}.npy", np.ones((4, 64, 64), np.float32))  # 64 KiB each
    result = invoke("lrn", "d", "-o", "all.npy", env={"NORMCLI_MAX_BYTES": "200K"})
    assert result.exit_code == 1
    assert "the results written together need more than 204,800 bytes" in result.stderr
    assert not (tmp_path / "all.npy").exists()
    assert invoke("lrn", "d", "-o", "dir/", "-q", env={"NORMCLI_MAX_BYTES": "200K"}).exit_code == 0


# ---------------------------------------------------------- parameters out of range


def test_a_gamma_or_beta_beyond_the_output_type_is_refused(invoke, save, tmp_path):
    """--gamma 1e308 on float32 data exited 0 with every output infinite; a gamma
    file holding such values, or NaN, is named (not the input)."""
    COUNTS["parameter out of range"] += 4
    rng = np.random.default_rng(0)
    for i in range(3):
        save(f"d/a{i}.npy", rng.standard_normal((4, 3, 3)).astype(np.float32))
    save("one.npy", rng.standard_normal((3, 4, 3, 3)).astype(np.float32))
    for inputs in ("d", "one.npy"):
        result = invoke("batchnorm", inputs, "--gamma", "1e308", "-o", "o.npy")
        assert result.exit_code == 2, result.stderr
        assert ("Invalid value for '--gamma': 1e+308 is beyond float32's range (3.4e+38)"
                in result.stderr)
    save("g.npy", np.full(4, 1e300))
    result = invoke("batchnorm", "d", "--per", "channel", "--gamma", "g.npy", "-o", "o.npy")
    assert result.exit_code == 1 and result.stderr.startswith(
        "normcli: error: g.npy: gamma holding 1e+300 is beyond float32's range"), result.stderr
    save("g.npy", np.array([1.0, np.nan, 1.0, 1.0]))
    result = invoke("batchnorm", "d", "--per", "channel", "--gamma", "g.npy", "-o", "o.npy")
    assert result.stderr == "normcli: error: g.npy: gamma holds non-finite values\n"
    assert not (tmp_path / "o.npy").exists()
    # float64 data holds them: computed, finite
    save("d64/a.npy", rng.standard_normal((3, 4, 2, 2)))
    assert invoke("batchnorm", "d64/a.npy", "--gamma", "1e300", "-o", "o64.npy",
                  "-q").exit_code == 0
    assert np.isfinite(np.load(tmp_path / "o64.npy")).all()
