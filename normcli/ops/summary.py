"""Summary statistics of an array: the numbers behind the ``stats`` table.

:func:`summarize` describes one array in a single :class:`Summary` (shape,
dtype, min, max, mean, population standard deviation, zero and non-finite
counts, and a small histogram).  :func:`merge` combines the summaries of many
arrays into one "total" summary without looking at the data again.

Everything here is numpy only; drawing the numbers is :mod:`normcli.render`'s
job.

Definitions
-----------
* ``min``, ``max``, ``mean`` and ``std`` are over the *finite* values only
  (NaN and ±Inf are counted in ``nonfinite`` and otherwise ignored); they are
  ``None`` when there is no finite value.
* ``std`` is the population standard deviation (``ddof=0``), computed in
  float64 with the corrected two-pass algorithm

  .. math:: M_2 = \\sum_i (x_i - \\bar x)^2 - \\frac{1}{n}\\Big(\\sum_i (x_i - \\bar x)\\Big)^2,
            \\qquad \\sigma = \\sqrt{M_2 / n}

  which stays accurate when the mean is large compared with the spread (the
  one-pass ``E[x^2] - E[x]^2`` loses every digit on ``1e8 + noise``).
* ``zeros`` counts the elements equal to zero (``-0.0`` included).
* ``hist`` counts the finite values in ``bins`` equal-width bins over
  ``[min, max]``: bin ``i`` holds ``min + i*w <= x < min + (i+1)*w`` with
  ``w = (max - min) / bins``, the last bin also holds ``max``; a value
  within rounding error of an inner edge may land in either neighbouring
  bin.  When ``min == max`` every finite value is in the first bin.
  ``edges`` holds the ``bins + 1`` edges.
* ``grid`` is a second histogram, one that merges exactly: bins of a
  power-of-two width ``W = 2**e`` whose edges are multiples of ``W`` (bin
  ``j`` holds ``(start + j) * W <= x < (start + j + 1) * W``), with the
  smallest ``e`` that needs at most ``bins`` of them.  Any two such grids
  align: coarsened to the larger width (a power-of-two multiple of the other),
  their counts add up exactly.  :func:`merge` draws the histogram of data
  whose ranges differ from them: at most ``bins`` (and about half as many at
  least) bins covering the total range.

Large arrays are processed in blocks of :data:`BLOCK` elements, so the memory
used beyond the input is a few small float64 buffers, whatever the input size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Summary", "summarize", "merge", "BLOCK", "Grid"]

#: Elements per block in the passes over the data (fits in a typical L2 cache as float64).
BLOCK = 1 << 16


@dataclass(frozen=True)
class Grid:
    """Counts of values in bins ``[(start + j) * 2**exp, (start + j + 1) * 2**exp)``.

    >>> Grid(-1, 3, (2, 0, 1)).edges()
    (1.5, 2.0, 2.5, 3.0)
    """

    exp: int
    start: int
    counts: tuple[int, ...]

    def edges(self) -> tuple[float, ...]:
        """The ``len(counts) + 1`` bin edges (``inf`` for an edge beyond float64)."""
        return tuple(_ldexp(self.start + j, self.exp) for j in range(len(self.counts) + 1))


def _ldexp(m: int, e: int) -> float:
    try:
        return math.ldexp(m, e)
    except OverflowError:
        return math.copysign(math.inf, m)


@dataclass(frozen=True)
class Summary:
    """Summary statistics of one array (or, after :func:`merge`, of many).

    Attributes
    ----------
    shape : tuple of int
        Shape of the array.  For a merged summary: ``(size,)``.
    dtype : str
        The array's dtype name (``"float32"``).  For a merged summary: the
        common dtype, or ``"mixed"``.
    size : int
        Number of elements, finite or not.
    min, max, mean, std : float or None
        Over the finite values; ``std`` is the population standard deviation.
        ``None`` when there is no finite value.
    zeros : int
        Number of elements equal to zero.
    nonfinite : int
        Number of NaN, +Inf and -Inf elements.
    hist : tuple of int or None
        Counts of the finite values in equal-width bins over ``[min, max]``
        (see the module docstring).  ``None`` for a merged summary whose
        histogram could not be computed exactly (see :func:`merge`), and from
        ``summarize(..., histogram=False)``.
    count : int
        Number of finite values (``size - nonfinite``); the weight in :func:`merge`.
    m2 : float or None
        Sum of squared deviations of the finite values from ``mean``: kept so
        that :func:`merge` is exact.  ``std == sqrt(m2 / count)``.
    """

    shape: tuple[int, ...]
    dtype: str
    size: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    zeros: int
    nonfinite: int
    hist: tuple[int, ...] | None
    count: int = 0
    m2: float | None = field(default=None, repr=False)
    edges: tuple[float, ...] | None = field(default=None, repr=False)
    grid: Grid | None = field(default=None, repr=False)

    @classmethod
    def without_values(cls, shape: tuple[int, ...], dtype: str, size: int, zeros: int,
                       nonfinite: int, bins: int) -> Summary:
        """The summary of an array with no finite value (empty, or all NaN/Inf)."""
        return cls(shape, dtype, size, None, None, None, None, zeros, nonfinite, (0,) * bins,
                   count=0, m2=None, grid=Grid(0, 0, ()))

    def to_dict(self) -> dict:
        """Return the summary as plain JSON-ready Python values.

        ``m2`` and ``grid`` are left out (bookkeeping for :func:`merge`);
        missing numbers are ``None``, the histogram is a list and
        ``hist_edges`` its ``len(hist) + 1`` bin edges (None without values).

        Examples
        --------
        >>> import numpy as np
        >>> d = summarize(np.array([1, 2, 3], dtype=np.uint8), bins=3).to_dict()
        >>> d["min"], d["mean"], d["hist"], d["dtype"]
        (1.0, 2.0, [1, 1, 1], 'uint8')
        """
        return {
            "shape": [int(n) for n in self.shape],
            "dtype": self.dtype,
            "size": int(self.size),
            "count": int(self.count),
            "min": _py_float(self.min),
            "max": _py_float(self.max),
            "mean": _py_float(self.mean),
            "std": _py_float(self.std),
            "zeros": int(self.zeros),
            "nonfinite": int(self.nonfinite),
            "hist": None if self.hist is None else [int(c) for c in self.hist],
            "hist_edges": None if self.edges is None else [_py_float(v) for v in self.edges],
        }


def _py_float(value: float | None) -> float | None:
    """A JSON number, or None (null) when missing or not finite."""
    return None if value is None or not math.isfinite(value) else float(value)


# --------------------------------------------------------------------------- helpers


def _bins_iv(bins: object) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
        raise TypeError(f"bins must be an integer, got {bins!r}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    return int(bins)


def _flat(arr: object) -> np.ndarray:
    """The array as 1-d, without copying when its memory is contiguous."""
    a = np.asarray(arr)
    kind = a.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"arr must have a boolean, integer or real floating dtype, got {a.dtype}")
    flat = a.ravel(order="K")  # a view for C- or F-contiguous input
    if kind == "b":
        flat = flat.view(np.uint8)
    return flat


def _blocks(flat: np.ndarray, finite_only: bool) -> Iterator[np.ndarray]:
    """Yield consecutive blocks of ``flat`` (views), or their finite values."""
    for start in range(0, flat.size, BLOCK):
        block = flat[start : start + BLOCK]
        yield block[np.isfinite(block)] if finite_only else block


def _moments(blocks: Iterable[np.ndarray], mean0: float, buf: np.ndarray) -> tuple[float, float]:
    """Second pass: ``(sum(x - mean0), sum((x - mean0)**2))`` in float64."""
    s = 0.0
    ss = 0.0
    for block in blocks:
        d = buf[: block.size]
        np.subtract(block, mean0, out=d, dtype=np.float64)
        s += float(d.sum())
        ss += float(np.dot(d, d))
    return s, ss


def _histogram(
    blocks: Iterable[np.ndarray], lo: float, hi: float, bins: int, buf: np.ndarray
) -> tuple[int, ...]:
    """Counts of the values in ``blocks`` in ``bins`` equal bins over ``[lo, hi]``.

    Every value must lie in ``[lo, hi]`` (they are finite and the range is theirs).
    """
    counts = np.zeros(bins, dtype=np.int64)
    # Halve everything when hi - lo overflows (e.g. -1e308 .. 1e308).
    scale = 1.0 if math.isfinite(hi - lo) else 0.5
    width = hi * scale - lo * scale
    # Divide by the width, then multiply by bins: bins / width overflows for
    # subnormal widths (a range of 1e-313).
    inv_width = 1.0 / width if width > 0 and math.isfinite(1.0 / width) else None
    ibuf = np.empty(buf.size, dtype=np.intp)
    for block in blocks:
        t = buf[: block.size]
        idx = ibuf[: block.size]
        if scale == 1.0:
            np.subtract(block, lo, out=t, dtype=np.float64)
        else:
            np.multiply(block, scale, out=t, dtype=np.float64)
            t -= lo * scale
        if inv_width is not None:
            t *= inv_width
        elif width > 0:
            t /= width
        else:
            t *= 0.0
        t *= bins
        np.copyto(idx, t, casting="unsafe")  # truncation == floor as t >= 0
        np.minimum(idx, bins - 1, out=idx)  # x == hi goes in the last bin
        counts += np.bincount(idx, minlength=bins)
    return tuple(int(c) for c in counts)


def _edges(lo: float, hi: float, bins: int) -> tuple[float, ...]:
    """The edges of ``bins`` equal bins over ``[lo, hi]`` (``hi - lo`` may overflow)."""
    width = hi / bins - lo / bins
    return (*(lo + i * width for i in range(bins)), hi)


def _floor_pow2(x: float, e: int) -> int:
    """``floor(x / 2**e)``, exactly (a tiny negative ``x`` whose quotient underflows is -1)."""
    q = math.floor(math.ldexp(x, -e))
    return -1 if q == 0 and x < 0 else q


def _grid_exponent(lo: float, hi: float, bins: int) -> int:
    """The smallest ``e`` whose grid covers ``[lo, hi]`` in at most ``bins`` (>= 2) bins;
    for ``lo == hi``, one below the value's last bit (its quotient is an exact integer)."""
    if lo == hi:
        return max(math.frexp(lo)[1] - 53, -1074) if lo else -1074

    def count(e: int) -> int:
        return _floor_pow2(hi, e) - _floor_pow2(lo, e) + 1

    e = max(math.frexp(hi / 2 - lo / 2)[1] + 2 - bins.bit_length(), -1074)
    while count(e) > bins:
        e += 1
    while e > -1074 and count(e - 1) <= bins:
        e -= 1
    return e


