"""Fault injection: disk full, I/O errors, read-only folders, vanishing inputs, signals.

The promise under test (``docs/trust.md``): whatever goes wrong, nothing
half-written is left behind - no partial output, no ``.NAME.normcli-XXXX.tmp``
file (except after SIGKILL, which no program can clean up after, and then the
next run is not disturbed by it) - and every existing output keeps its bytes
unless the run completed.  Failures are exit 1 with one ``normcli: error:``
line; SIGINT is exit 130 and SIGTERM exit 143.

Real faults are used where the machine allows it (a 64 KiB tmpfs for a full
disk, a read-only bind mount; both need root and mount rights, otherwise
those tests are skipped with the reason); the same faults are also injected
by monkeypatching, which always runs.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from faulty import FullDisk

import normcli
import normcli.files.atomic as atomic
import normcli.files.output as output
from normcli.cli.main import cli
from normcli.files import cleanup_stale_temps

pytestmark = pytest.mark.filterwarnings(
    "ignore:'get_binary_stream' is deprecated:DeprecationWarning"
)
COUNTS: Counter[str] = Counter()
ENV = {"NORMCLI_MAX_BYTES": None, "NORMCLI_DEBUG": None, "COLUMNS": "100"}


# ---------------------------------------------------------------- helpers


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if atomic.TEMP_MARKER in p.name]


def run(args: list[str]):
    return CliRunner().invoke(cli, [str(a) for a in args], env=ENV, catch_exceptions=True)


def assert_one_error(result, *needles: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception)
    )
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("normcli: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def inputs(tmp_path):
    """Three inputs in a folder, and an output folder holding old results."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b", "c"):
        np.save(src / f"{name}.npy", rng.standard_normal((4, 8, 8)))
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b", "c"):
        np.save(out / f"{name}.npy", np.full((2, 2), 7.0))  # "old" results
    return src, out


def _mount(*args: str) -> bool:
    if os.geteuid() != 0:
        return False
    try:
        done = subprocess.run(["mount", *args], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, timeout=10)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights)."""
    where = tmp_path / "tiny"
    where.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)):
        pytest.skip("cannot mount a 64 KiB tmpfs here (needs root and CAP_SYS_ADMIN); "
                    "the monkeypatched ENOSPC tests cover the same path")
    yield where
    _umount(where)


# ------------------------------------------------------------- disk full


def test_real_disk_full_leaves_old_outputs_and_no_temp(tiny_disk, tmp_path):
    COUNTS["fault: ENOSPC (real tmpfs)"] += 1
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "a.npy", np.ones((2, 8, 8)))  # ~1 KiB result: fits
    np.save(src / "b.npy", np.ones((4, 50, 50)))  # ~80 KiB result: does not
    np.save(tiny_disk / "a.npy", np.zeros(3))
    np.save(tiny_disk / "b.npy", np.zeros(3))
    before = snapshot(tiny_disk)
    result = run(["lrn", f"{src}/", "-o", f"{tiny_disk}/", "--force", "-q"])
    assert_one_error(result, "b.npy", "No space left on device")
    assert snapshot(tiny_disk) == before
    assert temp_files(tiny_disk) == []
    # with room again, the same run completes
    (tiny_disk / "b.npy").unlink()
    np.save(src / "b.npy", np.ones((2, 8, 8)))
    result = run(["lrn", f"{src}/", "-o", f"{tiny_disk}/", "--force", "-q"])
    assert result.exit_code == 0, result.stderr
    assert np.load(tiny_disk / "a.npy").shape == (2, 8, 8)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EDQUOT])
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_write_errors_are_one_line_and_leave_nothing(inputs, monkeypatch, code, where):
    """The write of the second output fails half-way, or its fsync does."""
    COUNTS[f"fault: {errno.errorcode[code]} in {where}"] += 1
    src, out = inputs
    before = snapshot(out)
    calls = Counter()

    if where == "write":
        real = output.write_npy

        def failing_write(f, arr):
            calls["w"] += 1
            if calls["w"] == 2:
                f.write(b"\x93NUMPY half a file")
                raise OSError(code, os.strerror(code))
            real(f, arr)

        monkeypatch.setattr(output, "write_npy", failing_write)
    else:
        real_fsync = os.fsync

        def failing_fsync(fd):
            calls["s"] += 1
            if calls["s"] == 2:
                raise OSError(code, os.strerror(code))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", failing_fsync)
    result = run(["lrn", f"{src}/", "-o", f"{out}/", "--force", "-q", "-j", "1"])
    assert_one_error(result, os.strerror(code))
    assert snapshot(out) == before
    assert temp_files(out) == []


def test_disk_full_on_a_single_new_output(tmp_path, monkeypatch):
    COUNTS["fault: ENOSPC new file"] += 1
    np.save(tmp_path / "x.npy", np.ones((2, 3, 4)))

    def full(f, arr):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output, "write_npy", full)
    result = run(["batchnorm", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "-q"])
    assert_one_error(result, "y.npy", "No space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


#: Outputs of every kind, by the options that write them: (args, the file that fails).
#: ``{d}``: the folder where writing fails; ``{ok}``: one with room.
OUTPUTS = {"-o .npz": (["-o", "{d}/o.npz"], "o.npz"),
           "--save-stats": (["--save-stats", "{d}/s.npz"], "s.npz"),
           "--preview": (["--preview", "{d}/p.png", "-o", "{ok}/o.npy"], "p.png"),
           "-o .png": (["-o", "{d}/o.png"], "o.png"),
           "-o .npy": (["-o", "{d}/o.npy"], "o.npy")}


def _batchnorm_into(folder: Path, roomy: Path, src: Path, output: str) -> list[str]:
    args, _ = OUTPUTS[output]
    return ["batchnorm", src, "--per", "activation", "-q",
            *(a.format(d=folder, ok=roomy) for a in args)]


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_real_disk_full_names_the_file(tiny_disk, tmp_path, output):
    """-o o.npz, --save-stats s.npz and --preview p.png said only "No space left on
    device": closing the file failed a second time, and that error replaced the first."""
    COUNTS[f"fault: ENOSPC (real tmpfs) {output}"] += 1
    src = tmp_path / "big.npy"
    np.save(src, np.random.default_rng(0).standard_normal((4, 96, 96)).astype(np.float32))
    (tiny_disk / "filler").write_bytes(b"\0" * (56 << 10))  # 8 KiB left: too little for any
    result = run(_batchnorm_into(tiny_disk, tmp_path, src, output))
    assert_one_error(result, f"{tiny_disk}/{OUTPUTS[output][1]}: No space left on device")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("where", ["write", "flush", "close"])
