"""Sliding-window sums along one axis: the heart of both LRN modes.

``box_sum(s, axis, lo, hi, out)`` writes, for every index ``i`` along ``axis``,
the sum of ``s[i - lo .. i + hi]`` clipped to the array (zero padding).  Three
methods compute it; :func:`choose_method` picks the cheapest for the shape:

``shift``
    ``lo + hi`` shifted in-place additions.  Exact order of a plain loop; cost
    grows with the window, so it serves small windows.
``band``
    A product with a 0/1 band matrix (BLAS).  Cost depends on the axis length,
    not on the window: ideal for CNN-sized maps and channel counts.
``cumsum``
    A float64 running sum, differenced and clamped at 0.  Constant cost for any
    window on long axes; its rounding error is relative to the running total,
    so it is only used where the others are slow.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["box_sum", "choose_method"]

# Costs in units of "one contiguous elementwise pass over a block", measured
# on 2-core x86-64 machines with blocks of 64 Ki float32 values (the timings
# are printed by benchmarks/bench_ops.py --methods).
_SHIFT_COST = 1.0  # per window element, when the window axis is not the last
_SHIFT_COST_LAST = 4.0  # per window element along the last axis (short inner loops)
_BAND_COST_PER_ROW = 0.18  # a band product costs about 0.18 passes per axis element
_BAND_MAX_LENGTH = 256
_CUMSUM_COST = 150.0  # float64 conversion, running sum, two gathers


def choose_method(length: int, lo: int, hi: int, dtype: np.dtype, inner: int = 1) -> str:
    """Pick ``shift``, ``band`` or ``cumsum`` for a window along an axis of ``length``.

    ``inner`` is the number of elements after the window axis (1 when the
    window runs along the last axis).

    >>> choose_method(96, 2, 2, np.dtype("float32"), inner=700)
    'shift'
    >>> choose_method(55, 8, 8, np.dtype("float32"), inner=1)
    'band'
    """
    if dtype == np.longdouble and np.dtype(np.longdouble) != np.dtype(np.float64):
        return "shift"  # no BLAS for extended precision; shift is exact
    lo, hi = min(lo, length - 1), min(hi, length - 1)
    shift = (1.0 + lo + hi) * (_SHIFT_COST_LAST if inner < 8 else _SHIFT_COST)
    band = length * _BAND_COST_PER_ROW if length <= _BAND_MAX_LENGTH else float("inf")
    # float64 callers expect float64-grade sums: running totals are a last resort.
    cumsum = _CUMSUM_COST * (1 if dtype == np.float32 else 4)
    costs = {"shift": shift, "band": band, "cumsum": cumsum}
    return min(costs, key=costs.__getitem__)


@lru_cache(maxsize=64)
def _band(length: int, lo: int, hi: int, dtype: str) -> np.ndarray:
    i = np.arange(length)
    band = ((i[None, :] >= i[:, None] - lo) & (i[None, :] <= i[:, None] + hi)).astype(dtype)
    band.setflags(write=False)
    return band


def _as3d(a: np.ndarray, axis: int) -> np.ndarray:
    shape = a.shape
    before = int(np.prod(shape[:axis], dtype=np.int64))
    after = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return a.reshape(before, shape[axis], after)


def box_sum(
    s: np.ndarray,
    axis: int,
    lo: int,
    hi: int,
    out: np.ndarray,
    method: str | None = None,
) -> np.ndarray:
    """Window sums of ``s`` along ``axis`` into ``out`` (both C-contiguous, same shape).

    ``out`` must not share memory with ``s``.

    >>> s = np.arange(1.0, 6.0)
    >>> [box_sum(s, 0, 1, 1, np.empty(5), m).tolist() for m in ("shift", "band", "cumsum")]
    [[3.0, 6.0, 9.0, 12.0, 9.0], [3.0, 6.0, 9.0, 12.0, 9.0], [3.0, 6.0, 9.0, 12.0, 9.0]]
    """
    s3, o3 = _as3d(s, axis), _as3d(out, axis)
    length = s3.shape[1]
    lo, hi = min(lo, length - 1), min(hi, length - 1)
    if method is None:
        method = choose_method(length, lo, hi, s.dtype)
    if method == "shift":
        np.copyto(o3, s3)
        for d in range(1, lo + 1):
            np.add(o3[:, d:], s3[:, :-d], out=o3[:, d:])
        for d in range(1, hi + 1):
            np.add(o3[:, :-d], s3[:, d:], out=o3[:, :-d])
    elif method == "band":
        band = _band(length, lo, hi, s.dtype.str)
        if o3.shape[2] == 1:  # window along the last axis: one big product
            np.matmul(s3[:, :, 0], band.T, out=o3[:, :, 0])
        else:
            np.matmul(band, s3, out=o3)
    elif method == "cumsum":
        total = np.zeros((s3.shape[0], length + 1, s3.shape[2]), np.float64)
        np.cumsum(s3, axis=1, dtype=np.float64, out=total[:, 1:])
        idx = np.arange(length)
        upper = np.minimum(idx + hi + 1, length)
        lower = np.maximum(idx - lo, 0)
        diff = np.take(total, upper, axis=1)
        diff -= np.take(total, lower, axis=1)
        np.maximum(diff, 0.0, out=diff)  # rounding must not make a sum of squares negative
        np.copyto(o3, diff, casting="same_kind")
    else:
        raise ValueError(f"method={method!r}; use 'shift', 'band' or 'cumsum'")
    return out