def _grid(blocks: Iterable[np.ndarray], lo: float, hi: float, bins: int,
          buf: np.ndarray) -> Grid:
    """The :class:`Grid` of the values in ``blocks`` (all in ``[lo, hi]``)."""
    e = _grid_exponent(lo, hi, max(bins, 2))
    start = _floor_pow2(lo, e)
    n = _floor_pow2(hi, e) - start + 1
    counts = np.zeros(n, dtype=np.int64)
    scale = 2.0 ** -e if -1022 <= -e <= 1023 else None  # (a product is exact, and 15x faster)
    ibuf = np.empty(buf.size, dtype=np.intp)
    # float16/32 data: the products are exact in float32 too (half the memory traffic)
    narrow = scale is not None and -126 <= -e <= 127 and buf.dtype == np.float64
    fbuf = np.empty(buf.size, dtype=np.float32) if narrow else buf
    for block in blocks:
        wide = not narrow or block.dtype not in (np.float32, np.float16)
        t, idx = (buf if wide else fbuf)[: block.size], ibuf[: block.size]
        if scale is not None:
            np.multiply(block, scale if wide else np.float32(scale), out=t, dtype=t.dtype)
        else:
            np.copyto(t, block, casting="unsafe")
            np.ldexp(t, -e, out=t)
        np.floor(t, out=t)
        if e > 0 and lo < 0:  # quotients of tiny negative values underflow to -0.0: floor -1
            t[(t == 0) & (block < 0)] = -1.0
        t -= start  # (integers: exact)
        np.copyto(idx, t, casting="unsafe")
        counts += np.bincount(idx, minlength=n)
    return Grid(e, start, tuple(int(c) for c in counts))


