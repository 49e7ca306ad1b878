"""normcli as a process: entry points, pipes, terminals, signals, completion, start-up."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import normcli

#: The command: works where normcli is pip-installed, not only editable.
NORMCLI = [sys.executable, "-m", "normcli"]

TIMEOUT = 30
posix_only = pytest.mark.skipif(os.name != "posix", reason="signals, ptys and pipes: POSIX")


def run(*args, cwd=None, input=None, env=None, **kw):
    environment = {**os.environ, "COLUMNS": "200"}
    environment.pop("NORMCLI_MAX_BYTES", None)
    environment.update(env or {})
    return subprocess.run([*NORMCLI, *map(str, args)], cwd=cwd, input=input,
                          capture_output=True, env=environment, timeout=TIMEOUT, **kw)


def npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".*.normcli-*.tmp"))


# ------------------------------------------------------------- entry points


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"normcli, version {normcli.__version__}\n".encode()
    assert result.stderr == b""


def test_help_lists_commands_and_examples():
    result = run("--help")
    assert result.returncode == 0 and result.stderr == b""
    text = result.stdout.decode()
    assert "Examples:" in text
    assert "normcli lrn a.npy -o - | normcli batchnorm - -o b.npy" in text
    for command in ("lrn", "batchnorm", "stats"):
        assert f"  {command} " in text


def test_unknown_command_is_usage_error():
    result = run("normalize")
    assert result.returncode == 2
    assert b"Error: No such command 'normalize'." in result.stderr


def test_startup_does_not_import_numpy():
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import normcli.cli.main"],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "normcli.cli.main" in result.stderr
    assert "numpy" not in result.stderr


def test_bash_completion_script():
    env = {**os.environ, "_NORMCLI_COMPLETE": "bash_source"}
    for cmd in ([*NORMCLI], [str(Path(sys.executable).with_name("normcli"))]):
        if not Path(cmd[0]).exists():
            continue
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        assert "_normcli_completion()" in result.stdout
        assert "complete -o nosort -F _normcli_completion normcli" in result.stdout


def test_completion_of_commands():
    env = {**os.environ, "_NORMCLI_COMPLETE": "bash_complete", "COMP_WORDS": "normcli ba",
           "COMP_CWORD": "1"}
    result = subprocess.run(NORMCLI, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0
    assert "plain,batchnorm" in result.stdout


def test_installed_script_runs(tmp_path):
    script = Path(sys.executable).with_name("normcli")
    if not script.exists():
        pytest.skip("no normcli script next to the interpreter")
    result = subprocess.run([str(script), "--version"], capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 0 and result.stderr == b""


# ----------------------------------------------------------- data through pipes


def test_data_error_in_a_process(tmp_path):
    (tmp_path / "x.npy").write_text("not numpy")
    result = run("lrn", "x.npy", "-o", "y.npy", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr == b"normcli: error: x.npy: not a .npy file (bad magic)\n"


@posix_only
def test_lrn_to_batchnorm_pipeline(tmp_path, sample_data):
    x = np.load(sample_data / "seed_inter.npy")
    env = {**os.environ}
    env.pop("NORMCLI_MAX_BYTES", None)
    with subprocess.Popen([*NORMCLI, "lrn", str(sample_data / "seed_inter.npy"), "-o", "-"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                          env=env) as first:
        second = subprocess.run([*NORMCLI, "batchnorm", "-", "-o", "b.npy", "-q"],
                                stdin=first.stdout, capture_output=True, cwd=tmp_path,
                                timeout=TIMEOUT, env=env)
        first.stdout.close()
        first_err = first.stderr.read()
        assert first.wait(TIMEOUT) == 0, first_err
    assert second.returncode == 0, second.stderr
    assert second.stdout == b"" and second.stderr == b""
    assert b"wrote .npy to stdout" in first_err
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"),
                                  normcli.batch_norm(normcli.lrn(x)))
    assert np.load(tmp_path / "b.npy").shape == (4, 3, 3)


@posix_only
def test_closed_pipe_ends_quietly(tmp_path):
    np.save(tmp_path / "big.npy", np.ones((16, 256, 256), np.float32))  # 4 MiB
    with subprocess.Popen([*NORMCLI, "lrn", "big.npy", "-o", "-", "-q"], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        head = proc.stdout.read(10)
        proc.stdout.close()  # like `| head -c 10`
        err = proc.stderr.read()
        rc = proc.wait(TIMEOUT)
    assert head == b"\x93NUMPY\x01\x00v\x00"
    assert b"Traceback" not in err
    assert err == b""
    assert rc in (0, 1, 141)
    assert temp_files(tmp_path) == []


def _closing(fd: str, cwd: Path, *args) -> subprocess.CompletedProcess:
    """normcli ARGS with standard input (``fd`` "0") or output ("1") closed, as
    by ``<&-`` or ``>&-`` in a shell (cron jobs, daemons)."""
    return subprocess.run(["sh", "-c", f'exec "$@" {fd}>&-' if fd == "1" else 'exec "$@" <&-',
                           "sh", *NORMCLI, *map(str, args)], cwd=cwd, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL if fd == "1" else None,
                          stdout=subprocess.DEVNULL if fd == "0" else None,
                          stderr=subprocess.PIPE)


@posix_only
@pytest.mark.parametrize("args", [["stats", "x.npy", "-q"], ["lrn", "x.npy", "-o", "y.npy", "-q"],
                                  ["batchnorm", "x.npy", "-o", "z.npy", "-q"],
                                  ["explain", "lrn", "x.npy", "--at", "0,0,0"]])
def test_a_closed_stdin_matters_only_to_an_input_that_is_stdin(tmp_path, args):
    """Python leaves ``sys.stdin`` None when fd 0 is closed: reading it for file
    inputs was a traceback (AttributeError)."""
    np.save(tmp_path / "x.npy", np.ones((2, 3, 3), np.float32))
    result = _closing("0", tmp_path, *args)
    assert result.returncode == 0, result.stderr
    for args in (["stats", "-"], ["stats", "--files-from", "-"]):
        result = _closing("0", tmp_path, *args)
        assert (result.returncode, result.stderr) == (
            1, b"normcli: error: -: standard input is closed\n")


@posix_only
def test_a_closed_stdout_is_one_line_when_the_result_goes_there(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 3, 3), np.float32))
    for args in (["stats", "x.npy"], ["stats", "x.npy", "--json"], ["lrn", "x.npy", "-o", "-"],
                 ["--help"], ["conventions"]):
        result = _closing("1", tmp_path, *args)
        assert (result.returncode, result.stderr) == (
            1, b"normcli: error: -: standard output is closed\n"), args
    result = _closing("1", tmp_path, "lrn", "x.npy", "-o", "y.npy", "-q")  # (nothing for stdout)
    assert (result.returncode, result.stderr) == (0, b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npy"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("args", [["lrn", "x.npy", "-o", "-", "-q"], ["stats", "x.npy"],
                                  ["stats", "x.npy", "--json"], ["conventions"], ["--help"],
                                  ["lrn", "--help"], ["--version"],
                                  ["explain", "lrn", "x.npy", "--at", "0,0,0"]])
def test_a_full_disk_under_stdout_names_stdout(tmp_path, args, unbuffered):
    """Every result that goes to stdout: the binary array, the table, JSON, help
    (``--help`` was a traceback; the table said only "No space left on device"),
    with Python's stdout buffered or not, and no traceback from its last flush."""
    np.save(tmp_path / "x.npy", np.ones((2, 3, 3), np.float32))
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    with open("/dev/full", "wb") as full:
        result = subprocess.run([*NORMCLI, *args], cwd=tmp_path, env=env,
                                stdout=full, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert (result.returncode, result.stderr) == (
        1, b"normcli: error: <stdout>: No space left on device\n")


@posix_only
def test_stdout_terminal_refused(tmp_path):
    import pty

    np.save(tmp_path / "x.npy", np.ones((2, 3, 3), np.float32))
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([*NORMCLI, "lrn", "x.npy", "-o", "-"], cwd=tmp_path,
                                stdout=follower, stderr=subprocess.PIPE, timeout=TIMEOUT)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1] == (
        "Error: refusing to write .npy data to a terminal: redirect stdout (-o - | ...) or "
        "give -o FILE")


