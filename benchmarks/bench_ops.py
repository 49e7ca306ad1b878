"""Time normcli's LRN and batch norm against PyTorch, onnxruntime and a memory copy.

Every number printed is measured in this run.  For each case the normcli call,
its baselines (PyTorch and onnxruntime, where they have the operation and are
installed) and ``np.copyto`` of the same input (the memory-bandwidth floor:
one read and one write, into a preallocated destination) are run round-robin,
2 warm-ups then ``--repeat`` timed runs each, so that a burst of load from
other processes hits them alike.  Medians are printed; ratios are ratios of
medians: ``vs peer`` against the fastest baseline that has the operation,
``vs copy`` against the copy.

Each case is also checked once: normcli's output against every baseline's, as
the largest relative error.  A case whose error is above its tolerance is
marked WRONG whatever its speed.

Then, in fresh processes (``NORMCLI_THREADS=1`` and ``=2``, taking turns), the
headline operations with one thread against two; and the time per call of
the small-input cases, (1, 16, 40, 40), where fixed costs dominate.

PyTorch and onnxruntime are optional: without either, its columns say n/a
(onnxruntime models are written here as ONNX protobuf bytes: the ``onnx``
package is not needed).  Both are told not to spin their idle worker threads
(``OMP_WAIT_POLICY=PASSIVE``, onnxruntime's ``allow_spinning=0``): on two
cores a spinning thread left behind by one library's call steals a core from
whatever is timed next, the other library or normcli.

Usage::

    python benchmarks/bench_ops.py              # the AlexNet workload (3 to 5 minutes)
    python benchmarks/bench_ops.py --quick      # a small shape, for a smoke run
    python benchmarks/bench_ops.py --json       # machine-readable results
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if importlib.util.find_spec("normcli") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from normcli import batch_norm, batch_stats, lrn  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP threads
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
try:
    import onnxruntime as ort
except ImportError:
    ort = None

DEFAULT_SHAPE = (32, 96, 55, 55)  # AlexNet's first LRN: a batch of conv1 outputs
QUICK_SHAPE = (8, 64, 27, 27)
SMALL_SHAPE = (1, 16, 40, 40)  # per-call costs
WARMUP = 2

# AlexNet's LRN parameters (the seed convention's defaults), given explicitly to
# every side so that the baselines do not depend on normcli's convention table.
K, ALPHA, BETA = 2.0, 1e-4, 0.75
EPS = 1e-5  # batch norm (PyTorch's default)

# With alpha = 1e-4 the window sum moves an LRN output by only ~1e-4 relative,
# so a wrong window is caught only by a tolerance well below that.
TOL_LRN = 1e-5
TOL_BN = 1e-4
NOISY = 0.25  # IQR / median above which a timing is flagged as disturbed
PEERS = ("torch", "onnxruntime")

# The targets: normcli / fastest peer, normcli / np.copyto, per call (us).
PEER_TARGET = 0.9
SCALING_TARGET = 1.6  # two threads against one, LRN inter


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


def per_call_us(funcs: dict[str, Callable[[], object]], repeat: int,
                min_seconds: float = 5e-3) -> dict[str, float]:
    """Median microseconds per call of each function, round-robin, each sample
    looping long enough to time reliably."""
    loops = {}
    for name, func in funcs.items():
        func()
        n = 1
        while True:
            start = time.perf_counter()
            for _ in range(n):
                func()
            if time.perf_counter() - start >= min_seconds:
                break
            n *= 2
        loops[name] = n
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            n = loops[name]
            start = time.perf_counter()
            for _ in range(n):
                func()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: float(np.median(s)) * 1e6 for name, s in samples.items()}


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


# --------------------------------------------------------------------------- onnxruntime


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int | float) -> bytes:
    """One protobuf field: a varint, a 32-bit float or a length-delimited payload."""
    if isinstance(payload, bool) or isinstance(payload, int):
        return _varint(number << 3) + _varint(int(payload))
    if isinstance(payload, float):
        return _varint(number << 3 | 5) + struct.pack("<f", payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def onnx_model(op: str, inputs: dict[str, tuple[int, ...]], outputs: dict[str, tuple[int, ...]],
               attributes: dict[str, int | float], opset: int) -> bytes:
    """A one-node float32 ONNX model, as the bytes of its ModelProto.

    Field numbers are those of onnx.proto (ModelProto: ir_version 1,
    opset_import 8, graph 7; GraphProto: node 1, name 2, input 11, output 12;
    NodeProto: input 1, output 2, op_type 4, attribute 5; AttributeProto: name 1,
    f 2, i 3, type 20 (FLOAT 1, INT 2); ValueInfoProto: name 1, type 2;
    TypeProto.tensor_type 1: elem_type 1 (FLOAT 1), shape 2; dim 1, dim_value 1).
    """
    def value_info(name: str, shape: tuple[int, ...]) -> bytes:
        dims = b"".join(_field(1, _field(1, d)) for d in shape)
        return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, dims)))

    def attribute(name: str, value: int | float) -> bytes:
        kind = 1 if isinstance(value, float) else 2
        return _field(1, name) + _field(2 if kind == 1 else 3, value) + _field(20, kind)

    node = (b"".join(_field(1, n) for n in inputs) + b"".join(_field(2, n) for n in outputs)
            + _field(4, op) + b"".join(_field(5, attribute(k, v)) for k, v in attributes.items()))
    graph = (_field(1, node) + _field(2, "bench")
             + b"".join(_field(11, value_info(n, s)) for n, s in inputs.items())
             + b"".join(_field(12, value_info(n, s)) for n, s in outputs.items()))
    return _field(1, 8) + _field(8, _field(1, "") + _field(2, opset)) + _field(7, graph)


class OrtOp:
    """An onnxruntime session of one operation, called with numpy arrays."""

    def __init__(self, model: bytes, feeds: dict[str, np.ndarray], threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model, sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.feeds = feeds

    def __call__(self) -> np.ndarray:
        return self.session.run(None, self.feeds)[0]


def ort_lrn(x: np.ndarray, n: int, threads: int) -> OrtOp:
    """The seed's inter-channel LRN in onnxruntime (window 2*(n//2)+1, alpha undivided)."""
    size = 2 * (n // 2) + 1
    model = onnx_model("LRN", {"X": x.shape}, {"Y": x.shape},
                       {"size": size, "alpha": ALPHA * size, "beta": BETA, "bias": K}, 13)
    return OrtOp(model, {"X": x}, threads)


def ort_batch_norm(x: np.ndarray, threads: int, mean=None, var=None) -> OrtOp:
    """BatchNormalization over axis 1 of ``x``: training mode (batch statistics) or
    with the given ``mean`` and ``var``."""
    c = x.shape[1]
    names = ("X", "scale", "B", "mean", "var")
    inputs = dict(zip(names, (x.shape, (c,), (c,), (c,), (c,)), strict=True))
    outputs: dict[str, tuple[int, ...]] = {"Y": x.shape}
    attributes: dict[str, int | float] = {"epsilon": EPS}
    if mean is None:
        mean, var = np.zeros(c, np.float32), np.ones(c, np.float32)
        outputs.update(running_mean=(c,), running_var=(c,))
        attributes["training_mode"] = 1
    feeds = dict(zip(names, (x, np.ones(c, np.float32), np.zeros(c, np.float32),
                             np.asarray(mean, np.float32), np.asarray(var, np.float32)),
                     strict=True))
    return OrtOp(onnx_model("BatchNormalization", inputs, outputs, attributes, 15), feeds,
                 threads)


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One timed normcli call, its baselines and the array to copy for the floor.

    ``peers`` maps a framework to a function returning its output as a numpy
    array in the layout of normcli's output.
    """

    group: str
    name: str
    data: str
    ours: Callable[[], np.ndarray]
    floor_input: np.ndarray
    peers: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict)
    peer_target: float | None = None
    copy_target: float | None = None
    tol: float = TOL_LRN
    floor: Callable[[], object] | None = None
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


class NumpyFloor:
    """The fewest numpy calls that move a batch norm's memory traffic, on
    ``threads`` threads, each over its own half in 64 Ki-value blocks, into a
    preallocated output: ``x * a + b`` with scalar ``a`` and ``b`` (one read,
    one write: what stored statistics need), after a pass of plain sums when
    ``reduce`` (a second read: what batch statistics need at least).  Not batch
    norm (no statistic of its own per channel), a bound below it: what pure
    numpy cannot beat on this machine however the kernel is arranged."""

    BLOCK = 1 << 16

    def __init__(self, x: np.ndarray, threads: int, reduce: bool) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.x, self.out = x.reshape(-1), np.empty(x.size, x.dtype)
        self.out.fill(0)  # (faulted in once, as onnxruntime's arena is)
        self.reduce = reduce
        self.map = ThreadPoolExecutor(threads).map if threads > 1 else map
        half = -(-self.x.size // threads)
        self.parts = [(i, min(i + half, self.x.size)) for i in range(0, self.x.size, half)]

    def _blocks(self, part: tuple[int, int]):
        start, stop = part
        return ((i, min(i + self.BLOCK, stop)) for i in range(start, stop, self.BLOCK))

    def _sums(self, part: tuple[int, int]) -> list[float]:
        return [np.add.reduce(self.x[i:j]) for i, j in self._blocks(part)]

    def _affine(self, part: tuple[int, int]) -> None:
        a, b = self.x.dtype.type(1.25), self.x.dtype.type(0.5)
        for i, j in self._blocks(part):
            ob = self.out[i:j]
            np.multiply(self.x[i:j], a, out=ob)
            np.add(ob, b, out=ob)

    def __call__(self) -> np.ndarray:
        if self.reduce:  # (all sums before any output, as batch statistics need)
            self.sums = list(self.map(self._sums, self.parts))
        list(self.map(self._affine, self.parts))
        return self.out


def build_cases(shape: tuple[int, ...], threads: int, seed: int = 0) -> list[Case]:
    """The benchmark's cases for float32 data of ``shape`` (N, C, H, W)."""
    x = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    relu = np.maximum(x, 0)
    # pixel-like data: a mean of 0.45 and a spread of 0.25, far from 0 for batch norm
    pixels = x * np.float32(0.25) + np.float32(0.45)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    n_batch = shape[0]
    x2 = x.reshape(n_batch, -1)
    inputs = {"normal": x, "relu": relu, "pixels": pixels}
    stats = batch_stats(x, per="channel")
    mean32, var32 = stats.mean.astype(np.float32), stats.var.astype(np.float32)
    seed_lrn = {"k": K, "alpha": ALPHA, "beta": BETA, "threads": threads}
    floor_batch = NumpyFloor(x, threads, reduce=True)  # (batch statistics, both modes)

    def to_nhwc(a: np.ndarray) -> np.ndarray:
        return a.transpose(0, 2, 3, 1)

    def peers(torch_func=None, ort_func=None, as_ours=lambda a: a):
        found: dict[str, Callable[[], np.ndarray]] = {}
        if torch is not None and torch_func is not None:
            found["torch"] = lambda: as_ours(torch_func().numpy())
        if ort is not None and ort_func is not None:
            op = ort_func()
            found["onnxruntime"] = lambda: as_ours(op())
        return found

    xt = {name: torch.from_numpy(a) for name, a in inputs.items()} if torch else {}
    xt_cl = xt["normal"].contiguous(memory_format=torch.channels_last) if torch else None
    cases: list[Case] = []

    # The headline operations, with the targets.
    cases.append(Case(
        "headline", "LRN inter seed n=5", "normal",
        lambda: lrn(x, mode="inter", convention="seed", n=5, **seed_lrn), x,
        peers(lambda: torch_lrn_inter(xt["normal"], 5), lambda: ort_lrn(x, 5, threads)),
        PEER_TARGET, 6.0))
    cases.append(Case(
        "headline", "LRN intra seed n=2", "normal",
        lambda: lrn(x, mode="intra", convention="seed", n=2, **seed_lrn), x,
        peers(lambda: torch_lrn_intra(xt["normal"], 2)), PEER_TARGET, 8.0))
    cases.append(Case(
        "headline", "BN per channel (batch stats)", "normal",
        lambda: batch_norm(x, per="channel", eps=EPS, threads=threads), x,
        peers(lambda: F.batch_norm(xt["normal"], None, None, training=True, eps=EPS),
              lambda: ort_batch_norm(x, threads)),
        PEER_TARGET, None, TOL_BN, floor_batch))
    cases.append(Case(
        "headline", "BN per activation", "normal",
        lambda: batch_norm(x, per="activation", eps=EPS, threads=threads), x,
        peers(lambda: F.batch_norm(xt["normal"].reshape(n_batch, -1), None, None,
                                   training=True, eps=EPS),
              lambda: ort_batch_norm(x2, threads), as_ours=lambda a: a.reshape(shape)),
        PEER_TARGET, None, TOL_BN, floor_batch))
    tm, tv = (torch.from_numpy(mean32), torch.from_numpy(var32)) if torch else (None, None)
    cases.append(Case(
        "headline", "BN given mean/var", "normal",
        lambda: batch_norm(x, per="channel", eps=EPS, mean=stats.mean, var=stats.var,
                           threads=threads), x,
        peers(lambda: F.batch_norm(xt["normal"], tm, tv, training=False, eps=EPS),
              lambda: ort_batch_norm(x, threads, mean32, var32)),
        PEER_TARGET, 1.5, TOL_BN, NumpyFloor(x, threads, reduce=False)))

    # Into a preallocated out=: what the page faults of a fresh output cost.
    out = np.empty_like(x)
    cases.append(Case(
        "into out=", "LRN inter seed n=5", "normal",
        lambda: lrn(x, mode="inter", convention="seed", n=5, out=out, **seed_lrn), x))
    cases.append(Case(
        "into out=", "BN given mean/var", "normal",
        lambda: batch_norm(x, per="channel", eps=EPS, mean=stats.mean, var=stats.var,
                           threads=threads, out=out), x))

    # How the cost grows with n (normcli alone: PyTorch's time grows with n and
    # would make the run long), the ReLU'd data, PyTorch's own convention.
    for n in (2, 3, 9, 16, 33):
        cases.append(Case(
            "LRN inter", f"seed n={n}", "normal",
            lambda n=n: lrn(x, mode="inter", convention="seed", n=n, **seed_lrn), x))
    cases.append(Case(
        "LRN inter", "seed n=5", "relu",
        lambda: lrn(relu, mode="inter", convention="seed", n=5, **seed_lrn), relu,
        peers(lambda: torch_lrn_inter(xt["relu"], 5))))
    cases.append(Case(
        "LRN inter", "pytorch n=5", "normal",
        lambda: lrn(x, mode="inter", convention="pytorch", n=5, threads=threads), x,
        peers(lambda: F.local_response_norm(xt["normal"], 5))))
    for n, data in ((5, "normal"), (16, "normal"), (5, "relu")):
        a = inputs[data]
        cases.append(Case(
            "LRN intra", f"seed n={n}", data,
            lambda a=a, n=n: lrn(a, mode="intra", convention="seed", n=n, **seed_lrn), a,
            peers(lambda data=data, n=n: torch_lrn_intra(xt[data], n)) if n == 5 else {}))

    # Channels last: normcli reads (N, H, W, C); PyTorch gets the same memory as a
    # channels_last tensor.
    cl = {**seed_lrn, "channels_last": True}
    cases.append(Case(
        "channels last", "LRN inter seed n=5", "normal",
        lambda: lrn(x_cl, mode="inter", convention="seed", n=5, **cl), x_cl,
        peers(lambda: torch_lrn_inter(xt_cl, 5), as_ours=to_nhwc)))
    cases.append(Case(
        "channels last", "LRN intra seed n=5", "normal",
        lambda: lrn(x_cl, mode="intra", convention="seed", n=5, **cl), x_cl,
        peers(lambda: torch_lrn_intra(xt_cl, 5), as_ours=to_nhwc)))
    cases.append(Case(
        "channels last", "BN per channel", "normal",
        lambda: batch_norm(x_cl, per="channel", eps=EPS, channels_last=True, threads=threads),
        x_cl, peers(lambda: F.batch_norm(xt_cl, None, None, training=True, eps=EPS),
                    as_ours=to_nhwc), tol=TOL_BN))

    # Batch norm's other paths: data that is not centred (ReLU outputs, pixels)
    # leaves the around-0 forms of the headline cases.
    for data in ("relu", "pixels"):
        a = inputs[data]
        cases.append(Case(
            "BN on other data", "per channel (batch stats)", data,
            lambda a=a: batch_norm(a, per="channel", eps=EPS, threads=threads), a,
            peers(lambda data=data: F.batch_norm(xt[data], None, None, training=True, eps=EPS),
                  lambda a=a: ort_batch_norm(a, threads)), tol=TOL_BN))
        cases.append(Case(
            "BN on other data", "per activation", data,
            lambda a=a: batch_norm(a, per="activation", eps=EPS, threads=threads), a,
            peers(lambda data=data: F.batch_norm(xt[data].reshape(n_batch, -1), None, None,
                                                 training=True, eps=EPS),
                  lambda a=a: ort_batch_norm(a.reshape(n_batch, -1), threads),
                  as_ours=lambda r: r.reshape(shape)), tol=TOL_BN))
    return cases


def run_case(case: Case, repeat: int) -> None:
    """Check, then time, one case; fill ``case.result``."""
    res = case.result
    res.update(group=case.group, case=case.name, data=case.data,
               peer_target=case.peer_target, copy_target=case.copy_target, tol=case.tol)
    ours = case.ours()
    res["max_rel_err"] = {p: rel_error(ours, f()) for p, f in case.peers.items()}
    dst = np.empty_like(case.floor_input)
    funcs = {"normcli": case.ours, "copy": lambda: np.copyto(dst, case.floor_input),
             **case.peers, **({"numpy floor": case.floor} if case.floor else {})}
    for name, timing in time_round_robin(funcs, repeat).items():
        res[f"{name}_ms"] = timing.median_ms
        res[f"{name}_iqr_ms"] = timing.iqr_ms
        res[f"{name}_min_ms"] = timing.min_ms
    res["vs_copy"] = res["normcli_ms"] / res["copy_ms"]
    if case.peers:
        fastest = min(case.peers, key=lambda p: res[f"{p}_ms"])
        res["fastest_peer"] = fastest
        res["vs_peer"] = res["normcli_ms"] / res[f"{fastest}_ms"]
        if case.floor:
            res["floor_vs_peer"] = res["numpy floor_ms"] / res[f"{fastest}_ms"]


def verdicts(res: dict[str, object]) -> tuple[str, str]:
    """(vs peer, vs copy): PASS, MISS, WRONG or - (no target, or no peer)."""
    if any(not err <= res["tol"] for err in res["max_rel_err"].values()):
        return "WRONG", "WRONG"

    def judge(value, target):
        if target is None or value is None:
            return "-"
        return "PASS" if value <= target else "MISS"

    return judge(res.get("vs_peer"), res["peer_target"]), judge(res["vs_copy"],
                                                                 res["copy_target"])


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

    n2, n16 = find("headline", "LRN intra seed n=2"), find("LRN intra", "seed n=16")
    inter = [find("LRN inter", "seed n=2"), find("LRN inter", "seed n=33")]
    return [
        ratio("LRN intra time(n=16) / time(n=2)", [n2, n16],
              n16["normcli_ms"] / n2["normcli_ms"], 1.3),
        ratio("LRN inter time(n=33) / time(n=2)", inter,
              inter[1]["normcli_ms"] / inter[0]["normcli_ms"], None),
    ]


# --------------------------------------------------------------------------- scaling


SCALED = ("LRN inter seed n=5", "LRN intra seed n=2", "BN per channel (batch stats)",
          "BN per activation", "BN given mean/var")


def scaling_child(shape: tuple[int, ...], repeat: int) -> dict[str, float]:
    """Median ms of each headline op with the default threads (NORMCLI_THREADS)."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    stats = batch_stats(x, per="channel")
    ops = {
        SCALED[0]: lambda: lrn(x, mode="inter", n=5, k=K, alpha=ALPHA, beta=BETA),
        SCALED[1]: lambda: lrn(x, mode="intra", n=2, k=K, alpha=ALPHA, beta=BETA),
        SCALED[2]: lambda: batch_norm(x, per="channel", eps=EPS),
        SCALED[3]: lambda: batch_norm(x, per="activation", eps=EPS),
        SCALED[4]: lambda: batch_norm(x, per="channel", eps=EPS, mean=stats.mean,
                                      var=stats.var),
    }
    return {k: t.median_ms for k, t in time_round_robin(ops, repeat).items()}


def run_scaling(shape: tuple[int, ...], repeat: int, rounds: int) -> dict[str, object]:
    """Each headline op in fresh processes with NORMCLI_THREADS=1 and =2, taking
    turns ``rounds`` times; the medians over rounds of each process's medians."""
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(rounds):
        for threads in (1, 2):
            env = {**os.environ, "NORMCLI_THREADS": str(threads)}
            cmd = [sys.executable, __file__, "--scaling-child", "--repeat", str(repeat),
                   "--shape", ",".join(map(str, shape))]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[threads].append(json.loads(done.stdout))
    table = {}
    for op in SCALED:
        one = float(np.median([r[op] for r in runs[1]]))
        two = float(np.median([r[op] for r in runs[2]]))
        table[op] = {"one_ms": one, "two_ms": two, "speedup": one / two}
    return {"rounds": rounds, "repeat": repeat, "ops": table}


# --------------------------------------------------------------------------- per call


def small_floors(x: np.ndarray, mean: np.ndarray, var: np.ndarray
                 ) -> tuple[Callable[[], object], Callable[[], object]]:
    """The numpy calls alone of normcli's small-input forms, no Python between
    them: what the per-call targets leave for validation and dispatch on this
    machine.  Batch norm with given statistics: ``x * scale + shift`` with
    spelled-out coefficient rows, into a new array.  LRN inter (the seed's
    beta 0.75, C = 16): the squares and their largest (the range check), the
    band product that gives ``k + alpha' * window sums``, the power as two
    square roots and a product, the division, into a new array."""
    n, c, h, w = x.shape
    v = x.reshape(n, c, h * w)
    scale = (1.0 / np.sqrt(var + EPS)).astype(np.float32)
    rows_scale = np.ascontiguousarray(np.broadcast_to(scale[None, :, None], v.shape))
    rows_shift = np.ascontiguousarray(np.broadcast_to(
        (-mean * scale).astype(np.float32)[None, :, None], v.shape))

    def bn() -> np.ndarray:
        out = np.empty_like(v)
        np.multiply(v, rows_scale, out=out)
        np.add(out, rows_shift, out=out)
        return out

    z = np.ones((n, c + 1, h * w), np.float32)  # [squares; ones]
    i = np.arange(c)
    band = (abs(i[:, None] - i[None, :]) <= 2).astype(np.float32) * np.float32(ALPHA)  # (seed)
    coef = np.concatenate([band, np.full((c, 1), K, np.float32)], axis=1)
    d, tmp = np.empty_like(v), np.empty_like(v)

    def lrn_floor() -> np.ndarray:
        np.multiply(v, v, out=z[:, :c])
        float(z[:, :c].max())
        np.matmul(coef, z, out=d)
        np.sqrt(d, out=tmp)
        np.sqrt(tmp, out=d)
        np.multiply(d, tmp, out=d)
        out = np.empty_like(v)
        np.divide(v, d, out=out)
        return out

    return bn, lrn_floor


def run_small(threads: int, repeat: int) -> list[dict[str, object]]:
    """Microseconds per call on a small input, where validation and dispatch dominate."""
    x = np.random.default_rng(1).standard_normal(SMALL_SHAPE, dtype=np.float32)
    stats = batch_stats(x, per="channel")
    mean32, var32 = stats.mean.astype(np.float32), stats.var.astype(np.float32)
    floor_bn, floor_lrn = small_floors(x, stats.mean, stats.var)
    rows = []
    specs = [
        ("BN given mean/var", 30.0,
         lambda: batch_norm(x, per="channel", eps=EPS, mean=stats.mean, var=stats.var),
         floor_bn,
         (lambda xt: (lambda: F.batch_norm(xt, torch.from_numpy(mean32),
                                           torch.from_numpy(var32), training=False,
                                           eps=EPS))),
         lambda: ort_batch_norm(x, threads, mean32, var32)),
        ("LRN inter seed n=5", 60.0,
         lambda: lrn(x, mode="inter", n=5, k=K, alpha=ALPHA, beta=BETA),
         floor_lrn,
         (lambda xt: (lambda: torch_lrn_inter(xt, 5))),
         lambda: ort_lrn(x, 5, threads)),
    ]
    for name, target, ours, floor, torch_make, ort_make in specs:
        funcs: dict[str, Callable[[], object]] = {"normcli": ours, "numpy": floor}
        if torch is not None:
            funcs["torch"] = torch_make(torch.from_numpy(x))
        if ort is not None:
            funcs["onnxruntime"] = ort_make()
        us = per_call_us(funcs, repeat)
        rows.append({"case": name, "target_us": target, "us": us,
                     "verdict": "PASS" if us["normcli"] <= target else "MISS"})
    return rows


# --------------------------------------------------------------------------- output


def environment(args: argparse.Namespace) -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "onnxruntime": ort.__version__ if ort is not None else None,
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "shape": list(args.shape),
        "dtype": "float32",
        "repeat": args.repeat,
        "warmup": WARMUP,
        "loadavg_start": list(os.getloadavg()),
    }


