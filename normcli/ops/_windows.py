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
``tree`` (:func:`tree_sum`, along the first axis of a zero-padded copy)
    Sums of 2, 4, 8 ... neighbours, each from two of the level below, and the
    window as a few of them: about ``log2(n)`` additions per value instead of
    ``n - 1``, and pairwise (so at least as accurate as a plain loop).  The
    kernels write their squares straight into the padded buffer, so the
    padding costs nothing.
``segment``
    Prefix and suffix sums inside segments as long as the window (the sum
    analogue of van Herk and Gil-Werman's running maximum): every window is
    one segment's suffix plus the next one's prefix, so the cost is constant
    in the window and, unlike a differenced running total, nothing is
    subtracted: a small window after huge values stays exact.  Accumulates in
    float64 (in the compute type when that is wider).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["box_sum", "choose_method", "choose_padded", "tree_sum", "tree_passes"]

# Costs in units of "one contiguous elementwise pass over a block", measured
# on 2-core x86-64 machines with blocks of 64 Ki float32 values (the timings
# are printed by benchmarks/bench_ops.py --methods).
_SHIFT_COST = 1.2  # per window element, when the window axis is not the last
_SHIFT_COST_LAST = 6.5  # per window element along the last axis (short inner loops)
_BAND_COST_PER_ROW = 0.2  # a band product costs about 0.2 passes per axis element
_BAND_MAX_LENGTH = 256
_SEGMENT_COST = 600.0  # padding copy, two float64 running sums along a strided axis, one add


def choose_method(length: int, lo: int, hi: int, dtype: np.dtype, inner: int = 1) -> str:
    """Pick ``shift``, ``band`` or ``segment`` for a window along an axis of ``length``.

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
    segment = _SEGMENT_COST
    costs = {"shift": shift, "band": band, "segment": segment}
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
    >>> [box_sum(s, 0, 1, 1, np.empty(5), m).tolist() for m in ("shift", "band", "segment")]
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
    elif method == "segment":
        _segment_sum(s3, lo, hi, o3)
    else:
        raise ValueError(f"method={method!r}; use 'shift', 'band' or 'segment'")
    return out


def _segment_sum(s3: np.ndarray, lo: int, hi: int, o3: np.ndarray) -> None:
    """Window sums along axis 1 of ``(P, L, Q)`` from in-segment prefix and suffix sums.

    The axis is padded with ``lo`` zeros before and ``hi`` after, so that the
    window of output ``i`` is exactly ``z[i : i + w]``.  With segments of ``w``
    elements, that window is the suffix of one segment from ``i`` plus the
    prefix of the next up to ``i + w - 1`` (or one whole segment when ``i`` is
    a multiple of ``w``).
    """
    p, length, q = s3.shape
    w = lo + hi + 1
    acc = np.result_type(s3.dtype, np.float64)
    nseg = -(-(length + w - 1) // w)
    z = np.zeros((p, nseg * w, q), acc)
    z[:, lo:lo + length] = s3
    seg = z.reshape(p, nseg, w, q)
    prefix = np.cumsum(seg, axis=2).reshape(p, nseg * w, q)
    suffix = np.cumsum(seg[:, :, ::-1], axis=2)[:, :, ::-1].reshape(p, nseg * w, q)
    res = suffix[:, :length]  # suffix is a fresh array (reshape copied it): add into it
    starts = np.arange(length) % w != 0  # windows that reach into the next segment
    res[:, starts] += prefix[:, w - 1:w - 1 + length][:, starts]
    np.copyto(o3, res, casting="same_kind")


def tree_passes(w: int) -> int:
    """Additions per value of :func:`tree_sum` for a window of ``w``.

    >>> [tree_passes(w) for w in (1, 2, 3, 5, 9, 17, 33)]
    [0, 1, 2, 3, 4, 5, 6]
    """
    return max(0, w.bit_length() - 1 + bin(w).count("1") - 1)


def choose_padded(length: int, lo: int, hi: int, dtype: np.dtype) -> str:
    """``tree`` or ``band`` for a window along the first axis of a padded block.

    >>> choose_padded(96, 2, 2, np.dtype("float32")), choose_padded(8, 4, 4, np.dtype("float32"))
    ('tree', 'band')
    """
    if dtype == np.longdouble and np.dtype(np.longdouble) != np.dtype(np.float64):
        return "tree"
    lo, hi = min(lo, length - 1), min(hi, length - 1)
    tree = tree_passes(lo + hi + 1) * _SHIFT_COST
    band = length * _BAND_COST_PER_ROW if length <= _BAND_MAX_LENGTH else float("inf")
    return "tree" if tree <= band else "band"


def tree_sum(z: np.ndarray, w: int, out: np.ndarray, buffer, axis: int = 0) -> np.ndarray:
    """Window sums along ``axis``: ``out[i] = z[i] + ... + z[i + w - 1]``.

    ``z`` holds ``out.shape[axis] + w - 1`` entries along ``axis``: the data
    with the window's zero padding around it (``lo`` before, ``hi`` after).
    ``buffer(level, rows)`` returns a scratch array shaped like ``z`` with
    ``rows`` entries along ``axis``.  The sums of ``2 ** j`` neighbours are
    built level by level, each from two of the level below; the widest that
    fits goes straight into ``out`` and the lower levels that ``w``'s binary
    digits ask for are added to it.

    >>> z = np.array([0, 0, 1, 2, 3, 4, 5, 0, 0], float)
    >>> tree_sum(z, 5, np.empty(5), lambda j, r: np.empty(r)).tolist()
    [6.0, 10.0, 15.0, 14.0, 12.0]
    """
    lead = (slice(None),) * axis

    def part(a: np.ndarray, start: int, stop: int) -> np.ndarray:
        return a[(*lead, slice(start, stop))]

    n = out.shape[axis]
    if w == 1:
        np.copyto(out, part(z, 0, n))
        return out
    top = 1 << (w.bit_length() - 1)
    levels = {1: z}
    m, j = 1, 0
    while 2 * m < top:  # the levels below the widest one
        src = levels[m]
        rows = src.shape[axis] - m
        dst = buffer(j, rows)
        np.add(part(src, 0, rows), part(src, m, m + rows), out=dst)
        levels[2 * m] = dst
        m, j = 2 * m, j + 1
    src = levels[m]  # m = top / 2: the widest level, straight into out
    np.add(part(src, 0, n), part(src, m, m + n), out=out)
    offset = top
    bit = top >> 1
    while bit:
        if w & bit:
            np.add(out, part(levels[bit], offset, offset + n), out=out)
            offset += bit
        bit >>= 1
    return out
