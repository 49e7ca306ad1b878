"""The numbers behind one output value: what ``normcli explain`` shows.

:func:`explain_lrn` and :func:`explain_batch_norm` recompute a single position
of :func:`normcli.ops.lrn.lrn` / :func:`normcli.ops.batchnorm.batch_norm` step
by step, in float64, and return every intermediate value in a small frozen
dataclass: the neighbourhood (which channels or which window, and their
values), the sum of squares, the scaled sum, the denominator and its power,
or the batch's values, mean, variance and normalized value.  The result
equals the library's at that position (to rounding, 1e-12 relative, for
float64 data; float32 data is normalized in float32 by the library).

Positions are indices into the array *as stored*: ``(c, y, x)`` for a
``(C, H, W)`` array, ``(y, x, c)`` for ``(H, W, C)`` with ``channels_last``,
``(n, c, y, x)`` for a batch.  :func:`check_position` validates one.

This module is numpy only; drawing the numbers is :mod:`normcli.render.explain`'s job.

>>> e = explain_lrn(SEED_INTER, (0, 0, 0), k=0, alpha=1, beta=1, n=2)
>>> e.channels, e.values.tolist(), e.sum_squares, e.result
((0, 1), [1.0, 1.0], 2.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from normcli.errors import ParameterError
from normcli.ops.batchnorm import BNParams, bn_params
from normcli.ops.conventions import LRNParams, lrn_params
from normcli.ops.moments import BatchStats, batch_axes, stats_shape

__all__ = [
    "LRNExplanation",
    "BNExplanation",
    "explain_lrn",
    "explain_batch_norm",
    "check_position",
    "axis_names",
    "SEED_INTER",
    "SEED_INTRA",
    "SEED_BATCH",
    "SEED_EXAMPLE_PARAMS",
]

#: The seed's worked example 1 (``sample_data/seed_inter.npy``), (C, H, W) = (4, 3, 3).
SEED_INTER = np.array(
    [[[1, 1, 2], [1, 3, 1], [0, 1, -4]], [[1, 1, 2], [2, 4, 0], [1, 2, 3]],
     [[1, 0, 2], [2, 0, 0], [1, 3, 0]], [[1, 2, 2], [1, 1, 1], [0, 4, 5]]],
    dtype=np.float32,
)
#: The seed's worked example 2 (``sample_data/seed_intra.npy``), one (5, 5) channel.
SEED_INTRA = np.array(
    [[1, 0, 2, 0, 1], [0, 1, 0, 0, 0], [3, 0, 1, 0, 2], [0, 0, 0, 1, 0], [1, 2, 0, 0, 3]],
    dtype=np.float32,
)
#: The seed's mini-batch (``sample_data/seed_batch/act0..2.npy``), (N, C, H, W) = (3, 4, 4, 4).
SEED_BATCH = np.array(
    [[[[-4, -2, 2, 3], [1, 2, 4, 3], [-5, -1, 0, 1], [1, 3, 0, 1]],
      [[1, 2, 4, 10], [2, -1, 0, 1], [1, 3, 7, 8], [-1, 0, 2, 8]],
      [[2, 6, 7, 1], [1, 3, 7, 8], [6, 7, 2, 8], [0, 4, 5, 6]],
      [[8, 3, 7, 8], [6, 7, 9, 15], [0, 4, 5, 6], [6, 8, 12, 6]]],
     [[[-3, -2, -4, 0], [3, 11, 3, -3], [1, 2, -2, 1], [2, 3, -6, -2]],
      [[3, 11, 3, 4], [8, 2, -2, 1], [2, 3, 1, 5], [1, 9, 1, 2]],
      [[8, 9, 5, 1], [2, 3, 1, 5], [8, 16, 1, 2], [6, 7, 3, 6]],
      [[9, 3, 1, 5], [8, 16, 8, 9], [6, 7, 3, 6], [7, 8, 6, 3]]],
     [[[-2, 4, -1, 0], [-1, 2, 2, -3], [-2, -1, 2, 10], [3, 9, -3, -2]],
      [[-1, 2, 2, 4], [5, -1, 2, 10], [3, 9, 4, 5], [-3, 0, 0, 2]],
      [[5, 6, 9, 10], [3, 9, 4, 5], [4, 7, 0, 2], [3, 4, 7, 15]],
      [[10, 9, 4, 5], [4, 7, 7, 9], [3, 4, 7, 15], [8, 14, 9, 3]]]],
    dtype=np.float32,
)
#: (n, k, alpha, beta) of the seed's worked examples: b = a / sum of squares.
SEED_EXAMPLE_PARAMS = {"n": 2, "k": 0.0, "alpha": 1.0, "beta": 1.0}


def axis_names(ndim: int, *, channels_last: bool = False, batch: bool = False) -> tuple[str, ...]:
    """Names of the axes of an array as normcli reads it.

    ``batch`` says that axis 0 is the batch axis (batch normalization).

    >>> axis_names(3), axis_names(3, channels_last=True), axis_names(4), axis_names(2)
    (('C', 'H', 'W'), ('H', 'W', 'C'), ('N', 'C', 'H', 'W'), ('H', 'W'))
    >>> axis_names(2, batch=True), axis_names(3, batch=True), axis_names(5, batch=True)
    (('N', 'F'), ('N', 'C', 'W'), ('N0', 'N1', 'C', 'H', 'W'))
    """
    if batch:
        if ndim == 2:
            return ("N", "F")
        if ndim == 3:
            return ("N", "W", "C") if channels_last else ("N", "C", "W")
        # beyond 4-D every leading axis is a batch axis, as for lrn
        batch_names = ("N",) if ndim == 4 else tuple(f"N{i}" for i in range(ndim - 3))
        return (*batch_names, *(("H", "W", "C") if channels_last else ("C", "H", "W")))
    if ndim == 2:
        return ("H", "W")
    core = ("H", "W", "C") if channels_last else ("C", "H", "W")
    lead = ndim - 3
    if lead <= 0:
        return core[-ndim:] if ndim > 0 else ()
    if lead == 1:
        return ("N", *core)
    return (*(f"N{i}" for i in range(lead)), *core)


def check_position(
    shape: Sequence[int], position: Sequence[int], names: Sequence[str] | None = None
) -> tuple[int, ...]:
    """Validate ``position`` as an index into an array of ``shape``.

    Raises :class:`~normcli.errors.ParameterError` (``.param`` ``"position"``,
    a ``ValueError``) saying what is wrong (count, or which index is out of
    range) and what is allowed.  Its ``problem`` leaves out the word
    "position".  Negative indices are refused.

    >>> check_position((4, 3, 3), [0, 2, 1])
    (0, 2, 1)
    >>> check_position((4, 3, 3), [0, 0], ("C", "H", "W"))
    Traceback (most recent call last):
    ...
    normcli.errors.ParameterError: position has 2 indices but the array has 3 axes (C, H, W) of \