def ms(res: dict[str, object], name: str) -> str:
    """``median``, with ``~`` when the spread (IQR) is above a quarter of the median."""
    if f"{name}_ms" not in res:
        return "n/a"
    median, iqr = res[f"{name}_ms"], res[f"{name}_iqr_ms"]
    return f"{median:.2f}" + ("~" if iqr > NOISY * median else " ")


def print_report(env: dict[str, object], results: list[dict[str, object]],
                 checks: list[dict[str, object]], scaling: dict[str, object] | None,
                 small: list[dict[str, object]]) -> None:
    def version(name: str) -> str:
        return f"{name} {env[name]}" if env[name] else f"{name} not installed"

    print(f"normcli benchmark: float32 {tuple(env['shape'])}, {env['threads']} threads, "
          f"median of {env['repeat']} runs after {env['warmup']} warm-ups")
    print(f"python {env['python']}, numpy {env['numpy']}, {version('torch')}, "
          f"{version('onnxruntime')}, {env['cpus']} CPUs, load average "
          f"{env['loadavg_start'][0]:.2f} at start, {env['loadavg_end'][0]:.2f} at end")
    print()
    head = (f"{'case':<30}{'data':<7}{'normcli':>9}{'torch':>9}{'onnxrt':>9}{'copy':>8}"
            f"{'vs peer':>9}{'target':>8}{'':>6}{'vs copy':>9}{'target':>8}{'':>6}"
            f"{'max rel err':>12}")
    print("milliseconds (median); vs peer = normcli / fastest peer that has the op")
    print(head)
    group = None
    for r in results:
        if r["group"] != group:
            group = r["group"]
            print(f"-- {group}")
        vp, vc = verdicts(r)
        peer = f"{r['vs_peer']:.2f}" if "vs_peer" in r else "n/a"
        pt = f"<={r['peer_target']}" if r["peer_target"] is not None else ""
        ctg = f"<={r['copy_target']:g}" if r["copy_target"] is not None else ""
        errs = r["max_rel_err"]
        err = f"{max(errs.values()):.1e}" if errs else "n/a"
        print(f"  {r['case']:<28}{r['data']:<7}{ms(r, 'normcli'):>9}{ms(r, 'torch'):>9}"
              f"{ms(r, 'onnxruntime'):>9}{ms(r, 'copy'):>8}{peer:>9}{pt:>8}"
              f"{vp if pt else '':>6}{r['vs_copy']:>8.1f}x{ctg:>8}{vc if ctg else '':>6}"
              f"{err:>12}")
    print()
    floors = [r for r in results if "numpy floor_ms" in r]
    if floors:
        print("numpy floor: the fewest numpy calls that move each batch norm's memory traffic "
              "(NumpyFloor), timed in the same rounds, ms")
        print(f"  {'case':<28}{'floor':>9}{'peer':>9}{'floor/peer':>12}{'normcli/floor':>15}")
        for r in floors:
            peer = r.get("fastest_peer")
            ratio = r.get("floor_vs_peer")
            reach = ("" if ratio is None else "  0.9 x the peer is below the floor"
                     if ratio > PEER_TARGET else "  0.9 x the peer is above the floor")
            print(f"  {r['case']:<28}{ms(r, 'numpy floor'):>9}"
                  f"{ms(r, peer) if peer else 'n/a':>9}"
                  f"{'n/a' if ratio is None else format(ratio, '.2f'):>12}"
                  f"{r['normcli_ms'] / r['numpy floor_ms']:>14.2f}x{reach}")
        print()
    for c in checks:
        target = f"<= {c['target']}" if c["target"] is not None else "-"
        noisy = "  (~ from noisy timings)" if c["noisy"] else ""
        print(f"{c['check']:<40}{c['value']:>6.2f}   target {target:<8}{c['verdict']}{noisy}")
    if scaling is not None:
        print()
        print(f"threads: NORMCLI_THREADS=1 against =2, fresh processes taking turns "
              f"({scaling['rounds']} each, medians of {scaling['repeat']} runs), ms")
        for op, row in scaling["ops"].items():
            mark = ""
            if op == SCALED[0]:
                ok = "PASS" if row["speedup"] >= SCALING_TARGET else "MISS"
                mark = f"   target >= {SCALING_TARGET}  {ok}"
            print(f"  {op:<30}{row['one_ms']:>8.2f}{row['two_ms']:>8.2f}"
                  f"{row['speedup']:>7.2f}x{mark}")
    print()
    print(f"per call on float32 {SMALL_SHAPE}, microseconds (median); numpy = the numpy "
          "calls alone of normcli's form (small_floors)")
    print(f"  {'case':<28}{'normcli':>9}{'numpy':>9}{'torch':>9}{'onnxrt':>9}{'target':>9}")
    for row in small:
        us = row["us"]
        cells = "".join(f"{us[p]:>9.1f}" if p in us else f"{'n/a':>9}"
                        for p in ("normcli", "numpy", *PEERS))
        print(f"  {row['case']:<28}{cells}{'<=' + format(row['target_us'], 'g'):>9}"
              f"  {row['verdict']}")
    print()
    print("~ = noisy (IQR above a quarter of the median); WRONG = max rel err against a peer "
          f"above {TOL_LRN:g} (LRN) or {TOL_BN:g} (batch norm).")


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
                        help="threads for normcli, torch and onnxruntime (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per thread count for the scaling (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: shape {','.join(map(str, QUICK_SHAPE))}, 5 repeats")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--scaling-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 5 if args.quick else 15
    if args.shape is None:
        args.shape = QUICK_SHAPE if args.quick else DEFAULT_SHAPE
    if args.repeat < 1 or args.threads < 1 or args.rounds < 0:
        parser.error("--repeat and --threads must be at least 1, --rounds at least 0")
    if args.scaling_child:
        print(json.dumps(scaling_child(args.shape, args.repeat)))
        return 0
    if torch is not None:
        torch.set_num_threads(args.threads)

    env = environment(args)
    cases = build_cases(args.shape, args.threads)
    for case in cases:
        run_case(case, args.repeat)
        if not args.json:
            print(".", end="", flush=True, file=sys.stderr)
    scaling = run_scaling(args.shape, args.repeat, args.rounds) if args.rounds else None
    small = run_small(args.threads, args.repeat)
    if not args.json:
        print(file=sys.stderr)
    env["loadavg_end"] = list(os.getloadavg())
    results = [case.result for case in cases]
    checks = derived_checks(results)
    if args.json:
        print(json.dumps({"environment": env, "cases": results, "checks": checks,
                          "scaling": scaling, "per_call": small}, indent=1))
    else:
        print_report(env, results, checks, scaling, small)
    return 0


if __name__ == "__main__":
    sys.exit(main())