@pytest.mark.parametrize("output", list(OUTPUTS))
def test_disk_full_names_the_file(inputs, monkeypatch, output, where):
    """The same with injected ENOSPC: from the write, the flush or the close on, every
    operation on the output fails (see tests/files/test_atomic.py: FullDisk)."""
    COUNTS[f"fault: ENOSPC in {where} of {output}"] += 1
    src, out = inputs
    before = snapshot(out)
    name = OUTPUTS[output][1]
    real = atomic._create

    def create(tmp, target, *args):  # the disk of that file is full
        f = real(tmp, target, *args)
        return FullDisk(f, where) if target.name == name else f

    monkeypatch.setattr(atomic, "_create", create)
    result = run(_batchnorm_into(out, out, src / "a.npy", output))
    assert_one_error(result, f"{out}/{name}: No space left on device")
    assert snapshot(out) == before
    assert temp_files(out) == []


# --------------------------------------------------------- read-only folder


def test_read_only_folder_real_bind_mount(inputs, tmp_path):
    COUNTS["fault: read-only folder (bind mount)"] += 1
    src, out = inputs
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _mount("--bind", "-o", "ro", str(out), str(ro)):
        pytest.skip("cannot make a read-only bind mount here (needs root and mount rights); "
                    "test_read_only_folder_monkeypatched covers the same path")
    try:
        before = snapshot(ro)
        result = run(["lrn", f"{src}/", "-o", f"{ro}/", "--force", "-q"])
        assert_one_error(result, "ro/a.npy")
        assert snapshot(ro) == before
        assert temp_files(out) == []
    finally:
        _umount(ro)


@pytest.mark.parametrize("stage", ["create", "rename"])
def test_read_only_folder_monkeypatched(inputs, monkeypatch, stage):
    """EROFS when the temporary file is created, or when the results are put in place."""
    COUNTS[f"fault: EROFS at {stage}"] += 1
    src, out = inputs
    before = snapshot(out)
    erofs = OSError(errno.EROFS, os.strerror(errno.EROFS))
    if stage == "create":
        real_open = os.open

        def create(path, flags, *args, **kwargs):
            if flags & os.O_CREAT:
                raise erofs
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(atomic.os, "open", create)
    else:
        def replace(*args, **kwargs):
            raise erofs

        monkeypatch.setattr(atomic.os, "replace", replace)
    result = run(["lrn", f"{src}/", "-o", f"{out}/", "--force", "-q"])
    assert_one_error(result, "Read-only file system")
    assert snapshot(out) == before
    assert temp_files(out) == []


