"""normcli on a Dask cluster against one job and threads, on this machine.

Builds a CPU-bound dataset of small JPEGs (photo-like, mixed sizes near
256 x 192, quality 90), starts a real two-worker cluster on 127.0.0.1
(``dask scheduler`` and two ``dask worker --nthreads 1`` processes), then
measures in the same run, each command in its own process (all pay for
starting Python and the imports; ``local`` also for starting its cluster):

* ``stats DIR --per channel -q`` and ``batchnorm DIR --per channel -o OUT/ -q``
* with ``--jobs 1``, ``--jobs 2`` (threads), ``--scheduler local`` and
  ``--scheduler tcp://...`` (the two workers).

The variants take turns within a round; medians of ``--repeat`` rounds and
their ratios against ``--jobs 1``.  Before timing, the cluster's outputs are
checked to be the bytes of ``--jobs 1``.  Then the scale model's inputs:

* the per-task cost of the cluster (``client.map`` of no-op tasks: tasks per
  second through the scheduler and both workers);
* the client's cost per shard (pickling the run's function with the shard's
  part of the inputs' list) and one merge of two shards' moments (a task on a
  worker: the statistics are merged as a tree on the cluster);
* the time per input of one worker (``--jobs 1``),

and the predicted time for 1.28 M images on 100 workers.  Nothing is asserted.

    python benchmarks/bench_cluster.py                   # 2000 images, 3 rounds
    python benchmarks/bench_cluster.py --images 300 --quick
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bytecode import compile_normcli  # noqa: E402


def make_dataset(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (256, 192)
                 ) -> None:
    """``count`` JPEGs near ``size`` (within an eighth): smooth colour fields, an
    edge, sensor noise."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        w, h = (int(rng.integers(d - d // 8, d + d // 8 + 1)) for d in size)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        f = rng.uniform(5, 40, 3)
        base = np.stack([np.sin(x / f[0] + i) * np.cos(y / f[1]),
                         np.sin((x + y) / f[2]), np.cos(x / f[1] - y / f[0])], -1)
        edge = (x > rng.uniform(0, w)).astype(np.float32)[..., None] * rng.uniform(-0.3, 0.3, 3)
        a = 0.5 + 0.35 * base + edge + rng.normal(0, 0.03, (h, w, 3))
        Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(
            folder / f"img{i:05d}.jpg", quality=90)


