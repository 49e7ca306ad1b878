"""Slow, obviously correct float64 references for LRN and batch normalization.

Written from ``docs/normalization.md`` and the frameworks' own definitions,
*independently* of :mod:`normcli.ops.conventions`: every convention's window,
alpha divisor and within-channel k is spelled out below as a literal branch,
so that a wrong entry in the conventions table (or a kernel that misreads it)
shows up as a mismatch instead of being copied into the expected values.

Everything is computed in float64 with plain Python loops over channels or
positions, each window summed directly from its slice (numpy's pairwise sum:
no running totals, so no cancellation).  Batch-norm statistics are
two-pass and use :func:`math.fsum`, so the reference mean and variance are
correctly rounded sums even for data like ``1e8 + noise``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LRN_DEFAULTS",
    "INTRA",
    "lrn_window",
    "lrn_alpha_eff",
    "lrn_k_eff",
    "lrn_ref",
    "batch_stats_ref",
    "batch_norm_ref",
    "RefStats",
]

# (n, k, alpha, beta) defaults of each convention, straight from the table in
# normalization.md (PyTorch and ONNX require a size; normcli uses 5).
LRN_DEFAULTS: dict[str, tuple[int, float, float, float]] = {
    "seed": (5, 2.0, 1e-4, 0.75),  # AlexNet paper, section 3.3
    "pytorch": (5, 1.0, 1e-4, 0.75),  # nn.LocalResponseNorm(size, 1e-4, 0.75, 1.0)
    "onnx": (5, 1.0, 1e-4, 0.75),  # operator LRN: bias 1, alpha 1e-4, beta 0.75
    "cudnn": (5, 2.0, 1e-4, 0.75),  # cudnnSetLRNDescriptor defaults
    "caffe": (5, 1.0, 1.0, 0.75),  # LRNParameter: local_size 5, alpha 1, beta 0.75, k 1
    "tensorflow": (5, 1.0, 1.0, 0.5),  # depth_radius 5, bias 1, alpha 1, beta 0.5
}

# Conventions with a within-channel (intra) form.
INTRA = ("seed", "cudnn", "caffe")


def lrn_window(convention: str, n: int) -> tuple[int, int]:
    """``(lo, hi)``: the window around index i is ``[i - lo, i + hi]``.

    Hard-coded per framework (not read from normcli):

    * seed / AlexNet: ``sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)}``
    * PyTorch: pads ``size // 2`` before and ``(size - 1) // 2`` after, then
      average-pools with kernel ``size``
    * ONNX: ``[c - floor((size-1)/2), c + ceil((size-1)/2)]``
    * cuDNN: ``lo = floor((n-1)/2)``, ``hi = n - 1 - lo``
    * Caffe: ``pre_pad = (local_size - 1) / 2`` on both sides (odd sizes)
    * TensorFlow: ``[d - depth_radius, d + depth_radius]``
    """
    if convention == "seed":
        return n // 2, n // 2
    if convention == "pytorch":
        return n // 2, (n - 1) // 2
    if convention == "onnx":
        return (n - 1) // 2, math.ceil((n - 1) / 2)
    if convention == "cudnn":
        lo = (n - 1) // 2
        return lo, n - 1 - lo
    if convention == "caffe":
        assert n % 2 == 1, "Caffe's local_size must be odd"
        return (n - 1) // 2, (n - 1) // 2
    if convention == "tensorflow":
        return n, n
    raise AssertionError(f"unknown convention {convention!r}")


def lrn_alpha_eff(convention: str, mode: str, n: int, alpha: float) -> float:
    """alpha after the convention's division (by 1, n or n^2)."""
    if mode == "inter":
        divisor = {
            "seed": 1,  # AlexNet: alpha multiplies the plain sum
            "pytorch": n,  # average pooling: alpha * sum / size
            "onnx": n,  # alpha / size * square_sum
            "cudnn": n,  # alpha / n
            "caffe": n,  # alpha / local_size
            "tensorflow": 1,  # alpha * sqr_sum
        }[convention]
    else:
        divisor = {
            "seed": 1,
            "cudnn": n * n,  # the n x n window's average
            "caffe": n * n,  # average pooling, always divided by local_size^2
        }[convention]
    return alpha / divisor


def lrn_k_eff(convention: str, mode: str, k: float) -> float:
    """The k the denominator uses: Caffe's WITHIN_CHANNEL ignores k and uses 1."""
    if convention == "caffe" and mode == "intra":
        return 1.0
    return k


