"""Dataset mean and std of a folder of JPEGs: normcli against the decode floor and a script.

Builds a dataset of JPEGs of mixed sizes near 500 x 375 (photo-like: smooth
colour fields, edges and sensor noise, quality 90), then measures in the same
run, each in its own process (all pay for starting Python and the imports):

* **floor**: every image decoded by Pillow and nothing else, on all cores
  (worker threads: Pillow releases the GIL while it decodes; and a process
  pool, whichever is faster is the floor);
* **script**: what people write: a loop that opens each image, converts it to
  a numpy array and accumulates per-channel sums and sums of squares in
  float64 (one core, as such scripts run);
* **normcli**: ``normcli stats DIR --per channel --json``, and its peak RSS
  (``ru_maxrss`` of the child), at two dataset sizes (the second twice the
  first): memory must not grow with the number of images;
* **j1**: the floor on one thread against ``normcli ... -j 1``: the same
  comparison without the scheduling of two cores (on a shared, loaded
  machine the all-cores ratios mostly measure the neighbours).

Before timing, normcli's mean and std are checked against the script's (the
script's one-pass float64 formula loses digits, so 1e-9 relative).  Medians
of ``--repeat`` rounds; the variants take turns within a round.  Nothing is
asserted: read the ratios.

    python benchmarks/bench_images.py                # 2000 and 4000 images
    python benchmarks/bench_images.py --images 200 --quick
"""

from __future__ import annotations

import argparse
import json
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

HERE = Path(__file__).resolve().parent


def make_dataset(folder: Path, count: int, seed: int = 0) -> int:
    """``count`` JPEGs near 500 x 375; returns the bytes on disk."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(count):
        w, h = int(rng.integers(440, 561)), int(rng.integers(330, 421))
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        f = rng.uniform(5, 40, 3)
        base = np.stack([np.sin(x / f[0] + i) * np.cos(y / f[1]),
                         np.sin((x + y) / f[2]), np.cos(x / f[1] - y / f[0])], -1)
        edge = (x > rng.uniform(0, w)).astype(np.float32)[..., None] * rng.uniform(-0.3, 0.3, 3)
        img = (base * 0.35 + 0.5 + edge) * 255 + rng.normal(0, 6, (h, w, 3))
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        total += path.stat().st_size
    return total


FLOOR = """
import sys, os
from concurrent.futures import ThreadPoolExecutor, ProcessPoolExecutor
from pathlib import Path
from PIL import Image
def decode(p):
    with Image.open(p) as im:
        im.load()
    return 0
if __name__ == "__main__":
    names = sorted(Path(sys.argv[1]).glob("*.jpg"))
    cores = os.cpu_count() if len(sys.argv) < 4 else int(sys.argv[3])
    if sys.argv[2] == "threads":
        with ThreadPoolExecutor(cores) as ex:
            list(ex.map(decode, names))
    else:
        with ProcessPoolExecutor(cores) as ex:
            list(ex.map(decode, names, chunksize=16))
"""

SCRIPT = """
import sys, json
from pathlib import Path
import numpy as np
from PIL import Image
s1 = np.zeros(3); s2 = np.zeros(3); n = 0
for p in sorted(Path(sys.argv[1]).glob("*.jpg")):
    x = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255.0
    s1 += x.sum(axis=(0, 1)); s2 += (x * x).sum(axis=(0, 1)); n += x.shape[0] * x.shape[1]
mean = s1 / n
print(json.dumps({"mean": mean.tolist(), "std": np.sqrt(s2 / n - mean**2).tolist()}))
"""


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Wall time, peak RSS (bytes) and stdout of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), cmd)
    return elapsed, usage.ru_maxrss * 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000, help="images in the first dataset")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where to build the datasets (kept if given)")
    ap.add_argument("--quick", action="store_true", help="one dataset size, one repeat")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="normcli-bench-images-"))
    sizes = [args.images] if args.quick else [args.images, 2 * args.images]
    repeat = 1 if args.quick else args.repeat
    py = sys.executable
    print(compile_normcli())
    print(f"dataset mean/std of JPEGs near 500x375; {os.cpu_count()} cores; medians of "
          f"{repeat}; data in {root}")
    head = (f"{'images':>6} {'MB':>5} | {'floor thr':>9} {'floor proc':>10} | {'script':>6} | "
            f"{'normcli':>7} {'/floor':>6} {'/script':>7} | {'floor j1':>8} {'normcli j1':>10} "
            f"{'/floor':>6} | {'peak RSS MB':>11}")
    print(head)
    print("-" * len(head))
    try:
        for count in sizes:
            src = root / f"jpegs{count}"
            if not src.exists() or len(list(src.glob("*.jpg"))) != count:
                shutil.rmtree(src, ignore_errors=True)
                # in a child: the children measured next inherit this process's peak
                # RSS (ru_maxrss counts the pages a fork starts with)
                subprocess.run([py, "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); "
                                f"from bench_images import make_dataset; "
                                f"make_dataset(__import__('pathlib').Path({str(src)!r}), "
                                f"{count})"], check=True)
            nbytes = sum(p.stat().st_size for p in src.glob("*.jpg"))
            variants = {
                "threads": [py, "-c", FLOOR, str(src), "threads"],
                "procs": [py, "-c", FLOOR, str(src), "procs"],
                "script": [py, "-c", SCRIPT, str(src)],
                "normcli": [py, "-m", "normcli", "stats", str(src), "--per", "channel",
                            "--json"],
                "floor j1": [py, "-c", FLOOR, str(src), "threads", "1"],
                "normcli j1": [py, "-m", "normcli", "stats", str(src), "--per", "channel",
                               "--json", "-j", "1"],
            }
            # warm the page cache, and check the answers agree
            mine = json.loads(run(variants["normcli"])[2])
            theirs = json.loads(run(variants["script"])[2])
            err = max(abs(a / b - 1) for key in ("mean", "std")
                      for a, b in zip(mine[key], theirs[key], strict=True))
            times: dict[str, list[float]] = {name: [] for name in variants}
            peak = 0
            for _ in range(repeat):
                for name, cmd in variants.items():
                    elapsed, rss, _ = run(cmd)
                    times[name].append(elapsed)
                    if name == "normcli":
                        peak = max(peak, rss)
            t = {name: statistics.median(v) for name, v in times.items()}
            floor = min(t["threads"], t["procs"])
            ratio_floor = statistics.median(
                n / min(a, b) for n, a, b in zip(times["normcli"], times["threads"],
                                                 times["procs"], strict=True))
            ratio_script = statistics.median(
                n / s for n, s in zip(times["normcli"], times["script"], strict=True))
            ratio_j1 = statistics.median(
                n / f for n, f in zip(times["normcli j1"], times["floor j1"], strict=True))
            print(f"{count:>6} {nbytes / 1e6:>5.0f} | {t['threads']:>9.2f} {t['procs']:>10.2f} | "
                  f"{t['script']:>6.2f} | {t['normcli']:>7.2f} {ratio_floor:>6.2f} "
                  f"{ratio_script:>7.2f} | {t['floor j1']:>8.2f} {t['normcli j1']:>10.2f} "
                  f"{ratio_j1:>6.2f} | {peak / 1e6:>11.0f}   (max rel diff vs script "
                  f"{err:.1e}; floor {floor:.2f} s)")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print("targets: normcli/floor <= 1.2; normcli/script < 1; peak RSS flat when the dataset "
          "doubles")


if __name__ == "__main__":
    main()