def _merge_grids(parts: Sequence[Summary], lo: float, hi: float, bins: int) -> Grid | None:
    """The grid of all ``parts`` (summaries with values), coarsened to one width."""
    if any(s.grid is None for s in parts):
        return None
    e = max([s.grid.exp for s in parts] + [_grid_exponent(lo, hi, max(bins, 2))])
    start = _floor_pow2(lo, e)
    counts = [0] * (_floor_pow2(hi, e) - start + 1)
    for s in parts:
        shift = e - s.grid.exp
        for j, c in enumerate(s.grid.counts):
            if c:
                counts[((s.grid.start + j) >> shift) - start] += c
    return Grid(e, start, tuple(counts))


# --------------------------------------------------------------------------- public


def summarize(arr: object, *, bins: int = 16, histogram: bool | str = True) -> Summary:
    """Summarize an array: shape, dtype, range, mean, std, zeros, non-finite, histogram.

    Parameters
    ----------
    arr : array_like, any shape
        Boolean, integer or real floating values.
    bins : int, optional
        Number of equal-width histogram bins over ``[min, max]``.
    histogram : bool or "grid", optional
        ``False`` leaves ``hist`` and ``grid`` ``None``, for summaries whose
        histogram nobody will see or merge; ``"grid"`` computes only the
        ``grid`` (for the histogram of a merged total).

    Returns
    -------
    Summary
        Statistics over the finite values; see the module docstring for the
        exact definitions.

    Raises
    ------
    TypeError
        If ``arr`` is complex, object, string or datetime, or ``bins`` is not an int.
    ValueError
        If ``bins < 1``.

    Notes
    -----
    Two passes over the data in blocks of :data:`BLOCK` elements: the first
    finds the range and the sum, the second the centred moments and the
    histogram.  No copy of the whole array is made for contiguous input.
    Boolean and integer arrays skip the NaN checks; floating arrays whose min
    and max are finite are known to be all finite (a NaN would propagate
    into them), so the finite filter is only paid for when it is needed.

    Examples
    --------
    >>> import numpy as np
    >>> s = summarize(np.array([[0.0, 1.0], [2.0, np.nan]]), bins=2)
    >>> s.shape, s.size, s.count, s.nonfinite, s.zeros
    ((2, 2), 4, 3, 1, 1)
    >>> s.min, s.max, s.mean, round(s.std, 6)
    (0.0, 2.0, 1.0, 0.816497)
    >>> s.hist
    (1, 2)
    """
    bins = _bins_iv(bins)
    a = np.asarray(arr)
    flat = _flat(a)
    shape = tuple(int(n) for n in a.shape)
    dtype = str(a.dtype)
    size = int(flat.size)
    zeros = size - int(np.count_nonzero(flat))  # NaN counts as nonzero: good

    def empty(nonfinite: int) -> Summary:
        return Summary.without_values(shape, dtype, size, zeros, nonfinite, bins)

    if size == 0:
        return empty(0)

    with np.errstate(over="ignore", invalid="ignore"):
        lo = flat.min()
        hi = flat.max()
        floating = flat.dtype.kind == "f"
        all_finite = not floating or (bool(np.isfinite(lo)) and bool(np.isfinite(hi)))

        if all_finite:
            count = size
            nonfinite = 0
            total = float(np.add.reduce(flat, dtype=np.float64))

            def finite_blocks() -> Iterator[np.ndarray]:
                return _blocks(flat, finite_only=False)
        else:
            count = 0
            total = 0.0
            lo = hi = None
            for block in _blocks(flat, finite_only=True):
                if block.size:
                    count += block.size
                    total += float(np.add.reduce(block, dtype=np.float64))
                    blo, bhi = block.min(), block.max()
                    lo = blo if lo is None or blo < lo else lo
                    hi = bhi if hi is None or bhi > hi else hi
            nonfinite = size - count
            if count == 0:
                return empty(nonfinite)

            def finite_blocks() -> Iterator[np.ndarray]:
                return _blocks(flat, finite_only=True)

        lo_f, hi_f = float(lo), float(hi)
        mean0 = total / count
        if not math.isfinite(mean0):  # the sum overflowed: average in scaled form
            mean0 = sum(
                float(np.add.reduce(np.multiply(b, 1.0 / count, dtype=np.float64)))
                for b in finite_blocks()
            )
        buf = np.empty(min(BLOCK, size), dtype=np.float64)
        s, ss = _moments(finite_blocks(), mean0, buf)
        mean = mean0 + s / count
        m2 = max(ss - s * s / count, 0.0)
        std = math.sqrt(m2 / count)
        if not math.isfinite(std):  # squares beyond float64 (|x| > ~1e154): scale them
            scale = 2.0 ** -math.frexp(max(abs(lo_f), abs(hi_f)))[1]  # exact, to [0.5, 1)
            s, ss = _moments((np.multiply(b, scale, dtype=np.float64) for b in finite_blocks()),
                             mean0 * scale, buf)
            std = math.sqrt(max(ss - s * s / count, 0.0) / count) / scale
            m2 = math.inf  # (it is: a merge of this summary has an infinite spread)
        # keep mean inside the data range despite rounding
        mean = min(max(mean, lo_f), hi_f)
        hist = edges = grid = None
        if histogram is True:
            hist = _histogram(finite_blocks(), lo_f, hi_f, bins, buf)
            edges = _edges(lo_f, hi_f, bins)
        if histogram:
            grid = _grid(finite_blocks(), lo_f, hi_f, bins, buf)

    return Summary(shape, dtype, size, lo_f, hi_f, mean, std, zeros, nonfinite, hist,
                   count=count, m2=m2, edges=edges, grid=grid)