@posix_only
def test_stdin_terminal_refused(tmp_path):
    import pty

    leader, follower = pty.openpty()
    try:
        result = subprocess.run([*NORMCLI, "stats", "-"], cwd=tmp_path, stdin=follower,
                                capture_output=True, timeout=TIMEOUT)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1
    assert result.stderr == (b"normcli: error: <stdin>: is a terminal; pipe a .npy, .npz or "
                             b"image file into it\n")


# ------------------------------------------------------------------- signals


def _wait_for(predicate, proc, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@posix_only
@pytest.mark.parametrize("signum, rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_while_working_writes_nothing(tmp_path, signum, rc):
    """The signal comes while normcli waits for the rest of stdin among other inputs.

    Standard input is read first, in the main thread, so that the signal reaches a
    read that waits (on a worker thread it would wait for the data first);
    signals during staged writes are covered by test_faults.py.
    """
    x = np.random.default_rng(0).random((8, 128, 128), dtype=np.float32)  # 512 KiB
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x)
    proc = subprocess.Popen([*NORMCLI, "lrn", "a.npy", "b.npy", "-", "-o", "out/", "-j", "2"],
                            cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out = tmp_path / "out"
    try:
        data = npy_bytes(x)
        proc.stdin.write(data[: len(data) // 2])  # half an array: the reader keeps waiting
        proc.stdin.flush()
        time.sleep(1.0)  # start-up and the first half read
        assert proc.poll() is None
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == rc, err
    assert b"Traceback" not in err
    # (SIGTERM said nothing at all)
    assert err.decode().strip().splitlines()[-1] == (
        "normcli: interrupted" if signum == signal.SIGINT else "normcli: stopped by SIGTERM")
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


@posix_only
def test_sigint_while_reading_a_large_input(tmp_path):
    """Ctrl-C while a 64 MiB array is still arriving on stdin: exit 130, nothing written."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (16, 1024, 1024)})
    header = buf.getvalue()
    chunk = b"\0" * (1 << 20)
    proc = subprocess.Popen([*NORMCLI, "lrn", "-", "-o", "y.npy"], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(header)
        for _ in range(32):  # half of the data
            proc.stdin.write(chunk)
        proc.stdin.flush()
        time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert err.decode().strip().splitlines()[-1] == "normcli: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- bugs


def test_module_entry_point_runs_without_warnings():
    result = subprocess.run([sys.executable, "-m", "normcli.cli.main", "--version"],
                            capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 0
    assert result.stderr == b""


def test_interrupt_right_after_temp_file_created_leaves_nothing(invoke, save, tmp_path,
                                                                monkeypatch):
    from normcli.files import atomic

    save("x.npy", np.ones((2, 3, 3), np.float32))

    def interrupted() -> int:  # a Ctrl-C right after the temporary file exists
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fchmod", lambda *args: interrupted())  # after creation
    result = invoke("lrn", "x.npy", "-o", "out/")
    assert result.exit_code == 130
    out = tmp_path / "out"  # the run may remove the directory it made
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_interrupt_while_numpy_writes_exits_130(invoke, save, tmp_path, monkeypatch):
    """A Ctrl-C in the middle of writing a staged .npy: exit 130, no file, no temp file.

    (normcli writes .npy itself, header then data: numpy's ndarray.tofile would
    turn the KeyboardInterrupt into a TypeError.)
    """
    from normcli.files import npy

    save("x.npy", np.ones((2, 3, 3), np.float32))
    calls = [0]
    real_writev = npy.os.writev

    def writev(fd, chunks):
        calls[0] += 1
        real_writev(fd, chunks[:1])  # the header only, then the interrupt
        raise KeyboardInterrupt

    monkeypatch.setattr(npy.os, "writev", writev)
    result = invoke("lrn", "x.npy", "-o", "y.npy")
    assert result.exit_code == 130, repr(result.exception)
    assert calls[0] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


@posix_only
@pytest.mark.parametrize("signame, rc, said", [
    ("SIGINT", 130, "normcli: interrupted: every output was put in place first"),
    ("SIGTERM", 143, "normcli: stopped by SIGTERM: every output was put in place first")])
def test_a_signal_during_the_renames_says_the_outputs_are_in_place(tmp_path, signame, rc, said):
    """The signal is held until the last rename; the last line said "interrupted" (or,
    for SIGTERM, nothing) as if nothing had been written."""
    for i in range(3):
        np.save(tmp_path / f"x{i}.npy", np.ones((2, 3, 3), np.float32))
    code = (
        "import os, signal, sys\n"
        "from normcli.files.atomic import StagedWrites\n"
        "commit = StagedWrites.commit\n"
        "def signalled(self):\n"
        f"    os.kill(os.getpid(), signal.{signame})\n"
        "    commit(self)\n"
        "StagedWrites.commit = signalled\n"
        "from normcli.cli.entry import main\n"
        "main(sys.argv[1:])\n")
    result = subprocess.run([sys.executable, "-c", code, "lrn", "x0.npy", "x1.npy", "x2.npy",
                             "-o", "out/", "-q"], cwd=tmp_path, capture_output=True,
                            timeout=TIMEOUT)
    assert (result.returncode, result.stderr.decode()) == (rc, said + "\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x0.npy", "x1.npy",
                                                                   "x2.npy"]


@posix_only
def test_ctrl_c_while_the_command_line_sets_itself_up_is_one_line(tmp_path):
    """Ctrl-C after the entry point's handlers but before the command line's own
    ``try`` (setting BLAS's threads, installing the handlers again) was a
    traceback; found by test_hardening's signals at random moments."""
    code = ("import sys\n"
            "from normcli.runs import signals\n"
            "real, calls = signals.install, []\n"
            "def install():\n"
            "    calls.append(1)\n"
            "    if len(calls) == 2:\n"
            "        raise KeyboardInterrupt  # (the command line's own, in its set-up)\n"
            "    real()\n"
            "signals.install = install\n"
            "from normcli.cli.entry import main\n"
            "main(['--version'])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            timeout=TIMEOUT)
    assert (result.returncode, result.stderr) == (130, b"normcli: interrupted\n")
