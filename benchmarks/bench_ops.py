"""Time normcli's LRN and batch norm against PyTorch and against a plain memory copy.

Every number printed is measured in this run: for each case the normcli call,
its PyTorch baseline and ``np.copyto`` of the same input (the memory-bandwidth
floor: one read and one write, into a preallocated destination) are run
round-robin, 2 warm-ups then ``--repeat`` timed runs each, so that a burst of
load from other processes hits all three alike.  Medians and interquartile
ranges are printed; ratios are ratios of medians.

Each case is also checked once: normcli's output against PyTorch's, as the
largest relative error.  A case whose error is above its tolerance is marked
WRONG whatever its speed.

Without PyTorch the baselines and checks are skipped (with a note) and only
the normcli and copy timings are printed.

Usage::

    python benchmarks/bench_ops.py              # the AlexNet workload (1.5 to 2.5 minutes)
    python benchmarks/bench_ops.py --quick      # a small shape, for a smoke run
    python benchmarks/bench_ops.py --methods    # box_sum's methods, per call
    python benchmarks/bench_ops.py --json       # machine-readable results
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

if importlib.util.find_spec("normcli") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from normcli import batch_norm, lrn  # noqa: E402
from normcli.ops._windows import box_sum, choose_method  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

DEFAULT_SHAPE = (32, 96, 55, 55)  # AlexNet's first LRN: a batch of conv1 outputs
QUICK_SHAPE = (8, 64, 27, 27)
WARMUP = 2

# AlexNet's LRN parameters (the seed convention's defaults), given explicitly to
# both sides so that the baseline does not depend on normcli's convention table.
K, ALPHA, BETA = 2.0, 1e-4, 0.75
EPS = 1e-5  # batch norm (PyTorch's default)

# With alpha = 1e-4 the window sum moves an LRN output by only ~1e-4 relative,
# so a wrong window is caught only by a tolerance well below that.
TOL_LRN = 1e-5
TOL_BN = 1e-4
NOISY = 0.25  # IQR / median above which a timing is flagged as disturbed
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Seconds per call of ``repeat`` runs; reported in milliseconds."""

    samples: list[float]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples)) * 1e3

    @property
    def iqr_ms(self) -> float:
        q1, q3 = np.percentile(self.samples, [25, 75])
        return float(q3 - q1) * 1e3

    @property
    def min_ms(self) -> float:
        return min(self.samples) * 1e3


