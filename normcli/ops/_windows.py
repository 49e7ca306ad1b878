"""Sliding-window sums along one axis: the heart of both LRN modes.

For every index ``i`` along an axis, the sum of ``s[i - lo .. i + hi]``
clipped to the array (zero padding).  The kernels write the squares into a
buffer that holds the window's zero padding, so that every window is exactly
``w = lo + hi + 1`` consecutive entries, and then use one of:

``tree`` (:func:`tree_sum`)
    Sums of 2, 4, 8 ... neighbours, each from two of the level below, and the
    window as a few of them: about ``log2(w)`` additions per value instead of
    ``w - 1``.  Pairwise, so at least as accurate as a plain loop, and nothing
    is ever subtracted: a small window after huge values stays exact.  Along
    a block's last axis (short rows) it runs over the whole buffer as one flat
    array: the padding between rows keeps their windows apart.
``band`` (:func:`band`)
    A product with a 0/1 band matrix (BLAS), along the last axis: its cost
    depends on the axis length, not on the window, which pays for large
    windows on short rows, where the padding would multiply the tree's work.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["band", "choose_last", "tree_sum", "tree_passes"]

# Costs in units of "one contiguous elementwise pass over a block", measured
# on 2-core x86-64 machines with blocks of 64 Ki to 256 Ki float32 values.
_TREE_PASS = 1.0  # one level (or one added level) of a tree of sums
_BAND_COST_PER_ROW = 0.2  # a band product costs about 0.2 passes per axis element
_BAND_MAX_LENGTH = 256
#: Passes after the last axis's window that run over its padding columns too
#: (another axis's tree, k and alpha, the power): padding there costs them all.
_AFTER = 6.0


def choose_last(length: int, lo: int, hi: int, dtype: np.dtype, after: float = _AFTER) -> str:
    """``tree`` or ``band`` for a window along the last axis of a block.

    >>> choose_last(55, 1, 1, np.dtype("float32")), choose_last(27, 8, 8, np.dtype("float32"))
    ('tree', 'band')
    """
    if dtype == np.longdouble and np.dtype(np.longdouble) != np.dtype(np.float64):
        return "tree"  # no BLAS for extended precision
    lo, hi = min(lo, length - 1), min(hi, length - 1)
    grow = (length + lo + hi) / length  # the padded row against the row
    tree = (tree_passes(lo + hi + 1) * _TREE_PASS + after) * grow - after
    band = length * _BAND_COST_PER_ROW if length <= _BAND_MAX_LENGTH else float("inf")
    return "tree" if tree <= band else "band"


@lru_cache(maxsize=64)
def band(length: int, lo: int, hi: int, dtype: str) -> np.ndarray:
    """The 0/1 matrix ``B`` with ``(s @ B.T)[..., i] = sum(s[..., i - lo : i + hi + 1])``
    (clipped): read-only, remembered per shape."""
    lo, hi = min(lo, length), min(hi, length)  # (wider is the same band; and fits int64)
    i = np.arange(length)
    band = ((i[None, :] >= i[:, None] - lo) & (i[None, :] <= i[:, None] + hi)).astype(dtype)
    band.setflags(write=False)
    return band


def tree_passes(w: int) -> int:
    """Additions per value of :func:`tree_sum` for a window of ``w``.

    >>> [tree_passes(w) for w in (1, 2, 3, 5, 9, 17, 33)]
    [0, 1, 2, 3, 4, 5, 6]
    """
    return max(0, w.bit_length() - 1 + bin(w).count("1") - 1)


def _now(func, *args, **kwargs):
    func(*args, **kwargs)


def tree_sum(z: np.ndarray, w: int, out: np.ndarray, buffer, axis: int = 0,
             call=_now) -> np.ndarray:
    """Window sums along ``axis``: ``out[i] = z[i] + ... + z[i + w - 1]``.

    ``z`` holds ``out.shape[axis] + w - 1`` entries along ``axis``: the data
    with the window's zero padding around it (``lo`` before, ``hi`` after).
    ``buffer(level, rows)`` returns a scratch array shaped like ``z`` with
    ``rows`` entries along ``axis``.  The sums of ``2 ** j`` neighbours are
    built level by level, each from two of the level below; the widest that
    fits goes straight into ``out`` and the lower levels that ``w``'s binary
    digits ask for are added to it.  ``call(ufunc, *args, **kwargs)`` makes
    each numpy call (the default: now; the LRN kernel's small-input path
    records them once, to replay them call after call).

    >>> z = np.array([0, 0, 1, 2, 3, 4, 5, 0, 0], float)
    >>> tree_sum(z, 5, np.empty(5), lambda j, r: np.empty(r)).tolist()
    [6.0, 10.0, 15.0, 14.0, 12.0]
    """
    lead = (slice(None),) * axis

    def part(a: np.ndarray, start: int, stop: int) -> np.ndarray:
        return a[(*lead, slice(start, stop))]

    n = out.shape[axis]
    if w == 1:
        call(np.copyto, out, part(z, 0, n))
        return out
    top = 1 << (w.bit_length() - 1)
    levels = {1: z}
    m, j = 1, 0
    while 2 * m < top:  # the levels below the widest one
        src = levels[m]
        rows = src.shape[axis] - m
        dst = buffer(j, rows)
        call(np.add, part(src, 0, rows), part(src, m, m + rows), out=dst)
        levels[2 * m] = dst
        m, j = 2 * m, j + 1
    src = levels[m]  # m = top / 2: the widest level, straight into out
    call(np.add, part(src, 0, n), part(src, m, m + n), out=out)
    offset = top
    bit = top >> 1
    while bit:
        if w & bit:
            call(np.add, out, part(levels[bit], offset, offset + n), out=out)
            offset += bit
        bit >>= 1
    return out