shape (4, 3, 3): give 3
    """
    shape = tuple(int(s) for s in shape)
    names = tuple(names) if names is not None else tuple(f"axis {i}" for i in range(len(shape)))
    pos = tuple(position)
    for p in pos:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
            _refuse_position(pos, f"index {p!r} is not an integer")
    if len(pos) != len(shape):
        _refuse_position(
            pos, f"has {len(pos)} ind{'ex' if len(pos) == 1 else 'ices'} but the array has "
            f"{len(shape)} axes ({', '.join(names)}) of shape {shape}: give {len(shape)}")
    for i, (p, size, name) in enumerate(zip(pos, shape, names, strict=True)):
        if not 0 <= p < size:
            allowed = f"0..{size - 1}" if size else "none (the axis is empty)"
            _refuse_position(pos, f"index {p} is out of range for axis {i} ({name}) of size "
                             f"{size}: allowed {allowed}")
    return tuple(int(p) for p in pos)


def _refuse_position(position: tuple, problem: str) -> None:
    raise ParameterError(f"position {problem}", param="position", value=position,
                         problem=problem)


def _refuse_x(arr: np.ndarray, problem: str) -> None:
    raise ParameterError(f"x {problem}", param="x", value=arr, problem=problem)


# --------------------------------------------------------------------------- LRN


@dataclass(frozen=True)
class LRNExplanation:
    """One LRN output value, step by step (all numbers float64).

    Attributes
    ----------
    params : LRNParams
        The resolved settings (window offsets, alpha', k').
    shape : tuple of int
        The input's shape.
    position : tuple of int
        The index into the array as stored.
    axes : tuple of str
        Names of the array's axes (``("C", "H", "W")``).
    channel, row, col : int
        Where the value sits: its channel (0 for a single ``(H, W)`` map), row and column.
    value : float
        ``a``, the input value.
    channels : tuple of int
        Inter-channel: the channels summed (clipped window), in order.  Intra: ``(channel,)``.
    rows, cols : tuple of int
        Intra-channel: the rows and columns of the (clipped) square window.
        Inter: ``(row,)`` and ``(col,)``.
    nominal : tuple of (int, int)
        The window before clipping: ``((c - lo, c + hi),)`` inter,
        ``((y - lo, y + hi), (x - lo, x + hi))`` intra.
    values : numpy.ndarray
        The neighbourhood's values: 1-D over ``channels`` (inter) or 2-D
        ``(len(rows), len(cols))`` (intra).
    sum_squares : float
        ``sum(values ** 2)``.
    scaled : float
        ``alpha' * sum_squares``.
    denominator : float
        ``k' + scaled``.
    power : float
        ``denominator ** beta``.
    result : float
        ``value / power`` (0 where an all-zero window meets k = 0, as in the library).
    dtype : str
        The input's dtype; the library computes in float32 for float16/float32 input.
    """

    params: LRNParams
    shape: tuple[int, ...]
    position: tuple[int, ...]
    axes: tuple[str, ...]
    channel: int
    row: int
    col: int
    value: float
    channels: tuple[int, ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    nominal: tuple[tuple[int, int], ...]
    values: np.ndarray
    sum_squares: float
    scaled: float
    denominator: float
    power: float
    result: float
    dtype: str

    @property
    def clipped(self) -> bool:
        """Whether the window was cut at a border (some neighbours do not exist)."""
        got = (self.channels,) if self.params.mode == "inter" else (self.rows, self.cols)
        return any((g[0], g[-1]) != n for g, n in zip(got, self.nominal, strict=True))

    def to_dict(self) -> dict:
        """Plain JSON-ready values."""
        p = self.params
        return {
            "normalization": "lrn",
            "mode": p.mode,
            "convention": p.convention.name,
            "n": p.n, "k": p.k, "alpha": p.alpha, "beta": p.beta,
            "window": p.window_text(),
            "alpha_effective": p.alpha_eff, "k_effective": p.k_eff,
            "shape": list(self.shape),
            "position": list(self.position),
            "axes": list(self.axes),
            "channel": self.channel, "row": self.row, "col": self.col,
            "value": self.value,
            "channels": list(self.channels),
            "rows": list(self.rows),
            "cols": list(self.cols),
            "nominal": [list(r) for r in self.nominal],
            "values": self.values.tolist(),
            "sum_squares": self.sum_squares,
            "scaled": self.scaled,
            "denominator": self.denominator,
            "power": self.power,
            "result": self.result,
            "dtype": self.dtype,
        }


def _lrn_split(position: tuple[int, ...], ndim: int, channels_last: bool):
    """``(lead, channel, row, col)`` of a position; channel ``None`` for a 2-D map."""
    if ndim == 2:
        return (), None, position[0], position[1]
    if channels_last:
        return position[:-3], position[-1], position[-3], position[-2]
    return position[:-3], position[-3], position[-2], position[-1]


def explain_lrn(
    x: object,
    position: Sequence[int],
    *,
    mode: str = "inter",
    convention: str = "seed",
    n: int | None = None,
    k: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    params: LRNParams | None = None,
    channels_last: bool = False,
) -> LRNExplanation:
    """Recompute :func:`normcli.lrn` at one ``position``, keeping every step.

    Parameters are those of :func:`normcli.ops.lrn.lrn`; ``position`` indexes
    ``x`` as stored.  Raises :class:`~normcli.errors.ParameterError` for bad
    settings (as ``lrn`` does) or a bad position (see :func:`check_position`).

    >>> e = explain_lrn(SEED_INTRA, (1, 1), mode="intra", k=0, alpha=1, beta=1, n=2)
    >>> e.rows, e.cols, e.sum_squares, e.result
    ((0, 1, 2), (0, 1, 2), 16.0, 0.0625)
    """
    params = lrn_params(params, mode=mode, convention=convention, n=n, k=k, alpha=alpha,
                        beta=beta)
    arr = np.asarray(x)
    if arr.ndim < 2:
        _refuse_x(arr, f"has shape {arr.shape}; LRN needs at least 2 dimensions (H, W)")
    if arr.dtype.kind not in "biuf":
        _refuse_x(arr, f"has dtype {arr.dtype}; give bool, integer or real floating data")
    names = axis_names(arr.ndim, channels_last=channels_last)
    pos = check_position(arr.shape, position, names)
    lead, c, y, xcol = _lrn_split(pos, arr.ndim, channels_last)
    lo, hi = params.lo, params.hi

    def at(ch, rows, cols):
        if c is None:
            return arr[rows, cols]
        if channels_last:
            return arr[(*lead, rows, cols, ch)]
        return arr[(*lead, ch, rows, cols)]

    if params.mode == "inter":
        n_ch = 1 if c is None else (arr.shape[-1] if channels_last else arr.shape[-3])
        cc = 0 if c is None else c
        first, last = max(0, cc - lo), min(n_ch - 1, cc + hi)
        channels = tuple(range(first, last + 1))
        values = np.array([at(j, y, xcol) for j in channels], dtype=np.float64)
        rows, cols, nominal = (y,), (xcol,), ((cc - lo, cc + hi),)
    else:
        if c is not None and channels_last:
            h, w = arr.shape[-3], arr.shape[-2]
        else:
            h, w = arr.shape[-2], arr.shape[-1]
        rows = tuple(range(max(0, y - lo), min(h - 1, y + hi) + 1))
        cols = tuple(range(max(0, xcol - lo), min(w - 1, xcol + hi) + 1))
        block = at(c, slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        values = np.array(block, dtype=np.float64)
        channels = (0 if c is None else c,)
        nominal = ((y - lo, y + hi), (xcol - lo, xcol + hi))
    value = float(np.float64(at(c, y, xcol)))
    sum_squares = float(np.sum(values * values))
    scaled = params.alpha_eff * sum_squares
    denominator = params.k_eff + scaled
    power = float(np.float64(denominator) ** params.beta)
    if power == 0 and value == 0:
        result = 0.0  # an all-zero window with k = 0: the library keeps the 0
    else:
        result = float(np.float64(value) / np.float64(power))
    return LRNExplanation(
        params=params, shape=tuple(arr.shape), position=pos, axes=names,
        channel=0 if c is None else c, row=y, col=xcol, value=value, channels=channels,
        rows=rows, cols=cols, nominal=nominal, values=values, sum_squares=sum_squares,
        scaled=scaled, denominator=denominator, power=power, result=result, dtype=str(arr.dtype),
    )


# --------------------------------------------------------------------------- batch norm


@dataclass(frozen=True)
class BNExplanation:
    """One batch-normalized value, step by step (all numbers float64).

    Attributes
    ----------
    per : str
        ``"activation"`` or ``"channel"``.
    shape : tuple of int
        The batch's shape.
    position : tuple of int
        The index into the batch as stored (batch index first).
    axes : tuple of str
        Names of the batch's axes (``("N", "C", "H", "W")``).
    sample : int
        The batch index.
    statistic : tuple of int
        Which statistic the value uses: the position without the batch index
        (per activation) or ``(channel,)`` (per channel).
    value : float
        ``x``, the input value.
    count : int
        ``m``, how many values share the statistic.
    values : numpy.ndarray
        Per activation: all ``m`` values across the batch (index = sample).
        Per channel: the first :data:`FIRST_VALUES` of the channel's values,
        in memory order.
    mean, var : float
        The batch mean and biased variance (divided by ``m``) of those values.
    eps, gamma, beta : float
    std : float
        ``sqrt(var + eps)``.
    normalized : float
        ``(value - mean) / std``.
    result : float
        ``gamma * normalized + beta``.
    dtype : str
        The input's dtype.
    saved : bool
        ``mean``, ``var`` and ``count`` are saved statistics (inference), not
        the batch's; ``values`` are then still the batch's, for comparison.
    """

    per: str
    shape: tuple[int, ...]
    position: tuple[int, ...]
    axes: tuple[str, ...]
    sample: int
    statistic: tuple[int, ...]
    value: float
    count: int
    values: np.ndarray
    mean: float
    var: float
    eps: float
    gamma: float
    beta: float
    std: float
    normalized: float
    result: float
    dtype: str
    saved: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-ready values."""
        return {
            "normalization": "batchnorm",
            "statistics": "saved" if self.saved else "batch",
            "per": self.per,
            "shape": list(self.shape),
            "position": list(self.position),
            "axes": list(self.axes),
            "sample": self.sample,
            "statistic": list(self.statistic),
            "value": self.value,
            "count": self.count,
            "values": self.values.tolist(),
            "mean": self.mean,
            "var": self.var,
            "eps": self.eps,
            "std": self.std,
            "normalized": self.normalized,
            "gamma": self.gamma,
            "beta": self.beta,
            "result": self.result,
            "dtype": self.dtype,
        }