def time_round_robin(funcs: dict[str, Callable[[], object]], repeat: int) -> dict[str, Timing]:
    """Time each function ``repeat`` times after ``WARMUP`` calls, interleaving them."""
    for _ in range(WARMUP):
        for func in funcs.values():
            func()
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            samples[name].append(time.perf_counter() - start)
    return {name: Timing(s) for name, s in samples.items()}


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest ``|got - want| / |want|``, elementwise.

    Values of ``want`` below 1% of its RMS are measured against that 1% instead,
    so that outputs that are near 0 by cancellation (batch norm) do not dominate.
    Different shapes give infinity.
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    floor = 1e-2 * float(np.sqrt(np.mean(want * want))) or np.finfo(np.float64).tiny
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), floor)))


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One timed normcli call, its PyTorch baseline and the array to copy for the floor.

    ``theirs`` returns a tensor; ``as_ours`` maps its numpy view onto the layout
    of normcli's output (a reshape, or a transpose for channels last).
    """

    group: str
    name: str
    data: str
    ours: Callable[[], np.ndarray]
    floor_input: np.ndarray
    theirs: Callable[[], object] | None = None
    as_ours: Callable[[np.ndarray], np.ndarray] = lambda a: a
    target: float | None = None
    tol: float = TOL_LRN
    result: dict[str, object] = field(default_factory=dict)


def torch_lrn_inter(xt, n: int):
    """The seed's inter-channel LRN (window c-n//2 .. c+n//2, alpha undivided) in PyTorch."""
    size = 2 * (n // 2) + 1  # odd, so PyTorch's window is centred too
    return F.local_response_norm(xt, size, alpha=ALPHA * size, beta=BETA, k=K)


def torch_lrn_intra(xt, n: int):
    """The seed's intra-channel LRN: a (2*(n//2)+1)^2 square, zero padded, alpha undivided."""
    win = 2 * (n // 2) + 1
    mean_sq = F.avg_pool2d(xt * xt, win, stride=1, padding=n // 2, count_include_pad=True)
    return xt / (K + ALPHA * mean_sq * win**2) ** BETA


def build_cases(shape: tuple[int, ...], threads: int, seed: int = 0) -> list[Case]:
    """The benchmark's cases for float32 data of ``shape`` (N, C, H, W)."""
    x = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    relu = np.maximum(x, 0)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    n_batch = shape[0]
    inputs = {"normal": x, "relu": relu}
    if torch is not None:
        xt = {name: torch.from_numpy(a) for name, a in inputs.items()}
        xt_cl = xt["normal"].contiguous(memory_format=torch.channels_last)
    else:
        xt, xt_cl = {}, None

    def baseline(func: Callable[[], object]) -> Callable[[], object] | None:
        return func if torch is not None else None

    def to_nhwc(a: np.ndarray) -> np.ndarray:
        return a.transpose(0, 2, 3, 1)

    seed_lrn = {"k": K, "alpha": ALPHA, "beta": BETA, "threads": threads}
    cases: list[Case] = []

    # Inter-channel, the seed convention over a range of n (cost should not grow with n),
    # then the ReLU'd data and PyTorch's own convention (identical to F.local_response_norm).
    for n in (2, 3, 5, 9, 16, 33):
        cases.append(Case(
            "LRN inter", f"seed n={n}", "normal",
            lambda n=n: lrn(x, mode="inter", convention="seed", n=n, **seed_lrn), x,
            baseline(lambda n=n: torch_lrn_inter(xt["normal"], n)),
            target=0.3 if n == 5 else None,
        ))
    cases.append(Case(
        "LRN inter", "seed n=5", "relu",
        lambda: lrn(relu, mode="inter", convention="seed", n=5, **seed_lrn), relu,
        baseline(lambda: torch_lrn_inter(xt["relu"], 5)), target=0.3,
    ))
    cases.append(Case(
        "LRN inter", "pytorch n=5", "normal",
        lambda: lrn(x, mode="inter", convention="pytorch", n=5, threads=threads), x,
        baseline(lambda: F.local_response_norm(xt["normal"], 5)), target=0.3,
    ))

    for n, data in ((2, "normal"), (5, "normal"), (16, "normal"), (5, "relu")):
        a = inputs[data]
        cases.append(Case(
            "LRN intra", f"seed n={n}", data,
            lambda a=a, n=n: lrn(a, mode="intra", convention="seed", n=n, **seed_lrn), a,
            baseline(lambda data=data, n=n: torch_lrn_intra(xt[data], n)), target=0.5,
        ))

    cases.append(Case(
        "batch norm", "per channel", "normal",
        lambda: batch_norm(x, per="channel", eps=EPS, threads=threads), x,
        baseline(lambda: F.batch_norm(xt["normal"], None, None, training=True, eps=EPS)),
        target=1.5, tol=TOL_BN,
    ))
    cases.append(Case(
        "batch norm", "per activation", "normal",
        lambda: batch_norm(x, per="activation", eps=EPS, threads=threads), x,
        baseline(lambda: F.batch_norm(
            xt["normal"].reshape(n_batch, -1), None, None, training=True, eps=EPS)),
        as_ours=lambda a: a.reshape(shape), target=1.5, tol=TOL_BN,
    ))

    # Channels last, for information: normcli reads (N, H, W, C); PyTorch gets the same
    # memory as a channels_last tensor.
    cl = {**seed_lrn, "channels_last": True}
    cases.append(Case(
        "channels last", "LRN inter seed n=5", "normal",
        lambda: lrn(x_cl, mode="inter", convention="seed", n=5, **cl), x_cl,
        baseline(lambda: torch_lrn_inter(xt_cl, 5)), as_ours=to_nhwc,
    ))
    cases.append(Case(
        "channels last", "LRN intra seed n=5", "normal",
        lambda: lrn(x_cl, mode="intra", convention="seed", n=5, **cl), x_cl,
        baseline(lambda: torch_lrn_intra(xt_cl, 5)), as_ours=to_nhwc,
    ))
    cases.append(Case(
        "channels last", "batch norm per channel", "normal",
        lambda: batch_norm(x_cl, per="channel", eps=EPS, channels_last=True, threads=threads),
        x_cl,
        baseline(lambda: F.batch_norm(xt_cl, None, None, training=True, eps=EPS)),
        as_ours=to_nhwc, tol=TOL_BN,
    ))
    return cases


def run_case(case: Case, repeat: int) -> None:
    """Check, then time, one case; fill ``case.result``."""
    res = case.result
    res.update(group=case.group, case=case.name, data=case.data, target=case.target)
    if case.theirs is not None:
        res["max_rel_err"] = rel_error(case.ours(), case.as_ours(case.theirs().numpy()))
        res["tol"] = case.tol
    dst = np.empty_like(case.floor_input)
    funcs = {"normcli": case.ours, "copy": lambda: np.copyto(dst, case.floor_input)}
    if case.theirs is not None:
        funcs["baseline"] = case.theirs
    for name, timing in time_round_robin(funcs, repeat).items():
        res[f"{name}_ms"] = timing.median_ms
        res[f"{name}_iqr_ms"] = timing.iqr_ms
        res[f"{name}_min_ms"] = timing.min_ms
    res["vs_copy"] = res["normcli_ms"] / res["copy_ms"]
    if "baseline_ms" in res:
        res["ratio"] = res["normcli_ms"] / res["baseline_ms"]
    res["verdict"] = verdict(res)


def verdict(res: dict[str, object]) -> str:
    if "max_rel_err" in res and not res["max_rel_err"] <= res["tol"]:
        return "WRONG"
    if res.get("target") is None or "ratio" not in res:
        return "-"
    return "PASS" if res["ratio"] <= res["target"] else "MISS"


def derived_checks(results: list[dict[str, object]]) -> list[dict[str, object]]:
    """Ratios between normcli's own timings: how cost grows with the window."""

    def find(group: str, case: str) -> dict[str, object]:
        for r in results:
            if r["group"] == group and r["case"] == case and r["data"] == "normal":
                return r
        raise KeyError(case)

    def ratio(check: str, rows: list[dict[str, object]], value: float, target: float | None):
        verdict = "-" if target is None else "PASS" if value <= target else "MISS"
        noisy = any(r["normcli_iqr_ms"] > NOISY * r["normcli_ms"] for r in rows)
        return {"check": check, "value": value, "target": target, "verdict": verdict,
                "noisy": noisy}

    n2, n16 = find("LRN intra", "seed n=2"), find("LRN intra", "seed n=16")
    inter = [find("LRN inter", f"seed n={n}") for n in (2, 3, 5, 9, 16, 33)]
    times = [r["normcli_ms"] for r in inter]
    return [
        ratio("LRN intra time(n=16) / time(n=2)", [n2, n16],
              n16["normcli_ms"] / n2["normcli_ms"], 1.3),
        ratio("LRN inter time(n=33) / time(n=2)", [inter[0], inter[-1]],
              times[-1] / times[0], None),
        ratio("LRN inter max / min over n = 2..33", inter, max(times) / min(times), None),
    ]


# --------------------------------------------------------------------------- box_sum methods

# (shape, axis): 64 Ki float32 values, windows along the kinds of axes the kernels use.
# Lengths above 256 are where choose_method rules out band and segment must compete.
METHOD_BLOCKS = (
    ((64, 1024), 0),  # inter, channels first: along C, long rows after it
    ((256, 256), 0),
    ((1024, 64), 0),
    ((16, 64, 64), 1),  # intra, channels first: along H of a stack of maps
    ((1024, 64), 1),  # inter channels last, intra along W: the last axis
    ((256, 256), 1),
    ((64, 1024), 1),
)
METHOD_HALF_WINDOWS = (1, 2, 4, 8, 16, 64)  # lo = hi; windows of 3 .. 129 (up to the length)
KNOWN_METHODS = ("shift", "band", "segment", "cumsum")  # names box_sum has used


def available_methods() -> list[str]:
    """The names in ``KNOWN_METHODS`` that this version of ``box_sum`` accepts."""
    probe = np.ones(4, np.float32)
    found = []
    for method in KNOWN_METHODS:
        try:
            box_sum(probe, 0, 1, 1, np.empty_like(probe), method)
        except ValueError:
            continue
        found.append(method)
    return found


def per_call_us(func: Callable[[], object], repeat: int, min_seconds: float = 2e-3) -> float:
    """Median microseconds per call, each sample looping long enough to time reliably."""
    func()
    loops, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
        loops *= 2
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            func()
        samples.append((time.perf_counter() - start) / loops)
    return float(np.median(samples)) * 1e6


def time_methods(repeat: int) -> dict[str, object]:
    """box_sum per method on 64 Ki float32 blocks; costs also in elementwise passes."""
    rng = np.random.default_rng(0)
    s = rng.random(1 << 16, dtype=np.float32)
    out = np.empty_like(s)
    unit = per_call_us(lambda: np.multiply(s, s, out=out), repeat)
    methods = available_methods()
    rows = []
    for shape, axis in METHOD_BLOCKS:
        block, dest = s.reshape(shape), out.reshape(shape)
        length = shape[axis]
        inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
        for half in (h for h in METHOD_HALF_WINDOWS if 2 * h + 1 <= length):
            us = {m: per_call_us(partial(box_sum, block, axis, half, half, dest, m), repeat)
                  for m in methods}
            rows.append({
                "shape": list(shape), "axis": axis, "window": 2 * half + 1,
                "us": us, "passes": {m: t / unit for m, t in us.items()},
                "fastest": min(us, key=us.__getitem__),
                "chosen": choose_method(length, half, half, s.dtype, inner),
            })
    return {"unit_pass_us": unit, "methods": methods, "rows": rows}


def print_methods(env: dict[str, object], res: dict[str, object]) -> None:
    blas = ", ".join(f"{k}={v}" for k, v in env["blas_env"].items()) or "none set"
    print(f"box_sum on 64 Ki float32 values, called from one thread (band's matmul may use "
          f"BLAS threads; BLAS thread variables: {blas}).")
    print(f"One elementwise pass (np.multiply) = {res['unit_pass_us']:.1f} us.  "
          "Cells: us per call (passes).")
    methods = res["methods"]
    head = f"{'block':>12} {'axis':>4} {'win':>4}" + "".join(f"{m:>17}" for m in methods)
    print(head + f"{'fastest':>9}{'chosen':>9}")
    for r in res["rows"]:
        cells = "".join(f"{r['us'][m]:>9.1f} ({r['passes'][m]:>5.1f})" for m in methods)
        mark = "" if r["fastest"] == r["chosen"] else "  *"
        shape = "x".join(map(str, r["shape"]))
        print(f"{shape:>12} {r['axis']:>4} {r['window']:>4}{cells}"
              f"{r['fastest']:>9}{r['chosen']:>9}{mark}")
    print("* choose_method's pick is not the fastest measured here.")


# --------------------------------------------------------------------------- output


def environment(args: argparse.Namespace) -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "shape": list(args.shape),
        "dtype": "float32",
        "repeat": args.repeat,
        "warmup": WARMUP,
        "loadavg_start": list(os.getloadavg()),
        # numpy's BLAS (band products in box_sum) starts its own threads unless told not to
        "blas_env": {v: os.environ.get(v) for v in BLAS_ENV if os.environ.get(v)},
    }


def print_table(env: dict[str, object], results: list[dict[str, object]],
                checks: list[dict[str, object]]) -> None:
    torch_note = f"torch {env['torch']}" if env["torch"] else "torch not installed"
    print(f"normcli benchmark: float32 {tuple(env['shape'])}, {env['threads']} threads, "
          f"median of {env['repeat']} runs after {env['warmup']} warm-ups (IQR in brackets)")
    print(f"python {env['python']}, numpy {env['numpy']}, {torch_note}, {env['cpus']} CPUs, "
          f"load average {env['loadavg_start'][0]:.2f} at start, "
          f"{env['loadavg_end'][0]:.2f} at end")
    blas = ", ".join(f"{k}={v}" for k, v in env["blas_env"].items()) or "none set"
    print(f"BLAS thread variables: {blas}")
    if not env["torch"]:
        print("NOTE: PyTorch is not installed: baselines, ratios and numerical checks are "
              "skipped.")
    print()
    head = (f"{'case':<32}{'data':<7}{'normcli ms':>18}{'baseline ms':>19}{'ratio':>7}"
            f"{'target':>8}{'verdict':>8}{'vs copy':>8}{'max rel err':>12}")
    print(head)
    group = None
    for r in results:
        if r["group"] != group:
            group = r["group"]
            print(f"-- {group}")
        ours = timing_cell(r, "normcli")
        if "baseline_ms" in r:
            theirs = timing_cell(r, "baseline")
            ratio, err = f"{r['ratio']:.2f}", f"{r['max_rel_err']:.1e}"
        else:
            theirs, ratio, err = "n/a", "n/a", "n/a"
        target = f"<={r['target']}" if r["target"] is not None else "-"
        print(f"  {r['case']:<30}{r['data']:<7}{ours:>18}{theirs:>19}{ratio:>7}"
              f"{target:>8}{r['verdict']:>8}{r['vs_copy']:>7.1f}x{err:>12}")
    copies = [r["copy_ms"] for r in results]
    print(f"np.copyto of the input (the floor), median per case: {min(copies):.2f} .. "
          f"{max(copies):.2f} ms")
    print()
    for c in checks:
        target = f"<= {c['target']}" if c["target"] is not None else "-"
        noisy = "  (~ from noisy timings)" if c["noisy"] else ""
        print(f"{c['check']:<40}{c['value']:>6.2f}   target {target:<8}{c['verdict']}{noisy}")
    print()
    print("ratio = normcli median / baseline median; vs copy = normcli median / np.copyto "
          "median;\n~ = noisy (IQR above a quarter of the median); WRONG = max rel err above "
          f"{TOL_LRN:g} (LRN) or {TOL_BN:g} (batch norm).")


def timing_cell(res: dict[str, object], name: str) -> str:
    """``median [IQR]``, with ``~`` when the spread is above a quarter of the median."""
    median, iqr = res[f"{name}_ms"], res[f"{name}_iqr_ms"]
    return f"{median:.2f} [{iqr:.2f}]" + ("~" if iqr > NOISY * median else " ")


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 32,96,55,55") from None
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give four positive sizes N,C,H,W")
    return shape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed runs per function (default 15; 5 with --quick)")
    parser.add_argument("--shape", type=parse_shape, default=None,
                        help=f"N,C,H,W (default {','.join(map(str, DEFAULT_SHAPE))})")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for normcli and torch (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: shape {','.join(map(str, QUICK_SHAPE))}, 5 repeats")
    parser.add_argument("--methods", action="store_true",
                        help="time box_sum's methods on 64 Ki-element blocks instead")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 5 if args.quick else 15
    if args.shape is None:
        args.shape = QUICK_SHAPE if args.quick else DEFAULT_SHAPE
    if args.repeat < 1 or args.threads < 1:
        parser.error("--repeat and --threads must be at least 1")
    if torch is not None:
        torch.set_num_threads(args.threads)

    env = environment(args)
    if args.methods:
        res = time_methods(args.repeat)
        env["loadavg_end"] = list(os.getloadavg())
        if args.json:
            print(json.dumps({"environment": env, "methods": res}, indent=1))
        else:
            print_methods(env, res)
        return 0

    cases = build_cases(args.shape, args.threads)
    for case in cases:
        run_case(case, args.repeat)
        if not args.json:
            print(".", end="", flush=True, file=sys.stderr)
    if not args.json:
        print(file=sys.stderr)
    env["loadavg_end"] = list(os.getloadavg())
    results = [case.result for case in cases]
    checks = derived_checks(results)
    if args.json:
        print(json.dumps({"environment": env, "cases": results, "checks": checks}, indent=1))
    else:
        print_table(env, results, checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