def merge(
    summaries: Sequence[Summary],
    *,
    arrays: Sequence[object] | None = None,
    bins: int | None = None,
) -> Summary:
    """Combine per-array summaries into one summary of all their values.

    Parameters
    ----------
    summaries : sequence of Summary
        At least one, as returned by :func:`summarize`.
    arrays : sequence of array_like, optional
        The arrays the summaries describe, in the same order.  Only needed
        for an exact histogram over the total range when the inputs' ranges
        or bin counts differ.
    bins : int, optional
        Bins of the total histogram; default the first summary's bin count.

    Returns
    -------
    Summary
        ``size``, ``count``, ``min``, ``max``, ``zeros`` and ``nonfinite`` are
        exact; ``mean`` and ``std`` are combined with the pairwise formula of
        Chan, Golub & LeVeque (1979),

        .. math:: \\delta = \\bar x_B - \\bar x_A,\\quad
                  \\bar x = \\bar x_A + \\delta\\,\\frac{n_B}{n},\\quad
                  M_2 = M_{2,A} + M_{2,B} + \\delta^2\\,\\frac{n_A n_B}{n},

        which equals summarizing the concatenated data up to rounding.
        ``shape`` is ``(size,)``; ``dtype`` is the common dtype or ``"mixed"``.

        ``hist`` is exact or ``None``, never approximate: the bin counts are
        summed when every input with finite values has the same ``[min, max]``
        and bin count; otherwise they are recomputed from ``arrays`` over the
        total ``[min, max]`` when ``arrays`` is given, and else come from the
        inputs' ``grid`` histograms, coarsened to one power-of-two width (at
        most ``bins`` bins over the total range, their ``edges`` multiples of
        the width; ``None`` when an input has no grid: ``histogram=False``).

    Raises
    ------
    ValueError
        If ``summaries`` is empty or ``arrays`` has a different length.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0, np.inf])
    >>> t = merge([summarize(a), summarize(b)])
    >>> t.size, t.count, t.nonfinite, t.min, t.max, t.mean
    (5, 4, 1, 1.0, 4.0, 2.5)
    >>> t.std == summarize(np.concatenate([a, b])).std, t.hist, t.edges[::4]
    (True, (1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1), (1.0, 2.0, 3.0, 4.0))
    >>> merge([summarize(a), summarize(b)], arrays=[a, b], bins=3).hist
    (1, 1, 2)
    """
    summaries = list(summaries)
    if not summaries:
        raise ValueError("summaries must hold at least one Summary, got an empty sequence")
    if arrays is not None and len(arrays) != len(summaries):
        raise ValueError(
            f"arrays must match summaries one to one, got {len(arrays)} arrays "
            f"for {len(summaries)} summaries"
        )
    first_bins = len(summaries[0].hist) if summaries[0].hist is not None else 16
    nbins = _bins_iv(bins if bins is not None else first_bins)

    size = sum(s.size for s in summaries)
    zeros = sum(s.zeros for s in summaries)
    nonfinite = sum(s.nonfinite for s in summaries)
    dtypes = {s.dtype for s in summaries}
    dtype = summaries[0].dtype if len(dtypes) == 1 else "mixed"

    n = 0
    mean = 0.0
    m2 = 0.0
    lo: float | None = None
    hi: float | None = None
    for s in summaries:
        if s.count == 0:
            continue
        if s.m2 is None or s.mean is None:
            raise ValueError("summaries must come from summarize() or merge() (m2 missing)")
        nb = s.count
        if n == 0:  # (no Inf * 0 when a mean's square overflows)
            mean, m2, n = s.mean, s.m2, nb
        else:
            delta = s.mean - mean
            total = n + nb
            mean += delta * (nb / total)
            m2 += s.m2 + delta * delta * (n * nb / total)
            n = total
        lo = s.min if lo is None else min(lo, s.min)
        hi = s.max if hi is None else max(hi, s.max)

    if n == 0:
        return Summary.without_values((size,), dtype, size, zeros, nonfinite, nbins)

    mean = min(max(mean, lo), hi)
    std = math.sqrt(m2 / n)
    with_values = [s for s in summaries if s.count]
    if not math.isfinite(std) and math.isfinite(mean):  # squares beyond float64: scale
        scale = 2.0 ** -math.frexp(max(abs(lo), abs(hi)))[1]
        std = math.sqrt(sum(s.count * ((s.std * scale) ** 2 + ((s.mean - mean) * scale) ** 2)
                            for s in with_values) / n) / scale
        m2 = math.inf
    hist: tuple[int, ...] | None = None
    edges: tuple[float, ...] | None = None
    grid = _merge_grids(with_values, lo, hi, nbins)
    if all(
        s.hist is not None and len(s.hist) == nbins and s.min == lo and s.max == hi
        for s in with_values
    ):
        hist = tuple(int(sum(c)) for c in zip(*(s.hist for s in with_values), strict=True))
        edges = with_values[0].edges
    elif arrays is not None:
        counts = np.zeros(nbins, dtype=np.int64)
        with np.errstate(over="ignore", invalid="ignore"):
            for s, arr in zip(summaries, arrays, strict=True):
                if s.count == 0:
                    continue
                flat = _flat(arr)
                buf = np.empty(min(BLOCK, flat.size), dtype=np.float64)
                counts += _histogram(_blocks(flat, finite_only=s.nonfinite > 0), lo, hi, nbins, buf)
        hist, edges = tuple(int(c) for c in counts), _edges(lo, hi, nbins)
    elif grid is not None:
        hist, edges = grid.counts, grid.edges()

    return Summary((size,), dtype, size, lo, hi, mean, std, zeros, nonfinite, hist, count=n, m2=m2,
                   edges=edges, grid=grid)
