"""How long ``identify`` takes on real-sized feature maps, against one kernel run.

    python benchmarks/bench_identify.py [--repeat N]

For AlexNet-sized ReLU feature maps ((1, 96, 55, 55) and (8, 96, 27, 27),
float32) made by Caffe's LRN (local_size 5, alpha 1e-4) and by batch norm per
channel (eps 1e-3), it prints the median time of ``identify(x, y)`` and of the
one kernel call that made ``y`` (float64 LRN, float32 batch norm), measured
round-robin in the same run, and their ratio: what fitting every window and
verifying every match costs beyond the kernel itself.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from normcli.ops.batchnorm import batch_norm
from normcli.ops.identify import identify
from normcli.ops.lrn import lrn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for shape in [(1, 96, 55, 55), (8, 96, 27, 27)]:
        x = np.maximum(rng.normal(size=shape), 0).astype(np.float32) * 30  # ReLU'd
        x64 = x.astype(np.float64)
        cases = {
            "LRN caffe n=5": (lrn(x, convention="caffe", n=5, alpha=1e-4, k=1.0),
                              lambda a=x64: lrn(a, convention="caffe", n=5, alpha=1e-4, k=1.0)),
            "BN per channel": (batch_norm(x, per="channel", eps=1e-3),
                               lambda a=x: batch_norm(a, per="channel", eps=1e-3)),
        }
        for name, (y, kernel) in cases.items():
            times: dict[str, list[float]] = {"identify": [], "kernel": []}
            found = identify(x, y)
            for _ in range(args.repeat):  # round-robin: both see the same machine load
                for label, f in (("identify", lambda a=x, b=y: identify(a, b)), ("kernel", kernel)):
                    t = time.perf_counter()
                    f()
                    times[label].append(time.perf_counter() - t)
            ident, base = (statistics.median(times[k]) for k in ("identify", "kernel"))
            print(f"{name:15} {'x'.join(map(str, shape)):>12}: identify {ident:6.2f} s, "
                  f"kernel {base:6.3f} s, ratio {ident / base:5.0f}x, "
                  f"{len(found.matches)} matches")


if __name__ == "__main__":
    main()