# ---------------------------------------------------------- vanishing input


def _before_each_read(monkeypatch, hook) -> Counter:
    """Call ``hook(path, count)`` before every read of a .npy input (by either
    reader normcli uses); returns the reads counted by file name."""
    from normcli.files import sources

    reads: Counter = Counter()

    def wrap(real):
        def read(path, *args, **kwargs):
            reads[Path(path).name] += 1
            hook(Path(path), reads[Path(path).name])
            return real(path, *args, **kwargs)

        return read

    monkeypatch.setattr(sources, "read_npy", wrap(sources.read_npy))
    monkeypatch.setattr(sources, "read_npy_into", wrap(sources.read_npy_into))
    return reads


@pytest.mark.parametrize("command", [["lrn"], ["batchnorm"], ["batchnorm", "--per", "channel"]])
def test_input_deleted_mid_run(inputs, monkeypatch, command):
    """b.npy is listed, then deleted just before it is read (each time it is read)."""
    COUNTS["fault: input deleted mid-run"] += 1
    src, out = inputs

    def delete(path, count):
        if path.name == "b.npy" and path.exists():
            path.unlink()

    before = snapshot(out)
    reads = _before_each_read(monkeypatch, delete)
    result = run([*command, f"{src}/", "-o", f"{out}/", "--force", "-q"])
    assert reads["b.npy"] >= 1
    assert_one_error(result, "b.npy", "no such file")
    assert snapshot(out) == before
    assert temp_files(out) == []


def test_input_deleted_between_batchnorm_passes(inputs, monkeypatch):
    """batchnorm over several inputs reads each twice: delete c.npy after the first pass."""
    COUNTS["fault: input deleted between passes"] += 1
    src, out = inputs

    def delete(path, count):
        if path.name == "c.npy" and count == 2:
            path.unlink()

    before = snapshot(out)
    reads = _before_each_read(monkeypatch, delete)
    result = run(["batchnorm", f"{src}/", "-o", f"{out}/", "--force", "-q", "-j", "1"])
    assert reads["c.npy"] == 2  # once per pass
    assert_one_error(result, "c.npy", "no such file")
    assert snapshot(out) == before
    assert temp_files(out) == []


# ------------------------------------------------- parameter files that are not files


def _plant(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(kind.rsplit(" ", 1)[1])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
@pytest.mark.parametrize("kind", ["fifo", "symlink to /dev/zero", "symlink to /dev/null"])
@pytest.mark.parametrize("option, name", [("--stats", "s.npz"), ("--gamma", "g.npy"),
                                          ("--beta", "b.npy")])
def test_parameter_file_that_is_not_a_regular_file(inputs, tmp_path, option, name, kind):
    """``--stats`` on a symlink to /dev/zero grew without bound; on a FIFO it
    blocked for ever.  Each is one error line naming the file, at once."""
    import threading

    COUNTS[f"fault: {option} {kind}"] += 1
    src, out = inputs
    path = tmp_path / name
    _plant(path, kind)
    before = snapshot(out)
    unblock = threading.Timer(20, lambda: os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK)))
    if kind == "fifo":  # should the open block after all: end it, and fail below
        unblock.start()
    try:
        result = run(["batchnorm", f"{src}/", option, path, "-o", f"{out}/", "--force", "-q"])
    finally:
        unblock.cancel()
    assert_one_error(result, f"{path}", "not a regular file")
    assert snapshot(out) == before
    assert temp_files(out) == []


# ------------------------------------------- outputs planted by another process


