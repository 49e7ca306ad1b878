"""Batch norm over a directory: normcli against the I/O floor, and its peak memory.

Builds a synthetic dataset of float32 feature maps, then measures in the same
run, at two dataset sizes:

* the floor: a plain numpy loop that loads every file twice and saves it once
  (the least any two-pass batch norm that writes its results must do), and the
  same loop with an fsync per saved file (the synced floor);
* ``normcli batchnorm DIR -o OUT -q --no-sync`` in a subprocess, with
  ``--jobs 1`` and the default (all cores), against the floor: like the floor,
  it leaves its outputs in the page cache;
* ``normcli batchnorm DIR -o OUT -q`` (the default: outputs fsynced before they
  are renamed into place) against the synced floor;
* the peak resident memory of the normcli processes (``ru_maxrss`` of the
  child, as ``/usr/bin/time -v`` reports it).

Medians of ``--repeat`` runs.  Nothing is asserted: read the ratios.

    python benchmarks/bench_stream.py                 # 400 and 800 files of (96, 55, 55)
    python benchmarks/bench_stream.py --files 50 --quick
"""

from __future__ import annotations

import argparse
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


def make_dataset(folder: Path, files: int, shape: tuple[int, ...]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(files):
        x = np.maximum(rng.standard_normal(shape, dtype=np.float32) + 0.3, 0)
        np.save(folder / f"f{i:05d}.npy", x)
    return files * int(np.prod(shape)) * 4


FLOOR = """
import os, sys
from pathlib import Path
import numpy as np
src, dst, synced = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
names = sorted(src.glob("*.npy"))
for name in names:  # pass 1: every file loaded once
    np.load(name)
dst.mkdir(exist_ok=True)
for name in names:  # pass 2: loaded again and saved
    with open(dst / name.name, "wb") as f:
        np.save(f, np.load(name))
        if synced:
            f.flush()
            os.fsync(f.fileno())
"""


def floor_loop(src: Path, dst: Path, synced: bool = False) -> None:
    """Load every file twice (statistics, then normalization) and save it once.

    Run as a script in its own process, like normcli, so that both pay for
    starting Python and importing numpy.  ``synced``: fsync every saved file,
    as normcli's atomic writes do.  ``dst`` must not exist (see :func:`settle`).
    """
    subprocess.run([sys.executable, "-c", FLOOR, str(src), str(dst), "1" if synced else "0"],
                   check=True)


def run_normcli(src: Path, dst: Path, jobs: int | None, sync: bool = True) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one ``normcli batchnorm`` run into ``dst``,
    which must not exist (see :func:`settle`)."""
    cmd = [sys.executable, "-m", "normcli", "batchnorm", str(src), "-o", f"{dst}/", "-q"]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    if not sync:
        cmd.append("--no-sync")
    start = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    return elapsed, usage.ru_maxrss * 1024


def settle(*folders: Path) -> None:
    """Remove the previous outputs, then write every dirty page to disk: so that no
    run pays for the deletes and write-back of the one before (on ext4 with
    ``discard`` the deletes alone kept the disk busy for a second)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    os.sync()
    time.sleep(0.2)


def paired_ratio(runs: dict[str, list[tuple[float, int]]], name: str, base: str) -> float:
    """The median of ``name``'s time over ``base``'s within each repeat: runs seconds
    apart, so that a slow drift of the shared machine's speed cancels."""
    return statistics.median(a[0] / b[0] for a, b in zip(runs[name], runs[base], strict=True))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=400, help="files in the first dataset")
    ap.add_argument("--shape", default="96,55,55")
    ap.add_argument("--repeat", type=int, default=9,
                    help="timed runs of each variant (the machine is shared: medians of many)")
    ap.add_argument("--dir", default=None, help="where to build the datasets (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="one dataset size, one repeat")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    root = Path(args.dir or tempfile.mkdtemp(prefix="normcli-bench-"))
    sizes = [args.files] if args.quick else [args.files, 2 * args.files]
    repeat = 1 if args.quick else args.repeat
    print(compile_normcli())
    print(f"normcli batchnorm over a directory; sample shape {shape} float32; "
          f"{os.cpu_count()} cores; medians of {repeat}; data in {root}")
    print("floor: a numpy script that loads every file twice and saves it once; synced: the same")
    print("with an fsync per saved file. Both run in their own process, like normcli.")
    print("no-sync: normcli --no-sync, against the floor; synced: normcli's default, against the")
    print("synced floor. j1: --jobs 1; jall: all cores (the default). Times: medians; ratio: the")
    print("median of the ratios within each repeat (the runs it compares are seconds apart).")
    head = (f"{'files':>5} {'MB':>5} | {'floor s':>7} {'no-sync j1':>10} {'jall':>5} "
            f"{'ratio':>5} | {'synced floor':>12} {'synced jall':>11} {'ratio':>5} | "
            f"{'peak RSS MB':>11}")
    print(head)
    print("-" * len(head))
    try:
        for files in sizes:
            src, dst, fdst = root / f"data{files}", root / f"out{files}", root / f"floor{files}"
            nbytes = make_dataset(src, files, shape)
            # Each run starts settled (not timed); the variants take turns.
            variants = {
                "floor": lambda: (timed(floor_loop, src, fdst), 0),  # noqa: B023
                "synced floor": lambda: (timed(floor_loop, src, fdst, True), 0),  # noqa: B023
                "j1": lambda: run_normcli(src, dst, 1, sync=False),  # noqa: B023
                "jall": lambda: run_normcli(src, dst, None, sync=False),  # noqa: B023
                "synced": lambda: run_normcli(src, dst, None, sync=True),  # noqa: B023
            }
            runs: dict[str, list[tuple[float, int]]] = {name: [] for name in variants}
            for _ in range(repeat):
                for name, run in variants.items():
                    settle(dst, fdst)
                    runs[name].append(run())
            t = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
            peak = max(r[1] for rs in runs.values() for r in rs)

            print(f"{files:>5} {nbytes / 1e6:>5.0f} | {t['floor']:>7.2f} {t['j1']:>10.2f} "
                  f"{t['jall']:>5.2f} {paired_ratio(runs, 'jall', 'floor'):>5.2f} | "
                  f"{t['synced floor']:>12.2f} {t['synced']:>11.2f} "
                  f"{paired_ratio(runs, 'synced', 'synced floor'):>5.2f} | {peak / 1e6:>11.0f}")
            shutil.rmtree(src)
            shutil.rmtree(dst, ignore_errors=True)
            shutil.rmtree(fdst, ignore_errors=True)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print("targets: ratio <= 1.3 with all cores; jall faster than j1; "
          "peak RSS <= 150 MB and not growing with the dataset")


if __name__ == "__main__":
    main()