class Cluster:
    """A scheduler and two one-thread workers on 127.0.0.1 (free ports)."""

    def __init__(self, root: Path, workers: int = 2) -> None:
        self.file = root / "scheduler.json"
        self.log = open(root / "cluster.log", "wb")  # noqa: SIM115
        self.procs = []
        run = [sys.executable, "-m"]
        self.procs.append(subprocess.Popen(
            [*run, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--scheduler-file", str(self.file), "--dashboard-address", "127.0.0.1:0"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=root))
        deadline = time.monotonic() + 60
        while not self.file.exists() or not self.file.stat().st_size:
            if time.monotonic() > deadline:
                raise SystemExit("the scheduler did not start")
            time.sleep(0.05)
        for _ in range(workers):
            self.procs.append(subprocess.Popen(
                [*run, "distributed.cli.dask_worker", "--scheduler-file", str(self.file),
                 "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--host", "127.0.0.1",
                 "--no-dashboard"], stdout=self.log, stderr=subprocess.STDOUT, cwd=root))
        from distributed import Client

        with Client(scheduler_file=str(self.file), timeout=60) as client:
            client.wait_for_workers(workers, timeout=60)
            self.address = client.scheduler.address

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


DECODE = """
import sys, time
import numpy as np
from PIL import Image
names = sys.argv[1:]
for name in names[:20]:  # warm up
    np.asarray(Image.open(name).convert("RGB"))
start = time.perf_counter()
for name in names:
    np.asarray(Image.open(name).convert("RGB"))
print(time.perf_counter() - start)
"""


def decode_scaling(data: Path, rounds: int) -> tuple[float, float]:
    """``(one, two)``: seconds for one process to decode every image with Pillow
    (no normcli) and for two processes at once, each decoding half (the
    slower one's time).  ``one / two`` is how this machine's two cores scale
    work that is all decoding (shared caches, memory and the hypervisor's
    cores decide it, not normcli): a reference for the engines' ratios, not a
    bound (it is one short measurement on a machine that may be shared)."""
    names = sorted(str(p) for p in data.iterdir())
    halves = (names[0::2], names[1::2])
    ones, twos = [], []
    for _ in range(rounds):
        done = subprocess.run([sys.executable, "-c", DECODE, *names], check=True,
                              capture_output=True, text=True)
        ones.append(float(done.stdout))
        procs = [subprocess.Popen([sys.executable, "-c", DECODE, *half],
                                  stdout=subprocess.PIPE, text=True) for half in halves]
        twos.append(max(float(p.communicate()[0]) for p in procs))
    return statistics.median(ones), statistics.median(twos)


def fixed_cost(normcli: list[str], data: Path, flags: list[str], rounds: int) -> float:
    """Seconds of ``stats --per channel`` over 8 inputs with ``flags``: what a run
    costs whatever its size (starting Python, the imports, for a cluster
    importing dask.distributed and connecting to the scheduler)."""
    few = data.parent / "few"
    few.mkdir(exist_ok=True)
    for p in sorted(data.iterdir())[:8]:
        target = few / p.name
        if not target.exists():
            shutil.copyfile(p, target)
    return statistics.median(timed([*normcli, "stats", str(few), "--per", "channel", "-q",
                                    *flags]) for _ in range(rounds))


def _noop(i):
    return i


def task_cost(address: str, tasks: int) -> float:
    """Seconds per task of ``client.map`` over no-op tasks (median of 3)."""
    from distributed import Client, wait

    with Client(address, timeout=30) as client:
        wait(client.map(_noop, range(20), pure=False))  # warm up
        costs = []
        for _ in range(3):
            t = time.perf_counter()
            wait(client.map(_noop, range(tasks), pure=False))
            costs.append((time.perf_counter() - t) / tasks)
    return statistics.median(costs)


def client_cost_per_shard(data: Path, shard: int) -> float:
    """Seconds the client spends making one task of ``shard`` inputs: pickling the
    run's per-input function for it (the inputs' list travels sliced)."""
    from normcli.runs.cluster import ClusterEngine
    from normcli.runs.dataset import input_moments
    from normcli.runs.inputs import open_inputs
    from normcli.runs.options import RunOptions

    opts = RunOptions()
    sources = open_inputs([str(data)], opts).sources
    fn = lambda i: input_moments(sources[i], opts)  # noqa: E731 (a run's closure)
    shard = min(shard, len(sources))
    costs = []
    for _ in range(5):
        t = time.perf_counter()
        for lo in range(0, 20 * shard, shard):
            ClusterEngine._pickled(fn, lo % len(sources), lo % len(sources) + shard)
        costs.append((time.perf_counter() - t) / 20)
    return statistics.median(costs)


def merge_cost(data: Path) -> float:
    """Seconds one merge task's work takes on a worker: two shards' partials
    (an RGB dataset's exact counts, as ``stats --per channel`` reduces them)."""
    from normcli.ops.dataset import ChannelMoments
    from normcli.runs.dataset import Keyed, input_moments
    from normcli.runs.inputs import open_inputs
    from normcli.runs.options import RunOptions

    opts = RunOptions()
    sources = open_inputs([str(data)], opts).sources[:2]
    parts = []
    for i, source in enumerate(sources):
        part = Keyed()
        m = input_moments(source, opts).moments
        part.add(i, m.channels, "RGB", m, lambda m: ChannelMoments(m.channels).absorb(m),
                 lambda total, m: total.absorb(m))
        parts.append(part)
    t = time.perf_counter()
    for _ in range(200):
        Keyed.combined(parts[0], parts[1], ChannelMoments.merge)
    return (time.perf_counter() - t) / 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--size", default="256x192", help="images near WxH (default 256x192; "
                        "ImageNet's photos average near 500x375)")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    print(compile_normcli())
    normcli = [str(Path(sys.executable).parent / "normcli")]
    root = Path(tempfile.mkdtemp(prefix="normcli-bench-cluster-"))
    cluster = None
    try:
        data = root / "photos"
        t = time.perf_counter()
        size = tuple(int(d) for d in args.size.lower().split("x"))
        make_dataset(data, args.images, size=size)
        megabytes = sum(p.stat().st_size for p in data.iterdir()) / 1e6
        print(f"dataset: {args.images:,} JPEGs near {size[0]}x{size[1]} ({megabytes:.0f} MB) in "
              f"{time.perf_counter() - t:.1f} s; load: {os.getloadavg()[0]:.2f}")
        cluster = Cluster(root)
        variants = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"],
                    "--scheduler local": ["--scheduler", "local"],
                    "--scheduler tcp (2 workers)": ["--scheduler", cluster.address]}
        out = root / "out"
        commands = {
            "stats --per channel": [*normcli, "stats", str(data), "--per", "channel", "-q"],
            "batchnorm -o DIR/": [*normcli, "batchnorm", str(data), "--per", "channel", "-o",
                                  f"{out}/", "-q"],
        }
        # the bits first: the cluster's outputs are those of --jobs 1
        for name, flags in (("one", variants["--jobs 1"]),
                            ("tcp", variants["--scheduler tcp (2 workers)"])):
            subprocess.run([*commands["batchnorm -o DIR/"][:-3], "-o", f"{root / name}/",
                            "-q", *flags], check=True)
        same = all((root / "one" / p.name).read_bytes() == p.read_bytes()
                   for p in (root / "tcp").iterdir())
        print(f"cluster outputs identical to --jobs 1: {same}")
        shutil.rmtree(root / "one")
        shutil.rmtree(root / "tcp")
        times = {(c, v): [] for c in commands for v in variants}
        for _ in range(repeat):
            for c, cmd in commands.items():
                for v, flags in variants.items():
                    shutil.rmtree(out, ignore_errors=True)
                    times[c, v].append(timed([*cmd, *flags]))
        print(f"\n{'':28}{'median s':>10}{'vs --jobs 1':>13}   (rounds: {repeat}; load "
              f"{os.getloadavg()[0]:.2f})")
        medians = {k: statistics.median(v) for k, v in times.items()}
        for c in commands:
            print(c)
            base = medians[c, "--jobs 1"]
            for v in variants:
                print(f"  {v:26}{medians[c, v]:10.2f}{base / medians[c, v]:12.2f}x")
        one, two = decode_scaling(data, repeat)
        print(f"\nplain decoding (Pillow, no normcli): one process {one:.2f} s, two at once "
              f"{two:.2f} s: {one / two:.2f}x (how two cores scale decoding alone here)")
        fixed = {v: fixed_cost(normcli, data, variants[v], repeat)
                 for v in ("--jobs 1", "--scheduler tcp (2 workers)")}
        stats_one = medians["stats --per channel", "--jobs 1"]
        stats_tcp = medians["stats --per channel", "--scheduler tcp (2 workers)"]
        work_one = stats_one - fixed["--jobs 1"]
        work_tcp = stats_tcp - fixed["--scheduler tcp (2 workers)"]
        print(f"fixed cost of a run (stats of 8 inputs): --jobs 1 {fixed['--jobs 1']:.2f} s, "
              f"tcp {fixed['--scheduler tcp (2 workers)']:.2f} s; stats beyond it: --jobs 1 "
              f"{work_one:.2f} s, tcp {work_tcp:.2f} s: {work_one / work_tcp:.2f}x")
        from normcli.runs.cluster import SHARD

        per_task = task_cost(cluster.address, 500)
        per_shard = client_cost_per_shard(data, SHARD)
        merge = merge_cost(data)
        per_input = medians["stats --per channel", "--jobs 1"] / args.images
        print(f"\nper task (client.map, no-op, 2 workers): {per_task * 1e3:.2f} ms")
        print(f"client per shard of {SHARD} (pickling its inputs' part of the run's function): "
              f"{per_shard * 1e3:.2f} ms")
        print(f"one merge of two shards' moments (on a worker): {merge * 1e6:.0f} us")
        print(f"stats per input on one worker (--jobs 1, start-up included): "
              f"{per_input * 1e3:.2f} ms")
        n, w = 1_280_000, 100
        shards = n / SHARD
        work = n * per_input / w
        tasks = shards * (per_task + per_shard)
        tree = math.ceil(math.log2(shards)) * (per_task + merge)
        print(f"scale model, 1.28 M images on {w} workers, shards of {SHARD}: work "
              f"{work:.0f} s + tasks {tasks:.0f} s (client and scheduler, serial) + the tree's "
              f"last merges {tree:.2f} s ~ {max(work, tasks):.0f}-{work + tasks + tree:.0f} s")
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