def _to_nchw(x: np.ndarray, channels_last: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """View any accepted input as (B, C, H, W) float64; return it and how to undo."""
    a = np.asarray(x).astype(np.float64)
    if a.ndim == 2:  # (H, W): one channel
        return a.reshape(1, 1, *a.shape), a.shape
    if channels_last:
        a = np.moveaxis(a, -1, -3)
    shape = a.shape
    return a.reshape(-1, *shape[-3:]), shape


def _from_nchw(b: np.ndarray, shape: tuple[int, ...], ndim: int, channels_last: bool):
    b = b.reshape(shape)
    if ndim > 2 and channels_last:
        b = np.moveaxis(b, -3, -1)
    return b


def lrn_ref(
    x,
    *,
    mode: str = "inter",
    convention: str = "seed",
    n: int | None = None,
    k: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    channels_last: bool = False,
) -> np.ndarray:
    """Reference LRN in float64, same call signature as ``normcli.lrn``.

    No validation beyond asserts: the tests only call it with valid settings.
    Where a whole window is zero and ``k_eff = 0`` the value itself is zero and
    the result is defined as 0 (the limit of a / (alpha s)^beta for beta < 1 is
    0, and 0 is what a sane kernel returns instead of 0/0 = NaN).
    """
    d_n, d_k, d_alpha, d_beta = LRN_DEFAULTS[convention]
    n = d_n if n is None else n
    k = d_k if k is None else k
    alpha = d_alpha if alpha is None else alpha
    beta = d_beta if beta is None else beta
    assert mode == "inter" or convention in INTRA

    lo, hi = lrn_window(convention, n)
    a_eff = lrn_alpha_eff(convention, mode, n, alpha)
    k_eff = lrn_k_eff(convention, mode, k)

    ndim = np.ndim(x)
    a, shape = _to_nchw(x, channels_last)
    # extended precision (80-bit on x86-64 Linux): squares of any float64 fit
    a = a.astype(np.longdouble)
    s = a * a
    _, C, H, W = a.shape
    total = np.zeros_like(a)
    if mode == "inter":
        for i in range(C):  # channels j = max(0, i - lo) .. min(C - 1, i + hi)
            total[:, i] = s[:, max(0, i - lo):min(C - 1, i + hi) + 1].sum(axis=1)
    else:
        for y in range(H):  # the square [y - lo, y + hi] x [x - lo, x + hi], clipped
            for x_ in range(W):
                rows = slice(max(0, y - lo), min(H - 1, y + hi) + 1)
                cols = slice(max(0, x_ - lo), min(W - 1, x_ + hi) + 1)
                total[:, :, y, x_] = s[:, :, rows, cols].sum(axis=(2, 3))
    den = (k_eff + a_eff * total) ** beta
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(den == 0, 0.0, a / np.where(den == 0, 1.0, den))
    return _from_nchw(b.astype(np.float64), shape, ndim, channels_last)


@dataclass(frozen=True)
class RefStats:
    mean: np.ndarray
    var: np.ndarray  # biased: divided by count
    var_unbiased: np.ndarray  # divided by count - 1
    count: int
    per: str


def _groups(x: np.ndarray, per: str, channels_last: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """Rearrange x as (statistic, members) and return the statistics shape."""
    nb = max(1, x.ndim - 3)  # leading batch axes: 1 up to 4-D, all but the last 3 beyond
    if per == "activation":
        stat_shape = x.shape[nb:]
        return x.reshape(int(np.prod(x.shape[:nb])), -1).T, stat_shape
    assert per == "channel"
    c_axis = x.ndim - 1 if channels_last else nb
    xc = np.moveaxis(x, c_axis, 0)
    return xc.reshape(xc.shape[0], -1), (xc.shape[0],)


def batch_stats_ref(x, *, per: str = "activation", channels_last: bool = False) -> RefStats:
    """Two-pass statistics with correctly rounded sums (math.fsum)."""
    a = np.asarray(x).astype(np.float64)
    g, stat_shape = _groups(a, per, channels_last)
    m = g.shape[1]
    means, vs, vus = [], [], []
    for row in g:
        mu = math.fsum(row) / m
        ss = math.fsum((v - mu) ** 2 for v in row)
        means.append(mu)
        vs.append(ss / m)
        vus.append(ss / (m - 1) if m > 1 else math.nan)
    return RefStats(
        mean=np.array(means).reshape(stat_shape),
        var=np.array(vs).reshape(stat_shape),
        var_unbiased=np.array(vus).reshape(stat_shape),
        count=m,
        per=per,
    )


def _broadcast_stat(v, x_ndim: int, per: str, channels_last: bool) -> np.ndarray:
    """Shape a statistic (or gamma/beta) so that it broadcasts against x."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 0 or per == "activation" or channels_last:
        return v  # scalar; the trailing sample axes; (C,) against (..., C)
    nb = max(1, x_ndim - 3)
    return v.reshape(v.shape + (1,) * (x_ndim - nb - 1))  # (C,) -> (C, 1, 1, ...)


def batch_norm_ref(
    x,
    *,
    per: str = "activation",
    eps: float = 1e-5,
    gamma=1.0,
    beta=0.0,
    mean=None,
    var=None,
    channels_last: bool = False,
) -> np.ndarray:
    """y = gamma (x - mean) / sqrt(var + eps) + beta, in float64.

    Without ``mean``/``var`` the batch's own biased statistics are used
    (training mode, Ioffe & Szegedy Algorithm 1); with them, inference.
    """
    a = np.asarray(x).astype(np.float64)
    if mean is None:
        st = batch_stats_ref(a, per=per, channels_last=channels_last)
        mean, var = st.mean, st.var

    def bc(v):
        return _broadcast_stat(v, a.ndim, per, channels_last)

    return bc(gamma) * (a - bc(mean)) / np.sqrt(bc(var) + eps) + bc(beta)
