"""Runs on a real Dask cluster: a scheduler and two workers on 127.0.0.1, and ``local``.

The cluster is made of real ``dask scheduler`` / ``dask worker`` processes on
free ports, started once for the module (bounded waits) and always torn down.
The workers run in a folder of their own: a relative input path names a file
they cannot see.
"""

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
from PIL import Image

from normcli import runs
from normcli.errors import InputError
from normcli.runs.each import UNLIKE_NOTE

START_TIMEOUT = 30.0


def _start(args, cwd, log, env=None):
    return subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


class Cluster:
    """A scheduler and ``workers`` worker processes (one thread each, no nanny)."""

    def __init__(self, root: Path, workers: int = 2, env: dict | None = None,
                 worker_envs: list[dict] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.file = root / "scheduler.json"
        self.log = open(root / "cluster.log", "wb")  # noqa: SIM115 (closed by close())
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        cwd = root / "workers-cwd"
        cwd.mkdir(exist_ok=True)
        try:
            self.procs.append(_start(
                ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--scheduler-file", str(self.file), "--dashboard-address", "127.0.0.1:0"],
                cwd, self.log, env))
            deadline = time.monotonic() + START_TIMEOUT
            while not self.file.exists() or not self.file.stat().st_size:
                assert time.monotonic() < deadline, "the scheduler did not start"
                assert self.procs[0].poll() is None, "the scheduler exited"
                time.sleep(0.05)
            for k in range(workers):
                w = _start(["distributed.cli.dask_worker", "--scheduler-file", str(self.file),
                            "--nthreads", "1", "--nworkers", "1", "--no-nanny",
                            "--host", "127.0.0.1", "--no-dashboard"], cwd, self.log,
                           {**(env or {}), **(worker_envs[k] if worker_envs else {})})
                self.procs.append(w)
                self.workers.append(w)
            from distributed import Client

            with Client(scheduler_file=str(self.file), timeout=START_TIMEOUT) as client:
                client.wait_for_workers(workers, timeout=START_TIMEOUT)
                self.address = client.scheduler.address
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        _stop(self.procs)
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


def _photos(d: Path, count: int, size=(24, 32), bad: int | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    for i in range(count):
        h, w = size[0] + i % 5, size[1] + i % 3  # mixed sizes
        a = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(d / f"p{i:04d}.jpg", quality=90)
    if bad is not None:
        (d / f"p{bad:04d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return d


def _files(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (temporary ones too), by relative name."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return _photos(tmp_path_factory.mktemp("data") / "photos", 60)


def test_statistics_and_outputs_are_those_of_one_job(cluster, photos, tmp_path):
    one = runs.stats([photos], per="channel", jobs=1)
    for address in (cluster.address, str(cluster.file)):
        on = runs.stats([photos], per="channel", scheduler=address)
        for name in ("mean", "var", "var_unbiased", "min", "max", "count"):
            assert np.array_equal(getattr(on.dataset, name), getattr(one.dataset, name)), name
    local = runs.batchnorm([photos], per="channel", jobs=1, output=f"{tmp_path / 'one'}/",
                           save_stats=tmp_path / "one.npz")
    far = runs.batchnorm([photos], per="channel", scheduler=cluster.address,
                         output=f"{tmp_path / 'far'}/", save_stats=tmp_path / "far.npz")
    assert _files(tmp_path / "far") == _files(tmp_path / "one")
    assert len(_files(tmp_path / "far")) == 60
    assert np.array_equal(far.stats.mean, local.stats.mean)
    assert (tmp_path / "far.npz").read_bytes() == (tmp_path / "one.npz").read_bytes()
    assert [r.label for r in far.inputs] == [r.label for r in local.inputs]
    assert far.pixels == local.pixels
    lrn_one = runs.lrn([photos], output=f"{tmp_path / 'lrn1'}/", jobs=1, summaries=False)
    lrn_far = runs.lrn([photos], output=f"{tmp_path / 'lrn2'}/", scheduler=cluster.address,
                       summaries=False)
    assert _files(tmp_path / "lrn2") == _files(tmp_path / "lrn1")
    assert UNLIKE_NOTE not in lrn_far.notes  # (workers with this machine's BLAS kernels)
    assert lrn_far.written == [w.replace("lrn1", "lrn2") for w in lrn_one.written]
    first = photos / "p0000.jpg"  # one input into one file
    runs.lrn([first], output=tmp_path / "a.png", jobs=1)
    runs.lrn([first], output=tmp_path / "b.png", scheduler=cluster.address)
    assert (tmp_path / "b.png").read_bytes() == (tmp_path / "a.png").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "a.png", "b.png", "far.npz", "one.npz"]


def test_a_bad_input_fails_the_run_and_nothing_is_written(cluster, tmp_path):
    d = _photos(tmp_path / "photos", 40, bad=29)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"p0029\.jpg: .*\(on worker "):
        runs.batchnorm([d], per="channel", scheduler=cluster.address, output=f"{out}/")
    assert not out.exists() or not _files(out)
    with pytest.raises(InputError, match=r"p0029\.jpg"):
        runs.stats([d], per="channel", scheduler=cluster.address)
    # --keep-going: the bad one reported, every good one written
    report = runs.batchnorm([d], per="channel", scheduler=cluster.address, output=f"{out}/",
                            keep_going=True)
    assert [f.index for f in report.failures] == [29]
    assert sorted(_files(out)) == sorted(f"p{i:04d}.png" for i in range(40) if i != 29)


def test_a_file_the_workers_cannot_see_is_named_with_the_worker(cluster, tmp_path,
                                                                 monkeypatch):
    _photos(tmp_path / "here", 3)
    monkeypatch.chdir(tmp_path)  # (the workers run elsewhere: "here/" is not theirs)
    with pytest.raises(InputError, match=r"^here/p0000\.jpg: .* \(on worker tcp://127\.0\.0\.1"):
        runs.stats(["here"], per="channel", scheduler=cluster.address)


def test_local_cluster(photos, tmp_path):
    one = runs.stats([photos], per="channel", jobs=1)
    on = runs.stats([photos], per="channel", scheduler="local")
    assert np.array_equal(on.dataset.var, one.dataset.var)


def _kill_when(stage_name: str, after: int, proc: subprocess.Popen):
    fired = threading.Event()

    def progress(stage, done, total, nbytes):
        if stage == stage_name and done >= after and not fired.is_set():
            fired.set()
            os.kill(proc.pid, signal.SIGKILL)

    return progress, fired


def test_a_worker_with_other_blas_kernels_is_named_in_a_note(tmp_path, photos):
    """OpenBLAS picks its kernels per CPU, and LRN's band products round by them: a
    worker made to pick others (``OPENBLAS_CORETYPE``), as on a machine of another
    kind, is named with its kernels in the LRN run's note.  Batch norm and the
    statistics call no BLAS: no note."""
    from normcli.ops._blas import arithmetic

    other = {"OPENBLAS_CORETYPE": "Prescott"}  # (SSE3: any x86-64 runs it)
    probe = subprocess.run(
        [sys.executable, "-c", "from normcli.ops._blas import arithmetic; print(arithmetic())"],
        env={**os.environ, **other}, capture_output=True, text=True, check=True,
        timeout=60).stdout.strip()
    if probe == arithmetic():
        pytest.skip("OPENBLAS_CORETYPE changes nothing here (no OpenBLAS, or not x86-64)")
    c = Cluster(tmp_path / "mixed", worker_envs=[{}, other])
    try:
        report = runs.lrn([photos], output=f"{tmp_path / 'out'}/", scheduler=c.address,
                          summaries=False)
        stats = runs.stats([photos], per="channel", scheduler=c.address)
    finally:
        c.close()
    (where,) = report.notes[UNLIKE_NOTE]
    assert where.startswith("tcp://127.0.0.1:") and where.endswith(f": {probe}")
    assert UNLIKE_NOTE not in stats.notes
    assert len(report.written) == 60


def test_a_worker_killed_mid_run_is_replaced_by_dask_s_retry(tmp_path, photos):
    d = _photos(tmp_path / "big", 120, size=(96, 128))
    c = Cluster(tmp_path / "kill")
    try:
        progress, fired = _kill_when("normalizing", 1, c.workers[0])
        report = runs.batchnorm([d], per="channel", scheduler=c.address,
                                output=f"{tmp_path / 'far'}/", progress=progress)
        assert fired.is_set()
    finally:
        c.close()
    runs.batchnorm([d], per="channel", jobs=1, output=f"{tmp_path / 'one'}/")
    assert _files(tmp_path / "far") == _files(tmp_path / "one")  # no temporary file left
    assert len(report.written) == 120


def test_a_task_whose_worker_dies_too_often_fails_the_run_cleanly(tmp_path):
    from normcli.runs.cluster import ClusterError

    d = _photos(tmp_path / "big", 120, size=(96, 128))
    out = tmp_path / "out"
    c = Cluster(tmp_path / "kill", env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    try:
        progress, fired = _kill_when("normalizing", 1, c.workers[0])
        with pytest.raises(ClusterError, match="a worker died"):
            runs.batchnorm([d], per="channel", scheduler=c.address, output=f"{out}/",
                           progress=progress)
    finally:
        c.close()
    assert not out.exists() or not _files(out)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_on_the_client_leaves_nothing(cluster, tmp_path, signum, code):
    d = _photos(tmp_path / "big", 400, size=(96, 128))
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0000.png").write_bytes(b"old")  # replaced only by a run that finishes
    proc = subprocess.Popen(
        [sys.executable, "-m", "normcli", "batchnorm", str(d), "--per", "channel",
         "-o", f"{out}/", "--force", "--scheduler", cluster.address, "-q"],
        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(".normcli-" in p.name for p in out.iterdir()):
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    assert _files(out) == {"p0000.png": b"old"}


def _arrays(d: Path, count: int, gray=()) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        a = 1e4 + rng.normal(size=(1 if i in gray else 3, 6, 5)) * 10.0 ** (i % 5)
        np.save(d / f"a{i:03d}.npy", a.astype(np.float32))
    return [str(p) for p in sorted(d.glob("*.npy"))]


def test_float_statistics_are_the_local_bits_whatever_the_shards(cluster, tmp_path):
    """Float moments merge exactly only to rounding: the cluster's tree of merges
    is the local one, so the bits are the same for any task size."""
    from normcli.runs.cluster import ClusterEngine
    from normcli.runs.dataset import Failures, channel_statistics
    from normcli.runs.engine import ThreadEngine
    from normcli.runs.inputs import open_sources
    from normcli.runs.options import RunOptions

    sources = open_sources(_arrays(tmp_path / "a", 77, gray={5, 40}), RunOptions())
    with ThreadEngine(1) as engine:
        failures = Failures(True)
        local, _ = channel_statistics(sources, RunOptions(), engine, failures)
    assert [f.index for f in failures.sorted()] == [5, 40]
    for shard in (None, 8, 24, 80):
        far_failures = Failures(True)
        with ClusterEngine(cluster.address, shard=shard) as engine:
            far, _ = channel_statistics(sources, RunOptions(), engine, far_failures)
        for name in ("mean", "m2", "count", "min", "max"):
            assert np.array_equal(getattr(far, name), getattr(local, name)), (shard, name)
        assert far_failures.sorted() == failures.sorted()
    with ClusterEngine(cluster.address, shard=8) as engine, pytest.raises(
            InputError, match=r"a005\.npy: has 1 channel but \S*a000\.npy has 3 channels"):
        channel_statistics(sources, RunOptions(), engine, Failures(False))


def test_per_activation_batch_norm_of_arrays_is_that_of_one_job(cluster, tmp_path):
    inputs = _arrays(tmp_path / "a", 50)
    one = runs.batchnorm(inputs, per="activation", jobs=1, keep_going=True,
                         output=f"{tmp_path / 'one'}/")
    far = runs.batchnorm(inputs, per="activation", scheduler=cluster.address, keep_going=True,
                         output=f"{tmp_path / 'far'}/")
    assert np.array_equal(far.stats.mean, one.stats.mean)
    assert np.array_equal(far.stats.var, one.stats.var)
    assert _files(tmp_path / "far") == _files(tmp_path / "one")
    assert len(_files(tmp_path / "far")) == 50


_FAULTS = """
import resource, sys
import numpy as np
from normcli.runs.cluster import _kept_heap

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        a = np.ones(1 << 18, np.float32)  # 1 MiB, freed at once
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

if sys.argv[1] == "kept":
    with _kept_heap():
        faults()  # (the first array grows the heap)
        print(faults())
else:
    faults()
    print(faults())
"""


@pytest.mark.parametrize("trim", ["65536", None])
def test_a_nanny_s_malloc_trim_does_not_refault_every_array(trim):
    """With a Dask nanny's MALLOC_TRIM_THRESHOLD_, each 1 MiB array is mapped and
    faulted in again (256 faults each); in a shard the heap keeps it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if trim is not None:
        env["MALLOC_TRIM_THRESHOLD_"] = trim

    def run(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], env=env, check=True,
                             capture_output=True, text=True, timeout=60)
        return int(out.stdout)

    kept = run("kept")
    assert kept < 2000, kept  # (50 arrays of 256 pages: 12,800 if each were faulted)
    if trim is not None:
        assert run("plain") > 10_000  # (what the nanny's setting costs without it)


def test_a_shard_s_task_carries_its_own_inputs_only(tmp_path):
    """The run's per-input lists travel sliced: a task's size grows with its shard,
    not with the run (a million inputs would be ~100 MB per worker otherwise)."""
    import pickle

    from normcli._gather import Sliced
    from normcli.runs.cluster import ClusterEngine

    names = Sliced(f"{tmp_path}/photo{i:07d}.jpg" for i in range(100_000))
    fn = lambda i: names[i].upper()  # noqa: E731 (a closure, as a run's is)
    whole = ClusterEngine._pickled(fn)
    shard = ClusterEngine._pickled(fn, 500, 756)
    assert len(shard) < len(whole) / 100
    on_worker = pickle.loads(shard)
    assert on_worker(500) == names[500].upper() and on_worker(755) == names[755].upper()
    with pytest.raises(IndexError, match="input 756 is not in this shard"):
        on_worker(756)
    assert pickle.loads(whole)(99_999) == names[99_999].upper()