@pytest.fixture
def sixty(tmp_path):
    """60 inputs, and an output folder holding 60 old results."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    rng = np.random.default_rng(5)
    for i in range(60):
        np.save(src / f"a{i:03d}.npy", rng.standard_normal((2, 4, 4)))
        np.save(out / f"a{i:03d}.npy", np.full(2, float(i)))
    return src, out


def _planting(monkeypatch, out: Path, what: str, during: bool) -> list:
    """Plant out/a059.npy (a file, or a directory) once the outputs are staged: just
    before the commit, or during it (when it reaches a030.npy, after its checks)."""
    planted = out / "a059.npy"
    fired = []

    def plant():
        fired.append(True)
        if what == "directory":
            planted.unlink(missing_ok=True)
            planted.mkdir()
        else:
            planted.unlink(missing_ok=True)
            planted.write_bytes(b"theirs")

    if not during:
        real_commit = atomic.StagedWrites.commit

        def commit(self):
            plant()
            real_commit(self)

        monkeypatch.setattr(atomic.StagedWrites, "commit", commit)
        return fired
    for name in ("link", "replace"):
        real = getattr(os, name)

        def step(*args, _real=real, **kwargs):
            if not fired and str(out / "a030.npy") in map(str, args):
                plant()
            return _real(*args, **kwargs)

        monkeypatch.setattr(atomic.os, name, step)
    return fired


@pytest.mark.parametrize("during", [False, True], ids=["before commit", "during commit"])
@pytest.mark.parametrize("force, what", [(False, "file"), (True, "directory")])
def test_output_planted_by_another_process(sixty, monkeypatch, force, what, during):
    """out/a059.npy created while ``lrn in/ -o out/ -j 1`` ran: the run exited 1 after
    59 of the 60 outputs were in place; with --force and a directory planted, 59 old
    outputs were replaced.  Now no output changes, whenever the conflict appears."""
    COUNTS[f"fault: output planted {'during' if during else 'before'} commit"] += 1
    src, out = sixty
    if not force:
        for p in out.iterdir():
            p.unlink()
    fired = _planting(monkeypatch, out, what, during)
    before = {k: v for k, v in snapshot(out).items()}
    result = run(["lrn", f"{src}/", "-o", f"{out}/", "-q", "-j", "1", *(["--force"] * force)])
    assert fired
    problem = "is a directory" if what == "directory" else "exists"
    assert_one_error(result, f"{out}/a059.npy: {problem}")
    after = snapshot(out)
    if what == "file":
        assert after.pop("a059.npy") == b"theirs"
    else:
        assert (out / "a059.npy").is_dir()
        before.pop("a059.npy")
    assert after == before
    assert temp_files(out) == []


# ------------------------------------------------------------------ signals

# Runs normcli with every fsync slowed down, so that the test can catch it
# while a temporary file exists: deterministic, and fast.
SLOW_NORMCLI = """
import os, sys, time
real = os.fsync
def slow_fsync(fd):
    time.sleep(float(os.environ["SLOW_FSYNC"]))
    real(fd)
os.fsync = slow_fsync
from normcli.cli.main import main
main(sys.argv[1:])
"""




def start_slow(args: list[str], delay: float = 0.4) -> subprocess.Popen:
    env = dict(os.environ, SLOW_FSYNC=str(delay), PYTHONWARNINGS="ignore")
    env.pop("NORMCLI_MAX_BYTES", None)
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_NORMCLI, *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )


def wait_for_temp(folder: Path, proc: subprocess.Popen, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = temp_files(folder)
        if found:
            return found[0]
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"normcli ended ({proc.returncode}) before writing: {err.decode()}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no temporary file appeared")


@pytest.mark.parametrize(
    "sig, code, jobs",
    [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 1),
     (signal.SIGINT, 130, 3), (signal.SIGTERM, 143, 3)],
)
def test_signal_mid_write_removes_temps_and_keeps_old_outputs(inputs, sig, code, jobs):
    COUNTS[f"fault: {sig.name} mid-write"] += 1
    src, out = inputs
    before = snapshot(out)
    proc = start_slow(["lrn", f"{src}/", "-o", f"{out}/", "--force", "-q", "-j", jobs])
    wait_for_temp(out, proc)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"normcli did not stop within 30 s of {sig.name}")
    assert proc.returncode == code, err.decode()
    assert b"Traceback" not in err, err.decode()
    assert temp_files(out) == []
    assert snapshot(out) == before


def test_sigkill_leaves_a_stale_temp_that_does_not_break_the_next_run(inputs):
    COUNTS["fault: SIGKILL mid-write"] += 1
    src, out = inputs
    before = snapshot(out)
    proc = start_slow(["lrn", f"{src}/", "-o", f"{out}/", "--force", "-q", "-j", "1"], delay=2)
    stale = wait_for_temp(out, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert stale.exists(), "a SIGKILLed run cannot clean up; the temp file is expected"
    stale_all = temp_files(out)  # every output staged before the kill
    assert stale.name.startswith(".") and stale.name.endswith(".tmp")
    # the old outputs are whole and unchanged
    assert {k: v for k, v in snapshot(out).items() if atomic.TEMP_MARKER not in k} == before

    # a fresh temp file is not removed (a running normcli may own it) ...
    assert cleanup_stale_temps(out) == []
    # ... the next run is not disturbed by it, also when it reads that folder
    result = run(["lrn", f"{src}/", "-o", f"{out}/", "--force", "-q"])
    assert result.exit_code == 0, result.stderr
    assert all(p.exists() for p in stale_all)
    assert np.load(out / "a.npy").shape == (4, 8, 8)
    result = run(["stats", f"{out}/", "-q"])
    assert result.exit_code == 0, result.stderr  # hidden temp files are not inputs
    # ... and once it is old, cleanup removes it (and nothing else)
    old = time.time() - 7200
    for p in stale_all:
        os.utime(p, (old, old))
    assert cleanup_stale_temps(out) == sorted(stale_all)
    assert temp_files(out) == []
    assert sorted(snapshot(out)) == ["a.npy", "b.npy", "c.npy"]


def test_cleanup_keeps_look_alikes(tmp_path):
    """Only regular files named like normcli's temporaries are removed."""
    old = time.time() - 7200
    names = [".x.npy.normcli-abc.tmp", "x.npy.normcli-abc.tmp", ".x.npy.normcli-abc",
             ".x.npy.tmp", "x.npy"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".d.normcli-1.tmp").mkdir()
    removed = cleanup_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".x.npy.normcli-abc.tmp"]
    assert (tmp_path / ".d.normcli-1.tmp").is_dir()


