"""Batch statistics: the moments of a batch, merged piece by piece.

:func:`batch_stats` computes the mean and variances of a batch in memory;
:class:`RunningStats` gathers the same statistics from pieces (files, shards)
with Chan, Golub and LeVeque's parallel update, exact to float64 rounding;
:class:`BatchStats` holds the result, merges two of them, and is saved and
read back.  Normalizing with statistics is :mod:`normcli.ops.batchnorm`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from normcli.checks import check_flag
from normcli.errors import ParameterError
from normcli.ops import _memory
from normcli.ops._blocks import Scratch, run_blocks
from normcli.ops.arrays import check_array, check_threads

__all__ = [
    "BatchStats",
    "RunningStats",
    "batch_stats",
    "batch_axes",
    "stats_shape",
    "overflow_message",
]

#: The two forms of batch norm: which values share one mean and variance.
PER = ("activation", "channel")
_ROWS = 32  # rows summed in float32 before a float64 accumulation


@dataclass(frozen=True)
class BatchStats:
    """Statistics of a batch, to normalize it or to save and apply later.

    Attributes
    ----------
    mean : ndarray
        The batch mean, float64, of shape ``x.shape[1:]`` (``per="activation"``)
        or ``(C,)`` (``per="channel"``).
    var : ndarray
        The biased variance (divided by ``count``): what normalization uses.
    var_unbiased : ndarray
        ``var * count / (count - 1)``: what PyTorch's ``running_var`` tracks
        (NaN when ``count`` is 1); derived from ``var`` when asked for.
    count : int
        Values behind each statistic (``N``, or ``N * H * W``).
    per : str
        ``"activation"`` or ``"channel"``.
    """

    mean: np.ndarray
    var: np.ndarray
    count: int
    per: str

    @property
    def var_unbiased(self) -> np.ndarray:
        """``var * count / (count - 1)`` (NaN for a count of 1), computed when asked."""
        if self.count < 2:
            return np.full_like(self.var, np.nan)
        return self.var * (self.count / (self.count - 1))

    @classmethod
    def from_moments(cls, mean: np.ndarray, m2: np.ndarray, count: int, per: str) -> BatchStats:
        """Build from the mean and the sum of squared deviations ``m2`` (reused in place)."""
        mean = np.asarray(mean, np.float64)
        var = np.maximum(np.asarray(m2, np.float64), 0.0)
        var /= count
        return cls(mean, var, int(count), per)

    def merge(self, other: BatchStats) -> BatchStats:
        """Statistics of the union of two batches (Chan, Golub and LeVeque's update).

        >>> a, b = np.arange(6.0).reshape(3, 2), np.arange(6.0, 14.0).reshape(4, 2)
        >>> m = batch_stats(a).merge(batch_stats(b))
        >>> bool(np.allclose(m.var, np.vstack([a, b]).var(axis=0)))
        True
        """
        if other.per != self.per or other.mean.shape != self.mean.shape:
            raise ParameterError(
                f"cannot merge statistics per {self.per} of shape {self.mean.shape} with "
                f"statistics per {other.per} of shape {other.mean.shape}",
                param="other", value=other,
            )
        na, nb = self.count, other.count
        n = na + nb
        delta = other.mean - self.mean
        mean = self.mean + delta * (nb / n)
        m2 = self.var * na + other.var * nb + delta**2 * (na * nb / n)
        return BatchStats.from_moments(mean, m2, n, self.per)

    def to_dict(self) -> dict[str, object]:
        """The arrays to save in an ``.npz``: mean, var, var_unbiased, count, per."""
        return {
            "mean": self.mean,
            "var": self.var,
            "var_unbiased": self.var_unbiased,
            "count": np.asarray(self.count, np.int64),
            "per": np.asarray(self.per),
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, np.ndarray]) -> BatchStats:
        """Rebuild saved statistics; raises ``ValueError`` naming what is wrong."""
        missing = [key for key in ("mean", "var", "count", "per") if key not in data]
        if missing:
            raise ValueError(f"statistics lack {', '.join(missing)}")
        per = _scalar(data["per"], "per", str)
        if per not in PER:
            raise ValueError(f"statistics have per={per!r}; expected 'activation' or 'channel'")
        mean = np.asarray(data["mean"], np.float64)
        var = np.asarray(data["var"], np.float64)
        count = _scalar(data["count"], "count", int)
        if mean.shape != var.shape:
            raise ValueError(f"statistics mean {mean.shape} and var {var.shape} differ in shape")
        if count < 1:
            raise ValueError(f"statistics have count={count}; it must be at least 1")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
            raise ValueError("statistics hold non-finite means or negative/non-finite variances")
        return cls(mean, var, count, per)


def _scalar(value: object, name: str, kind: type):
    """The single value of a saved field (0-d or one-element array)."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"statistics field {name} has shape {arr.shape}; expected one value")
    item = arr.reshape(-1)[0]
    if kind is int and (arr.dtype.kind not in "iu"):
        raise ValueError(f"statistics field count has dtype {arr.dtype}; expected an integer")
    if kind is str and arr.dtype.kind != "U":
        raise ValueError(f"statistics field per has dtype {arr.dtype}; expected a string")
    return kind(item)


class RunningStats:
    """Batch statistics gathered piece by piece, for batches larger than memory.

    Each :meth:`add` takes a batch (axis 0) of samples, computes its moments
    in float64, and merges them in place into the running mean and M2 with
    Chan, Golub and LeVeque's parallel update; memory is the running
    statistics plus one piece.  The running mean is kept as a fixed shift
    (the first piece's mean) plus a small offset, so that its rounding
    (relative to the mean, not to the spread) never enters the merge:
    :meth:`stats` equals :func:`batch_stats` of all the pieces stacked, to
    float64 rounding, even for data far from zero (1e8 +- 1e-3).

    >>> x = np.random.default_rng(0).normal(size=(10, 3, 4))
    >>> running = RunningStats(per="channel")
    >>> for piece in (x[:3], x[3:7], x[7:]):
    ...     running.add(piece)
    >>> bool(np.allclose(running.stats().var, batch_stats(x, per="channel").var, rtol=1e-14))
    True
    """

    def __init__(self, *, per: str = "activation", channels_last: bool = False,
                 threads: int | None = None) -> None:
        check_per(per)
        self.per, self.channels_last = per, check_flag(channels_last, "channels_last")
        self.threads = check_threads(threads)
        self.count = 0
        self.shape: tuple[int, ...] | None = None
        self._shift: np.ndarray | None = None  # the first piece's mean
        self._offset: np.ndarray | None = None  # running mean - shift
        self._m2: np.ndarray | None = None

    def add(self, batch: object) -> None:
        """Merge the moments of ``batch`` (samples along axis 0)."""
        arr = check_array(batch)
        if arr.size == 0:
            raise ParameterError(f"batch has shape {arr.shape}: an empty batch has no statistics",
                                 param="batch", value=arr)
        shape = stats_shape(arr.shape, self.per, self.channels_last)
        if self.shape is not None and shape != self.shape:
            raise ParameterError(f"batch has statistics of shape {shape}; earlier batches had "
                                 f"{self.shape}", param="batch", value=arr)
        moments = Moments(arr.reshape(batch_layout(arr.shape, self.per, self.channels_last)),
                           np.dtype(np.float64), self.threads)
        if self._shift is not None and not moments.by_rows:  # one pass, in place
            moments.merge_into(self._shift, self._offset, self._m2, self.count)
            self.count += moments.count
            return
        moments.compute()
        if self._shift is None:  # the mean as the piece's first pass left it, unrounded
            self.shape, self.count = shape, moments.count
            self._shift, self._offset, self._m2 = moments.first, moments.offset, moments.m2
            return
        na, nb = self.count, moments.count
        n = na + nb
        delta = moments.first  # reused in place: no array beyond the piece's own
        with np.errstate(all="ignore"):  # (NaN and Inf propagate; finite() tells)
            delta -= self._shift  # both near the data: exact where it matters
            delta += moments.offset
            delta -= self._offset
            self._m2 += moments.m2
            np.multiply(delta, nb / n, out=moments.m2)
            self._offset += moments.m2
            np.multiply(delta, delta, out=delta)
            delta *= na * nb / n
            self._m2 += delta
        self.count = n

    def finite(self) -> bool:
        """Whether the running statistics are finite.

        They stay finite while every value added is finite (NaN and Inf
        propagate through every sum), so this checks a whole piece for NaN/Inf
        at the cost of the statistics' size.  float64 values beyond about
        1e154 can overflow them without any NaN or Inf in the data.
        """
        if self._shift is None:
            return True
        # A finite sum has finite terms; an infinite one may only have overflowed.
        with np.errstate(all="ignore"):
            total = (float(np.add.reduce(self._shift)) + float(np.add.reduce(self._offset))
                     + float(np.add.reduce(self._m2)))
        return math.isfinite(total) or _finite(self._shift, self._offset, self._m2)

    def stats(self) -> BatchStats:
        """The statistics of everything added so far (a snapshot)."""
        if self._shift is None:
            raise ValueError("no batch was added")
        with np.errstate(all="ignore"):
            mean = self._shift + self._offset
        return BatchStats.from_moments(mean.reshape(self.shape), self._m2.reshape(self.shape),
                                       self.count, self.per)

    def merged(self, other: RunningStats) -> RunningStats:
        """The statistics of both, as a new object (neither is changed): the
        update of :meth:`add`, around this one's shift.  The pieces of ``other``
        are taken as coming after this one's."""
        if not isinstance(other, RunningStats):
            raise ParameterError(f"other is a {type(other).__name__}, not RunningStats",
                                 param="other", value=other)
        if other.per != self.per or other.channels_last != self.channels_last:
            # (checked even where one side is empty: its result would take either's)
            raise ParameterError(f"cannot merge statistics per {other.per} into per {self.per}"
                                 + (" (one channels last)" if other.per == self.per else ""),
                                 param="other", value=other)
        if other._shift is None or self._shift is None:
            src = self if other._shift is None else other
            out = RunningStats(per=src.per, channels_last=src.channels_last, threads=src.threads)
            if src._shift is not None:
                out.shape, out.count = src.shape, src.count
                out._shift, out._offset, out._m2 = (src._shift.copy(), src._offset.copy(),
                                                    src._m2.copy())
            return out
        if other.shape != self.shape or other.per != self.per:
            raise ParameterError(f"cannot merge statistics per {other.per} of shape "
                                 f"{other.shape} into per {self.per} of shape {self.shape}",
                                 param="other", value=other)
        out = RunningStats(per=self.per, channels_last=self.channels_last, threads=self.threads)
        na, nb = self.count, other.count
        n = na + nb
        with np.errstate(all="ignore"):
            delta = other._shift - self._shift
            delta += other._offset
            delta -= self._offset
            out._m2 = self._m2 + other._m2
            out._offset = self._offset + delta * (nb / n)
            np.multiply(delta, delta, out=delta)
            delta *= na * nb / n
            out._m2 += delta
        out.shape, out.count, out._shift = self.shape, n, self._shift.copy()
        return out


def batch_axes(ndim: int) -> int:
    """How many leading axes are batch axes: 1 up to 4-D, all but the last 3 beyond.

    As everywhere in normcli, ``(N, C, H, W)`` is a batch and more leading axes
    are batch axes too; ``(N, C)`` and ``(N, C, L)`` have the one batch axis.

    >>> [batch_axes(n) for n in (2, 3, 4, 5, 6)]
    [1, 1, 1, 2, 3]
    """
    return max(1, ndim - 3)


def stats_shape(shape: tuple[int, ...], per: str, channels_last: bool = False) -> tuple[int, ...]:
    """Shape of the statistics of a batch of ``shape``.

    >>> stats_shape((8, 3, 4, 4), "activation"), stats_shape((8, 3, 4, 4), "channel")
    ((3, 4, 4), (3,))
    >>> stats_shape((2, 8, 3, 4, 4), "activation"), stats_shape((2, 8, 3, 4, 4), "channel")
    ((3, 4, 4), (3,))
    """
    nb = batch_axes(len(shape))
    if per == "activation":
        return tuple(shape[nb:])
    return (shape[-1],) if channels_last else (shape[nb],)


def check_per(per: object) -> str:
    """``per`` if it is one of :data:`PER`, else a :class:`ParameterError`."""
    if not isinstance(per, str) or per not in PER:
        raise ParameterError(f"per={per!r} is not known; use 'activation' or 'channel'",
                             param="per", value=per)
    return per


def batch_layout(shape: tuple[int, ...], per: str, channels_last: bool) -> tuple[int, int, int]:
    """View a batch as ``(outer, C, inner)``: statistics for each of C over outer and inner.

    The leading :func:`batch_axes` are the batch.  Per activation the batch is
    ``(N, F, 1)``; per channel ``(N, C, H*W)``, or ``(N*H*W, C, 1)`` with the
    channels last.
    """
    nb = batch_axes(len(shape))
    n = math.prod(shape[:nb])
    if per == "activation":
        return n, math.prod(shape[nb:]), 1
    if channels_last:
        return math.prod(shape[:-1]), shape[-1], 1
    return n, shape[nb], math.prod(shape[nb + 1:])


#: Values per block.  Four times the LRN kernels' blocks: batch norm does only
#: a few numpy calls per block, and each call lets the other threads take the
#: GIL; with 64 Ki values two threads were no faster than one, with 256 Ki
#: (2 MiB of float64 deviations, one L2 cache) they are about 1.6x faster.
#: (Measured on the benchmark's (32, 96, 55, 55) float32 batch and on
#: groups of 7 to 14 samples of the streaming statistics.)
BLOCK_ELEMENTS = 1 << 18


def block_plan(layout: tuple[int, int, int],
               elements: int = BLOCK_ELEMENTS) -> tuple[bool, list[slice]]:
    """Cut a batch viewed as ``(outer, C, inner)`` into cache-sized blocks.

    Returns ``(by_rows, slices)``: slices of C (column blocks, every value of a
    few statistics) or, when a statistic's values are scattered across the
    array, slices of the outer axis (row blocks).
    """
    outer, c, inner = layout
    if inner == 1 and outer * 16 > BLOCK_ELEMENTS:
        step = max(1, BLOCK_ELEMENTS // c)
        return True, [slice(i, min(outer, i + step)) for i in range(0, outer, step)]
    step = max(1, elements // (outer * inner))
    return False, [slice(i, min(c, i + step)) for i in range(0, c, step)]


class Moments:
    """Mean and M2 of each statistic of a batch viewed as ``(outer, C, inner)``.

    Two strategies, both two-pass with float64 accumulators:

    * *column blocks* (the usual case): all the values of a few statistics make
      one cache-sized block, so their mean, their deviations and, in training
      mode, their normalized output are computed while the block is in cache:
      one read and one write of memory (batch norm in training mode takes
      them in one pass around a shift, :meth:`_one_pass`, with the two-pass
      form where the shift proves too far from the mean);
    * *row blocks*, when a statistic's values are scattered across the whole
      array (channels last, or very many tiny samples): per-block partial sums,
      merged, in separate passes.
    """

    def __init__(self, v: np.ndarray, ct: np.dtype, threads: int | None,
                 one_pass: bool = False, pooled: bool = False) -> None:
        """``one_pass``: column blocks of rows of more than one value take their
        moments in one pass around an estimated mean (see :meth:`compute`), in
        blocks of :data:`ONE_PASS_BLOCK` values.  ``pooled``: the four arrays of
        statistics are one buffer of the output pool (:mod:`normcli.ops._memory`),
        for a caller that does not hand them out (batch norm): per activation
        they are four new 2.3 MB arrays per call on (32, 96, 55, 55), whose page
        faults took 4.5 ms, against 11 for the whole batch norm."""
        self.v, self.ct, self.threads, self.pooled = v, ct, threads, pooled
        outer, c, inner = v.shape
        self.count = outer * inner
        self.by_rows, self.blocks = block_plan(
            v.shape, BLOCK_ELEMENTS if not one_pass else
            ONE_PASS_BLOCK if inner > 1 else ACTIVATION_BLOCK)
        self.one_pass = one_pass and not self.by_rows
        # Per activation (rows of one value), whether the data sit around 0 is
        # asked of the first block alone (see compute): the same for every block
        # whatever the threads, so the same bits.
        self._around = not (self.one_pass and inner == 1)
        if not self._around and len(self.blocks) > 1:
            # That first block runs alone while the other threads wait: an eighth
            # of a block (2048 statistics on (32, 96, 55, 55)) asks as well.
            head = self.blocks[0]
            cut = head.start + max(1, (head.stop - head.start) // 8)
            self.blocks[:1] = [slice(head.start, cut), slice(cut, head.stop)]
        self.first = self.offset = self.mean = self.m2 = np.empty(0)  # see compute()
        #: Each statistic's shift for the one pass, if a caller knows one near its
        #: mean (batch norm per channel, from its sums around 0: see
        #: batchnorm._two_phases); None: the mean of each row's first values.
        #: With shifts, column blocks go straight to the one pass.
        self.shifts: np.ndarray | None = None

    def block(self, i: int) -> tuple[np.ndarray, slice]:
        """Block ``i`` of the data and the slice of statistics it covers."""
        sl = self.blocks[i]
        if self.by_rows:
            return self.v[sl], slice(None)
        return self.v[:, sl, :], sl

    def out_block(self, o: np.ndarray, i: int) -> np.ndarray:
        sl = self.blocks[i]
        return o[sl] if self.by_rows else o[:, sl, :]

    def run(self, work) -> None:
        run_blocks(work, len(self.blocks), elements=self.v.size, threads=self.threads)

    def deviations(self, xb: np.ndarray, sl: slice, scratch: Scratch, ct=None) -> np.ndarray:
        """``xb - first`` in ``ct`` (default: the compute type), in a scratch buffer."""
        ct = self.ct if ct is None else ct
        dev = scratch.get("dev", xb.shape, ct)
        _subtract(xb, self.first[sl].astype(ct)[None, :, None], dev)
        return dev

    @staticmethod
    def _reduce(a: np.ndarray, ct: np.dtype) -> np.ndarray:
        """Sums over axes 0 and 2 of a block, as float64.

        In float64 directly for float64 work.  For float32 work, float32 partial
        sums (pairwise along the contiguous axis, or of at most 32 rows) are
        added in float64: as accurate for these sizes, and several times faster
        than converting every value.
        """
        if ct != np.float32:
            return np.add.reduce(a, axis=(0, 2), dtype=np.float64)
        if a.shape[2] > 1:
            return np.add.reduce(a, axis=2, dtype=np.float32).sum(axis=0, dtype=np.float64)
        if a.shape[0] > _ROWS:  # many rows (channels last): convert as numpy reduces
            return np.add.reduce(a, axis=(0, 2), dtype=np.float64)
        return np.add.reduce(a[:, :, 0], axis=0, dtype=np.float32).astype(np.float64)

    def _sums(self, dev: np.ndarray, scratch: Scratch) -> tuple[np.ndarray, np.ndarray]:
        sq = scratch.get("sq", dev.shape, dev.dtype)
        np.multiply(dev, dev, out=sq)
        return self._reduce(dev, dev.dtype), self._reduce(sq, dev.dtype)

    def _square_sums(self, a: np.ndarray, scratch: Scratch) -> np.ndarray:
        """Sums over axes 0 and 2 of a block's squares, as float64: a dot product
        per row up to :data:`_DOT_ROW` values (the squares never stored; einsum
        lets other threads run meanwhile, vecdot and matmul hold the GIL), else
        the squares in scratch memory summed as :meth:`_reduce` sums (pairwise
        along long rows; over the rows for rows of one value)."""
        if 1 < a.shape[2] <= _DOT_ROW:
            return np.einsum("ijk,ijk->ij", a, a).sum(axis=0, dtype=np.float64)
        sq = scratch.get("sq", a.shape, a.dtype)
        np.multiply(a, a, out=sq)
        return self._reduce(sq, a.dtype)

    def _finish(self, sl: slice, sum_dev: np.ndarray, sum_sq: np.ndarray) -> None:
        # corrected two-pass: the first mean's rounding is taken out of M2
        np.divide(sum_dev, self.count, out=self.offset[sl])
        self.mean[sl] = self.first[sl] + self.offset[sl]
        self.m2[sl] = np.maximum(sum_sq - sum_dev**2 / self.count, 0.0)

    def _types(self):
        """The compute type, then float64 for data whose squares overflow it."""
        return (self.ct,) if self.ct == np.float64 else (self.ct, np.dtype(np.float64))

    def _one_pass(self, xb: np.ndarray, sl: slice, dev: np.ndarray, scratch: Scratch) -> bool:
        """A column block's moments from one pass over its deviations ``dev``
        (written here, in the compute type) from a shift: :attr:`shifts` if
        given, else the mean of the first :data:`_SHIFT_SAMPLE` values of each
        row, rounded to the compute type.
        ``sum(dev)`` and ``sum(dev**2)`` (a dot product per row up to
        :data:`_DOT_ROW` values: the squares are never stored) give
        ``M2 = s2 - s1**2 / m``, as accurate as the two-pass form while the
        shift is near the mean, i.e. while ``s2`` is at most
        :data:`_ONE_PASS_LIMIT` times ``M2`` (rows of samples of one
        distribution give about ``1 + 1 / 256``).  False, with nothing kept,
        for a block beyond that limit, or whose sums overflow or are not
        finite: the two-pass form then redoes it."""
        ct = self.ct
        if self.shifts is not None:
            first = self.shifts[sl].astype(ct)
        else:
            m = min(xb.shape[2], _SHIFT_SAMPLE)
            shift = np.add.reduce(xb[:, :, :m], axis=(0, 2), dtype=np.float64)
            shift /= xb.shape[0] * m
            first = shift.astype(ct)
        _subtract(xb, first[None, :, None], dev)
        sum_dev = self._reduce(dev, ct)
        sum_sq = self._square_sums(dev, scratch)
        m2 = sum_sq - sum_dev**2 / self.count
        if not (_finite(sum_sq) and np.all(sum_sq <= _ONE_PASS_LIMIT * m2)):
            return False
        self.first[sl] = first
        self._finish(sl, sum_dev, sum_sq)
        return True

    def _around_zero(self, xb: np.ndarray, sl: slice, scratch: Scratch) -> bool:
        """A column block's moments from one pass over the data themselves (a shift
        of 0: no deviations are written), for data of the compute type whose mean
        is within one standard deviation of 0 (``n * mean**2 <= M2``, i.e. ``s2 <=
        2 * M2``, well inside :meth:`_one_pass`'s limit).  ``first`` is then 0,
        and ``normalize`` gets the data as the deviations: batch norm writes
        ``x * scale + (beta - mean * scale)`` straight from them, which rounds no
        worse than the shifted form while ``|mean| <= sqrt(var + eps)``.  False,
        with nothing kept, for any other block (or sums that are not finite)."""
        s1 = self._reduce(xb, self.ct)
        s2 = self._square_sums(xb, scratch)
        m2 = s2 - s1 * s1 / self.count
        if not (np.all(s2 <= 2.0 * m2) and _finite(s2)):
            return False
        self.first[sl] = 0.0
        self._finish(sl, s1, s2)
        return True

    def compute(self, normalize=None, out: np.ndarray | None = None, first_try=None) -> None:
        """Fill ``mean`` and ``m2``; then ``normalize(i, sl, dev)`` for each block,
        with column blocks while the block's deviations are still in cache.

        A block (or, by rows, the whole batch) whose float32 sums overflow
        (values beyond about 1e19) is redone in float64, so that it is not
        silently normalized to zeros.  NaN and Inf inputs propagate.

        With ``one_pass`` (see :meth:`_one_pass`), the deviations are written
        into the blocks of ``out`` (of the data's layout and the compute type,
        apart from the data) if given: ``normalize`` then scales them in place.

        ``first_try(i, xb, sl, scratch)``, for column blocks: a caller's own way to do a
        whole block (its statistics, filled in, and its output), which returns
        False, having kept nothing, to leave the block to the forms above.
        """
        c = self.v.shape[1]
        # first: the first-pass mean, rounded to the type the deviations are
        # computed in; offset: mean - first, before rounding the mean
        # (four arrays unless pooled: a caller may keep some and drop the others)
        self.first, self.offset, self.mean, self.m2 = (
            _memory.empty((4, c), np.float64) if self.pooled
            else [np.empty(c) for _ in range(4)])
        if not self.by_rows:

            def column_block(i: int, scratch: Scratch) -> None:
                xb, sl = self.block(i)
                if (first_try is not None and (self._around or i == 0)
                        and first_try(i, xb, sl, scratch)):
                    self._around = True
                    return
                if (self.one_pass and xb.dtype == self.ct and (self._around or i == 0)
                        and self.shifts is None and self._around_zero(xb, sl, scratch)):
                    self._around = True
                    if normalize is not None:
                        normalize(i, sl, xb)
                    return
                if self.one_pass:
                    dev = (self.out_block(out, i) if out is not None
                           else scratch.get("dev", xb.shape, self.ct))
                    if self._one_pass(xb, sl, dev, scratch):
                        if normalize is not None:
                            normalize(i, sl, dev)
                        return
                for ct in self._types():
                    self.first[sl] = (self._reduce(xb, ct) / self.count).astype(ct)
                    dev = self.deviations(xb, sl, scratch, ct)
                    sums = self._sums(dev, scratch)
                    if _finite(sums[1]):  # an overflowed mean or square shows up here
                        break
                self._finish(sl, *sums)
                if normalize is not None:
                    normalize(i, sl, dev)

            if self._around or len(self.blocks) == 1:
                self.run(column_block)
                return
            # per activation: the first block says whether the others are tried
            # around 0 (a batch of images far from 0 would pay for the sums of
            # squares twice in every block), before they are dealt to threads
            run_blocks(column_block, 1, elements=self.v[:, self.blocks[0], :].size, threads=1)
            run_blocks(lambda i, scratch: column_block(i + 1, scratch), len(self.blocks) - 1,
                       elements=self.v.size, threads=self.threads)
            return

        parts: list = [None] * len(self.blocks)
        for ct in self._types():

            def partial_sums(i: int, scratch: Scratch, ct=ct) -> None:
                parts[i] = self._reduce(self.v[self.blocks[i]], ct)

            def partial_moments(i: int, scratch: Scratch, ct=ct) -> None:
                parts[i] = self._sums(self.deviations(*self.block(i), scratch, ct), scratch)

            self.run(partial_sums)
            self.first[:] = (np.sum(parts, axis=0) / self.count).astype(ct)
            self.run(partial_moments)
            sums = sum(p[0] for p in parts), sum(p[1] for p in parts)
            if _finite(self.first, *sums):
                break
        self._finish(slice(None), *sums)
        if normalize is not None:
            self.run(lambda i, scratch: normalize(i, slice(None), self.deviations(
                *self.block(i), scratch, ct)))


    def merge_into(self, shift: np.ndarray, offset: np.ndarray, m2: np.ndarray,
                   count: int) -> None:
        """Merge this piece's moments into running statistics of ``count`` values
        each: mean ``shift + offset`` and ``m2``; ``offset`` and ``m2`` are
        updated in place, one cache-sized block at a time.

        Each block takes one pass over its data: the sums ``s1`` and ``s2`` of
        ``d = (x - shift) - offset`` and of ``d**2``, the deviations from the
        running mean (the first subtraction is exact for data near the shift,
        and the offset is small, so the running mean's rounding never enters).
        Around the running mean, Chan, Golub and LeVeque's update is
        ``m2 += s2 - s1**2 / n`` and ``offset += s1 / n`` (``n`` values in all).
        Where a piece is more than 10 times larger than what came before it,
        blocks whose ``s2`` is over 10 times the merged M2 are recomputed by
        two passes.  Column blocks only.
        """
        nb = self.count
        n = count + nb
        ct = np.dtype(np.float64)
        # The one-pass M2 of a block is off by about eps * s2, where
        # s2 = M2_piece + nb * delta**2 <= (n / count) * (merged M2): harmless
        # unless the piece is much larger than everything before it.  Only then
        # are the blocks checked, and the failing ones redone by two passes.
        check = n / count > _ONE_PASS_LIMIT

        def deviations(xb: np.ndarray, sl: slice, d: np.ndarray) -> None:
            _subtract(xb, shift[sl][None, :, None], d)
            np.subtract(d, offset[sl][None, :, None], out=d)

        def block(i: int, scratch: Scratch) -> None:
            # Every array comes from the scratch: temporaries of this size would be
            # fresh memory maps (page faults) block after block.
            xb, sl = self.block(i)
            cols = xb.shape[1]
            d = scratch.get("dev", xb.shape, ct)
            s1, s2, t = (scratch.get(k, (cols,), ct) for k in ("s1", "s2", "t"))
            deviations(xb, sl, d)
            np.add.reduce(d, axis=(0, 2), out=s1)
            np.multiply(d, d, out=d)
            np.add.reduce(d, axis=(0, 2), out=s2)
            if check and not _one_pass_ok(s1, s2, m2[sl], count, nb):
                # two passes: deviations from the piece's own mean, then Chan's
                # update in terms of the piece's M2 and its offset from the mean
                deviations(xb, sl, d)
                first = np.add.reduce(d, axis=(0, 2)) / nb
                np.subtract(d, first[None, :, None], out=d)
                c1 = np.add.reduce(d, axis=(0, 2))
                np.multiply(d, d, out=d)
                piece_m2 = np.maximum(np.add.reduce(d, axis=(0, 2)) - c1 * c1 / nb, 0.0)
                delta = first + c1 / nb
                m2[sl] += piece_m2 + delta * delta * (count * nb / n)
                offset[sl] += delta * (nb / n)
                return
            # With sums around the running mean, Chan's update is
            # m2 += s2 - s1**2 / n and offset += s1 / n.
            np.multiply(s1, s1, out=t)
            t /= n
            s2 -= t
            m2[sl] += s2
            s1 /= n
            offset[sl] += s1

        self.run(block)


#: Values per column block in one pass: the block, its deviations and the dot
#: products in L2 (on (32, 96, 55, 55) float32, blocks of one channel, 97 Ki
#: values, took 15 ms on one thread against 20 for two channels).
ONE_PASS_BLOCK = 1 << 17
#: Values per column block of batch norm per activation (rows of one value):
#: fewer, larger blocks, as the per-block calls on every statistic cost as much
#: as the passes' cache misses.  On (32, 96, 55, 55) float32, two threads, fresh
#: processes, the time over np.copyto's in the same process: 3.8-4.9 for 256 Ki
#: values, 3.8-4.1 for 512 Ki (three runs each, taking turns, while shared);
#: 128 Ki and 1 Mi took 1.4 to 1.9 times as long as 256 Ki.
ACTIVATION_BLOCK = 1 << 19
#: Values of each row whose mean is the one-pass shift.
_SHIFT_SAMPLE = 256
#: Rows up to this long sum their squares as one dot product each (einsum's
#: unrolled sum of products); longer ones pairwise.
_DOT_ROW = 1 << 14


def _one_pass_ok(s1: np.ndarray, s2: np.ndarray, m2: np.ndarray, count: int, nb: int) -> bool:
    """Whether a block's one-pass sums are accurate: ``s2`` (whose rounding error,
    about eps * s2, the one-pass M2 carries) within the limit of the merged M2."""
    n = count + nb
    merged = m2 + (s2 - s1 * s1 / n)
    return bool(np.all(s2 <= _ONE_PASS_LIMIT * merged)) and _finite(s2)


#: A one-pass block is recomputed by two passes where its sum of squared
#: deviations exceeds this many times the merged M2: the update s2 - s1**2 / n
#: cancels, and multiplies the sums' own rounding errors (a few eps, up to
#: sqrt(m) eps for long sums) by up to this factor.  With 100, a piece of 99
#: samples 1000 sigma from one sample came out 6e-12 off; with 10, 4e-16.
_ONE_PASS_LIMIT = 10.0


def _subtract(x: np.ndarray, v: np.ndarray, out: np.ndarray) -> None:
    """``out = x - v`` in out's dtype: x converted first (exactly, as the
    ufunc's own cast would), which is about twice as fast for float32 data."""
    if x.dtype == out.dtype:
        np.subtract(x, v, out=out)
    else:
        np.copyto(out, x, casting="unsafe")
        np.subtract(out, v, out=out)


def check_overflow(arr: np.ndarray, m2: np.ndarray) -> None:
    """Refuse finite data whose variance overflows float64 (values beyond about
    1e154): its statistics would be Inf and its normalized values 0 or NaN."""
    if _finite(m2) or not np.isfinite(arr).all():  # NaN/Inf data: they propagate
        return
    raise ParameterError(overflow_message(float(np.max(np.abs(arr)))), param="x", value=arr)


def overflow_message(largest: float) -> str:
    """What to say when finite values are too large for float64 statistics."""
    return (f"values up to {largest:.3g} are too large for batch statistics: the sum of "
            "their squares overflows float64 (about 1.8e308); scale the data down")


def _finite(*arrays: np.ndarray) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def batch_stats(
    x: object, *, per: str = "activation", channels_last: bool = False, threads: int | None = None
) -> BatchStats:
    r"""Mean and variances of a batch (axis 0), in float64, by two passes.

    Parameters
    ----------
    x : array_like
        ``(N, ...)``: a batch of N samples, at least 2-D.  Beyond 4-D the
        leading axes are all batch axes: ``(..., C, H, W)``.
    per : {"activation", "channel"}
        One statistic per activation (shape ``x.shape[1:]``, or the last three
        axes beyond 4-D, over the batch) or per channel (shape ``(C,)``, over
        the batch and spatial axes; C is axis 1 (axis -3 beyond 4-D), or the
        last axis with ``channels_last``).

    Returns
    -------
    BatchStats
        ``mean``, biased ``var``, ``var_unbiased`` and ``count``.

    Notes
    -----
    Each statistic is computed from the deviations from a first-pass mean,
    with the corrected two-pass formula
    :math:`\sigma^2 = (\sum d^2 - (\sum d)^2 / m) / m`, never as
    :math:`E[x^2] - E[x]^2`.  Sums accumulate in float64 (for float32 data,
    from float32 partial sums of one contiguous row or of at most 32 rows).

    Examples
    --------
    >>> s = batch_stats(np.array([[1.0, 10.0], [3.0, 10.0]]))
    >>> s.mean.tolist(), s.var.tolist(), s.var_unbiased.tolist(), s.count
    ([2.0, 10.0], [1.0, 0.0], [2.0, 0.0], 2)
    """
    check_per(per)
    arr = check_array(x)
    channels_last, threads = check_flag(channels_last, "channels_last"), check_threads(threads)
    if arr.size == 0:
        raise ParameterError(f"x has shape {arr.shape}: an empty batch has no statistics",
                             param="x", value=arr)
    layout = batch_layout(arr.shape, per, channels_last)
    # float64 deviations: statistics to save and reuse are exact to float64 rounding
    moments = Moments(arr.reshape(layout), np.dtype(np.float64), threads)
    moments.compute()
    check_overflow(arr, moments.m2)
    shape = stats_shape(arr.shape, per, channels_last)
    return BatchStats.from_moments(
        moments.mean.reshape(shape), moments.m2.reshape(shape), moments.count, per
    )