#: How many of a channel's values a per-channel explanation keeps.
FIRST_VALUES = 8


def explain_batch_norm(
    x: object,
    position: Sequence[int],
    *,
    per: str = "activation",
    eps: float = 1e-5,
    gamma: float | np.ndarray = 1.0,
    beta: float | np.ndarray = 0.0,
    params: BNParams | None = None,
    channels_last: bool = False,
    stats: BatchStats | None = None,
) -> BNExplanation:
    """Recompute :func:`normcli.batch_norm` at one ``position``: with the batch's
    statistics, or with saved ones (``stats``, as ``batch_norm(x, mean=, var=)``).

    ``x`` is the batch ``(N, ...)``; ``position`` indexes it as stored, the
    batch index first.  ``gamma`` and ``beta`` are numbers, or arrays that
    broadcast to the statistics' shape (as for ``batch_norm``): the
    explanation uses their value for the position's statistic.  The settings
    are checked as :func:`~normcli.ops.batchnorm.batch_norm` checks them
    (``params``: already checked).  Raises
    :class:`~normcli.errors.ParameterError` for bad settings, a bad position,
    statistics of another shape (``.param`` ``"stats"``), or (batch
    statistics) a batch with a single value per statistic (as ``batch_norm``
    does).

    >>> e = explain_batch_norm(SEED_BATCH, (0, 0, 0, 0))
    >>> e.values.tolist(), e.mean, round(e.var, 6), round(e.result, 7)
    ([-4.0, -3.0, -2.0], -3.0, 0.666667, -1.2247357)
    """
    p = bn_params(params, per=per, eps=eps, gamma=gamma, beta=beta)
    per, eps = p.per, p.eps
    arr = np.asarray(x)
    if arr.ndim < 2:
        _refuse_x(arr, f"has shape {arr.shape}; a batch needs at least 2 dimensions (N, ...)")
    if arr.dtype.kind not in "biuf":
        _refuse_x(arr, f"has dtype {arr.dtype}; give bool, integer or real floating data")
    names = axis_names(arr.ndim, channels_last=channels_last, batch=True)
    pos = check_position(arr.shape, position, names)
    nb = batch_axes(arr.ndim)
    if per == "activation":
        statistic = pos[nb:]
        column = arr[(*(slice(None),) * nb, *statistic)]
        values = np.array(column, dtype=np.float64).reshape(-1)
        all_values = values
    else:
        c = pos[-1] if channels_last else pos[nb]
        statistic = (c,)
        chan = arr[..., c] if channels_last else arr[(*(slice(None),) * nb, c)]
        all_values = np.array(chan, dtype=np.float64).reshape(-1)
        values = all_values[:FIRST_VALUES].copy()
    want = stats_shape(arr.shape, per, channels_last)
    gamma, beta = (float(a[statistic]) for a in p.broadcast(want))
    m = all_values.size
    if stats is not None:  # inference: the saved statistics of this position
        if stats.per != per or stats.mean.shape != want:
            problem = (f"are per {stats.per} of shape {stats.mean.shape}; x per {per} needs "
                       f"shape {want}")
            raise ParameterError(f"the statistics {problem}", param="stats", value=stats,
                                 problem=problem)
        m = stats.count
        mean, var = float(stats.mean[statistic]), float(stats.var[statistic])
    elif m < 2:
        what = "batch of one" if per == "activation" else "single value per channel"
        _refuse_x(arr, f"has shape {arr.shape}: a {what} has zero variance everywhere; give a "
                  "larger batch")
    else:  # the library's corrected two-pass moments
        first = all_values.sum() / m
        dev = all_values - first
        sum_dev = dev.sum()
        mean = float(first + sum_dev / m)
        var = float(max(float(np.sum(dev * dev)) - sum_dev**2 / m, 0.0) / m)
    value = float(np.float64(arr[pos]))
    std = float(np.sqrt(var + eps))
    normalized = (value - mean) / std if std > 0 else 0.0
    result = gamma * normalized + beta
    return BNExplanation(
        per=per, shape=tuple(arr.shape), position=pos, axes=names, sample=pos[0],
        statistic=tuple(statistic), value=value, count=m, values=values, mean=mean, var=var,
        eps=eps, gamma=gamma, beta=beta, std=std, normalized=float(normalized),
        result=float(result), dtype=str(arr.dtype), saved=stats is not None,
    )