def test_resume_after_sigint_redoes_only_what_is_missing(tmp_path):
    """An interrupted --resume run leaves whole outputs and a journal; the same command
    run again finishes the rest without redoing the finished part."""
    COUNTS["fault: SIGINT, then --resume"] += 1
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(5)
    for i in range(12):
        np.save(src / f"x{i:02d}.npy", rng.standard_normal((3, 6, 6)))
    args = ["lrn", f"{src}/", "-o", f"{out}/", "--resume", "-q", "-j", "1"]
    proc = start_slow(args, delay=0.3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(out.glob("x*.npy"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert b"run the same command with --resume to finish" in err, err.decode()
    assert temp_files(out) == []
    in_place = sorted(p.name for p in out.glob("x*.npy"))
    assert 3 <= len(in_place) < 12
    for name in in_place:  # every output in place is whole and right
        np.testing.assert_array_equal(np.load(out / name), normcli.lrn(np.load(src / name)))
    journal = [json.loads(line) for line in (out / ".normcli.journal").read_text().splitlines()]
    recorded = {e["output"] for e in journal[1:] if "input" in e}
    assert len(recorded) >= len(in_place) - 1  # (the last may be in place, not yet recorded)
    finished = {name: (out / name).stat().st_mtime_ns for name in recorded}
    result = run(args)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.glob("x*.npy")) == [f"x{i:02d}.npy" for i in range(12)]
    for name, mtime in finished.items():  # not redone
        assert (out / name).stat().st_mtime_ns == mtime
    for i in range(12):
        name = f"x{i:02d}.npy"
        np.testing.assert_array_equal(np.load(out / name), normcli.lrn(np.load(src / name)))
    # other settings: the journal is refused, naming it
    result = run([*args, "--n", "3"])
    assert result.exit_code == 1
    assert ".normcli.journal: is the journal of a run with other settings" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_resume_stopped_by_another_signal_says_how_far_it_got(tmp_path, sig):
    """SIGTERM or SIGHUP during a --resume run: 128 + the signal, nothing half-written, and
    the same hint as Ctrl-C (it used to exit silently)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(8):
        np.save(src / f"x{i:02d}.npy", np.full((2, 4, 4), float(i)))
    proc = start_slow(["lrn", f"{src}/", "-o", f"{out}/", "--resume", "-q", "-j", "1"],
                      delay=0.3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(out.glob("x*.npy"))) < 2:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err.decode()
    line = err.decode().strip().splitlines()[-1]
    assert line.startswith(f"normcli: stopped by {sig.name}: "), line
    assert "run the same command with --resume to finish" in line
    assert temp_files(out) == []


@pytest.mark.parametrize("kind", ["binary", "list head", "fifo", "dev zero"])
def test_resume_journal_garbled_or_not_a_file_is_its_one_line_error(tmp_path, kind):
    """A journal that is not UTF-8, not a JSON object, a FIFO or /dev/zero: refused
    naming it (no traceback, no hang), the outputs untouched."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    np.save(src / "a.npy", np.ones((2, 3, 3)))
    journal = out / ".normcli.journal"
    if kind == "fifo":
        os.mkfifo(journal)
    elif kind == "dev zero":
        journal.symlink_to("/dev/zero")
    else:
        journal.write_bytes(b"\xff\xfe\x00junk\n" if kind == "binary" else b"[1, 2]\n")
    result = run(["lrn", src, "-o", f"{out}/", "--resume", "-q"])
    assert_one_error(result, ".normcli.journal: ")
    assert sorted(p.name for p in out.iterdir()) == [".normcli.journal"]
