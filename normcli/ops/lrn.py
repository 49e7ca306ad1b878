"""Local response normalization in the six conventions of :mod:`normcli.ops.conventions`."""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

from normcli.checks import check_flag
from normcli.ops._blocks import Scratch, run_blocks
from normcli.ops._blocks import serial_scratch as _scratch
from normcli.ops._windows import _BAND_COST_PER_ROW, _now, band, choose_last, tree_passes, tree_sum
from normcli.ops.arrays import check_array, check_out, check_threads, compute_dtype
from normcli.ops.conventions import LRNParams, lrn_params

__all__ = ["lrn", "lrn_blocks_plan"]


def lrn(
    x: object,
    *,
    mode: str = "inter",
    convention: str = "seed",
    n: int | None = None,
    k: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    params: LRNParams | None = None,
    channels_last: bool = False,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Local response normalization of feature maps.

    Inter-channel (``mode="inter"``, AlexNet's form) divides each value by a
    power of the summed squares of the neighbouring channels at the same
    position; intra-channel (``mode="intra"``) sums over a square window
    inside the value's own channel:

    .. math::

        b_i = a_i \Big/ \Bigl(k + \alpha' \sum_{j=\max(0,\,i-lo)}^{\min(C-1,\,i+hi)}
              a_j^2\Bigr)^{\beta}

    where the window ``[i - lo, i + hi]`` and the divided ``alpha'`` (``alpha``,
    ``alpha/n`` or ``alpha/n**2``) follow the chosen ``convention`` (see
    ``normcli.CONVENTIONS``).  Windows are clipped at the borders (zero padding)
    while the division of ``alpha`` stays constant.

    Parameters
    ----------
    x : array_like
        ``(H, W)`` (one channel), ``(C, H, W)``, ``(N, C, H, W)`` or more
        leading batch axes; with ``channels_last``, ``(..., H, W, C)``.
        bool, integer or floating point.
    mode : {"inter", "intra"}
        Across channels, or within a channel.
    convention : {"seed", "pytorch", "onnx", "cudnn", "caffe", "tensorflow"}
        Which framework's LRN to reproduce.  ``seed`` is the AlexNet paper's.
    n, k, alpha, beta : optional
        Window parameter, additive constant, scale and exponent; ``None`` takes
        the convention's default.  What ``n`` means depends on the convention
        (a neighbourhood, a window size, TensorFlow's radius).
    params : LRNParams, optional
        Settings already resolved by :func:`normcli.ops.conventions.resolve_lrn`
        (checked once for many calls), instead of ``mode`` ... ``beta``, which
        are then left out.
    channels_last : bool
        Read the channel axis last.
    threads : int, optional
        Worker threads (default: ``NORMCLI_THREADS`` or the usable cores).
    out : numpy.ndarray, optional
        Where to write the result: C-contiguous, of ``x``'s shape and the
        compute dtype (below).  It may be ``x`` itself (each block reads only
        its own values before writing them), but no other view of ``x``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``; float32 for float16/float32 input, else float64
        (``out``, if given).

    Raises
    ------
    ParameterError
        (a ``ValueError``) for an unknown mode or convention, parameters
        outside the convention's ranges, or unsupported data; ``.param``
        names the culprit (``"x"`` for the data).

    Notes
    -----
    Numerics: sums of squares that would overflow or underflow the compute
    type (for example float32 values near 1e20) are recomputed, block by block,
    in float64 and if needed in extended precision, so the result is right
    rather than 0.  With ``k = 0`` a window that is entirely zero gives 0 (the
    value itself), not NaN.  NaN and infinite inputs propagate.

    Examples
    --------
    The seed's example: four channels, ``(k, alpha, beta, n) = (0, 1, 1, 2)``;
    channel 0 and channel 1 hold 1 at (0, 0), so ``b = 1 / (1**2 + 1**2)``:

    >>> import numpy as np
    >>> x = np.array([1.0, 1.0, 2.0, 0.0]).reshape(4, 1, 1)
    >>> lrn(x, k=0, alpha=1, beta=1, n=2).ravel().tolist()
    [0.5, 0.16666666666666666, 0.4, 0.0]
    """
    params = lrn_params(params, mode=mode, convention=convention, n=n, k=k, alpha=alpha,
                        beta=beta)
    arr = check_array(x)
    channels_last, threads = check_flag(channels_last, "channels_last"), check_threads(threads)
    ct = compute_dtype(arr.dtype)
    out = check_out(out, arr, ct)
    if arr.size == 0:
        return out
    plan = _plan(arr.shape, params.mode, channels_last)
    if plan.count == 1 and arr.size < _SMALL:  # one block, here, with the fewest calls
        shape = plan.view_shape[len(plan.index_axes):]
        if arr.size <= _TINY:
            small = _small(shape, params, ct, plan.axes)
            if small is not None and small(arr.reshape(shape), out.reshape(shape)):
                return out
        with np.errstate(all="ignore"):
            _lrn_block(arr.reshape(shape), out.reshape(shape), params, plan, ct, _scratch())
        return out
    xs, outs = plan.views(arr), plan.views(out)

    def work(i: int, scratch: Scratch) -> None:
        _lrn_block(xs(i), outs(i), params, plan, ct, scratch)

    last = len(plan.view_shape) - len(plan.index_axes) - 1  # a block's last axis
    blas = last in plan.axes and _last_method(plan.view_shape[-1], params.lo, params.hi,
                                              ct) == "band"
    run_blocks(work, plan.count, elements=arr.size, threads=threads, blas=blas)
    return out


@lru_cache(maxsize=256)
def _last_method(length: int, lo: int, hi: int, ct: np.dtype) -> str:
    return choose_last(length, lo, hi, ct)


@lru_cache(maxsize=256)
def _layout(shape: tuple[int, ...], axes: tuple[int, ...], lo: int, hi: int, ct: np.dtype,
            force_tree: bool):
    """``(use_band, pads, padded shape, interior slices)`` of a block's squares buffer:
    zero padding on every window axis but a last axis summed by a band product."""
    last = len(shape) - 1
    use_band = (last in axes and not force_tree
                and _last_method(shape[last], lo, hi, ct) == "band")
    pads = [(0, 0)] * len(shape)
    for a in axes:
        if not (a == last and use_band):
            pads[a] = (min(lo, shape[a] - 1), min(hi, shape[a] - 1))
    padded = tuple(n + b + a for n, (b, a) in zip(shape, pads, strict=True))
    interior = tuple(slice(b, b + n) for n, (b, _) in zip(shape, pads, strict=True))
    return use_band, tuple(pads), padded, interior


#: Values per block.  A block's buffers should stay in the cache, but every
#: numpy call hands the GIL to the other threads, whose wake-up takes tens of
#: microseconds on a virtual machine: with 64 Ki values (L2-sized) two threads
#: were no faster than one.  Blocks of about 256 Ki values (1 MiB of float32,
#: in the shared L3) let both cores work.  The size depends on the shape alone,
#: never on ``threads``: a block recomputed wider must be the same block on any
#: number of threads.
BLOCK_ELEMENTS = 1 << 18
#: Below this many values a single-block call skips the thread machinery.
_SMALL = 1 << 18
#: Up to this many values, a one-block call replays the numpy calls of a
#: :class:`_Small` kept for its shape and settings (its buffers stay allocated).
_TINY = 1 << 16
#: Inter-channel blocks hold whole samples up to this many values: reading
#: rows of a few KiB scattered over a sample cost twice the time of reading the
#: same values in one stretch.
_MAX_SAMPLE = 1 << 20


class _Plan:
    """How an array is cut into blocks, and the window axes of each block."""

    def __init__(self, view_shape, block_axis, block_size, index_axes, axes, order=None):
        self.view_shape = view_shape  # the array reshaped (a view) before blocking
        self.block_axis = block_axis  # the axis of view_shape cut into blocks
        self.block_size = block_size
        self.index_axes = index_axes  # leading axes iterated one index at a time
        self.axes = axes  # window axes within one block
        self.order = order  # transpose applied to each block (None: as sliced)
        self.lead = tuple(view_shape[a] for a in index_axes)
        self.lead_count = math.prod(self.lead)
        self.splits = -(-view_shape[block_axis] // block_size)
        self.count = self.lead_count * self.splits

    def views(self, arr: np.ndarray):
        v = arr.reshape(self.view_shape)
        nlead, splits, size, order = len(self.index_axes), self.splits, self.block_size, self.order
        k = self.block_axis - nlead
        before = (slice(None),) * k
        lead = self.lead

        def block(i: int) -> np.ndarray:
            j, part = divmod(i, splits)
            start = part * size
            cut = (*before, slice(start, start + size))
            if nlead == 1:
                b = v[(j, *cut)]
            elif nlead:
                b = v[(*np.unravel_index(j, lead), *cut)]
            else:
                b = v[cut]
            return b if order is None else b.transpose(order)

        return block


def _even(length: int, most: int, multiple: int = 1) -> int:
    """The block length that cuts ``length`` into the fewest nearly equal parts of at
    most ``most`` (rounded up to ``multiple``): no small leftover block."""
    parts = -(-length // max(1, most))
    size = -(-length // parts)
    return min(length, -(-size // multiple) * multiple)


def lrn_blocks_plan(shape: tuple[int, ...], params: LRNParams, *, channels_last: bool) -> _Plan:
    """Cut an array of ``shape`` into cache-sized blocks for the LRN kernel."""
    return _plan(tuple(shape), params.mode, channels_last)


@lru_cache(maxsize=128)
def _plan(shape: tuple[int, ...], mode: str, channels_last: bool) -> _Plan:
    if len(shape) == 2:
        shape = (1, 1, *shape) if not channels_last else (1, *shape, 1)
    if channels_last:
        *lead, h, w, c = shape
    else:
        *lead, c, h, w = shape
    b = math.prod(lead)
    if mode == "inter":
        if not channels_last and c * h * w <= _MAX_SAMPLE:
            # (B, C, HW): blocks of whole samples, one contiguous stretch of memory
            samples = _even(b, max(1, BLOCK_ELEMENTS // (c * h * w)))
            return _Plan((b, c, h * w), 0, samples, (), (1,))
        if not channels_last:  # large samples: blocks of columns, window along C
            q = _even(h * w, max(16, BLOCK_ELEMENTS // c), 16)
            return _Plan((b, c, h * w), 2, q, (0,), (0,))
        rows = _even(b * h * w, max(1, BLOCK_ELEMENTS // c))  # (B*HW, C): window along C
        return _Plan((b * h * w, c), 0, rows, (), (1,))
    if not channels_last:
        # (B*C, H, W): blocks of whole maps, windows along W (flat) then H
        maps = _even(b * c, max(1, BLOCK_ELEMENTS // (h * w)))
        return _Plan((b * c, h, w), 0, maps, (), (1, 2))
    # (B, H, W, C): per sample, blocks of channels, windows along W then H
    cb = _even(c, max(1, BLOCK_ELEMENTS // (h * w)))
    return _Plan((b, h, w, c), 3, cb, (0,), (0, 1))


class _Small:
    """One block's LRN, planned once for a shape, its settings and compute type,
    with buffers of its own: the numpy calls of :func:`_lrn_block` recorded once
    and replayed for each input, without the Python between them (on a
    (1, 16, 40, 40) input that was more than the arithmetic).  Bit for bit
    :func:`_lrn_block`'s results, except that a block of few channels sums its
    windows by one band product (:func:`_channel_band`): the same sums rounded
    differently, within the compute type's rounding.  An input whose squares
    :func:`_in_range` would send wider, or that holds NaN or Inf where a band
    product sums, is left to :func:`_lrn_block` (the call returns False)."""

    def __init__(self, shape: tuple[int, ...], p: LRNParams, ct: np.dtype,
                 axes: tuple[int, ...]) -> None:
        self.p, self.ct, self.axes, self.busy = p, ct, axes, False
        self.window = p.size ** len(axes)
        scratch = Scratch()
        self.calls: list[tuple] = []

        def record(func, *args, **kwargs):
            self.calls.append((func, args, kwargs))

        if _channel_band(shape, axes, p, ct):
            # (B, C, HW), few channels: k + alpha' * (window sums) as one product
            # [alpha' * band | k] @ [squares; ones], rounded once, not five times
            b, c, hw = shape
            z = scratch.get("z", (b, c + 1, hw), ct)
            z[:, c, :] = 1
            self.s = z[:, :c, :]
            coef = np.zeros((c, c + 1), ct)
            np.multiply(band(c, p.lo, p.hi, ct.str), p.alpha_eff, out=coef[:, :c])
            coef[:, c] = p.k_eff
            d = scratch.get("w", shape, ct)
            record(np.matmul, coef, z, out=d)
            _power(d, p.beta, scratch.get("s", d.shape, ct), record)
            self.use_band = True
        else:
            self.use_band, pads, padded, interior = _layout(shape, axes, p.lo, p.hi, ct, False)
            z = scratch.padded("z", padded, pads, ct)
            self.s = z[interior]
            d = _denominators(z, shape, pads, padded, self.use_band, axes, p, ct, scratch,
                              record)
        self.d = d if d.shape == shape else d[..., :shape[-1]]
        wider = _WIDER.get(ct)
        self.wider = wider is not None and wider != ct  # (dtype(None) is float64)
        self.zero_k = p.k_eff == 0.0 and p.beta != 0.0
        # Below ``safe`` a block's largest square passes _in_range whatever the rest
        # of the block holds (k dominates any tiny squares): no need to ask it.
        self.safe = -math.inf
        small = _limits(ct)[0]
        if p.beta >= 0 and p.k_eff >= max(p.alpha_eff * self.window, 1.0) * small:
            bound = 2.0 ** _limits(ct)[2]
            for _ in range(2200):  # halving from the top of float64's range
                if _in_range(None, None, ct, self.window, p, bound):
                    self.safe = bound
                    break
                bound /= 2

    def __call__(self, xb: np.ndarray, ob: np.ndarray) -> bool:
        s = self.s
        self.busy = True
        try:
            return self._run(xb, ob, s)
        finally:
            self.busy = False

    def _run(self, xb: np.ndarray, ob: np.ndarray, s: np.ndarray) -> bool:
        with np.errstate(all="ignore"):
            np.multiply(xb, xb, out=s, dtype=self.ct)
            smax = float(s.max())
            if not smax <= self.safe:  # (NaN too)
                if self.wider and not _in_range(xb, s, self.ct, self.window, self.p, smax):
                    return False
                if self.use_band and not math.isfinite(smax):
                    return False
            for func, args, kwargs in self.calls:
                func(*args, **kwargs)
            np.divide(xb, self.d, out=ob, dtype=self.ct, casting="unsafe")
            if self.zero_k:
                np.copyto(ob, 0, where=self.d == 0)
        return True


def _channel_band(shape: tuple[int, ...], axes: tuple[int, ...], p: LRNParams,
                  ct: np.dtype) -> bool:
    """Whether a small inter-channel block ``(B, C, HW)`` sums its windows by a band
    product (with alpha' and k in it): cheaper than the tree's passes and the
    two for alpha' and k while C is small (a product costs about 0.2 passes per
    channel; measured 10 us against 24 on (1, 16, 1600) float32)."""
    if not (len(shape) == 3 and axes == (1,) and shape[2] > 1):
        return False
    if ct == np.longdouble and np.dtype(np.longdouble) != np.dtype(np.float64):
        return False  # no BLAS for extended precision
    lo, hi = min(p.lo, shape[1] - 1), min(p.hi, shape[1] - 1)
    return shape[1] * _BAND_COST_PER_ROW < tree_passes(lo + hi + 1) + 2


_small_local = threading.local()


def _small(shape: tuple[int, ...], p: LRNParams, ct: np.dtype,
           axes: tuple[int, ...]) -> _Small | None:
    """This thread's :class:`_Small` for a block ``shape`` (a few kept per thread),
    or None if it is busy (a nested call)."""
    kept = getattr(_small_local, "kept", None)
    if kept is None:
        kept = _small_local.kept = {}
    key = (shape, axes, id(p), ct)
    small = kept.get(key)
    if small is None or small.p is not p:
        if len(kept) >= _KEPT_SMALL:
            del kept[next(iter(kept))]
        with np.errstate(all="ignore"):  # (an alpha' beyond ct: its blocks go wider)
            small = kept[key] = _Small(shape, p, ct, axes)
    if small.busy:
        return None
    return small


#: Block shapes (with their settings) that each thread keeps a :class:`_Small` for.
_KEPT_SMALL = 8


# The compute types tried in turn when a block's squares leave the range of one.
_WIDER = {np.dtype(np.float32): np.dtype(np.float64), np.dtype(np.float64): np.dtype(np.longdouble)}


def _lrn_block(
    xb: np.ndarray, ob: np.ndarray, p: LRNParams, plan: _Plan, ct: np.dtype, scratch: Scratch
) -> None:
    """Normalize one block ``xb`` into ``ob``, computing in ``ct`` (or wider if needed).

    The squares go straight into a buffer with the window's zero padding on
    every window axis.  A window along the block's last axis (whose rows are
    short) is summed over the whole buffer as one flat array: the padding
    between rows keeps every row's windows apart, and the sums that straddle
    two rows land in padding columns, which are never read.  A window along
    another axis is a tree of sums along it.
    """
    axes = plan.axes
    window = p.size ** len(axes)
    shape = xb.shape
    force_tree = False
    while True:
        use_band, pads, padded, interior = _layout(shape, axes, p.lo, p.hi, ct, force_tree)
        z = scratch.padded("z", padded, pads, ct)
        s = z[interior]
        np.multiply(xb, xb, out=s, dtype=ct)
        smax = float(s.max())
        wider = _WIDER.get(ct)
        if not (wider is None or wider == ct or _in_range(xb, s, ct, window, p, smax)):
            ct = wider  # rare: huge, tiny or k=0 data; recompute this block wider
            continue
        if use_band and not math.isfinite(smax):
            force_tree = True  # a band product would spread NaN (0 * NaN)
            continue
        break
    d = _denominators(z, shape, pads, padded, use_band, axes, p, ct, scratch)
    if d.shape != shape:
        d = d[..., :shape[-1]]
    np.divide(xb, d, out=ob, dtype=ct, casting="unsafe")
    if p.k_eff == 0.0 and p.beta != 0.0:
        # An all-zero window with k = 0 is 0/0: its value is 0, so its result is 0.
        np.copyto(ob, 0, where=d == 0)


def _denominators(z, shape, pads, padded, use_band, axes, p: LRNParams, ct: np.dtype,
                  scratch: Scratch, call=_now) -> np.ndarray:
    """``(k + alpha' * window sums) ** beta`` of the squares in the padded buffer
    ``z``, in a scratch buffer (with padding columns if the last axis had a
    window).  Every numpy call goes through ``call(func, *args, **kwargs)``
    (default: now), so that :class:`_Small` can record them once and replay
    them: the arguments are all views of ``z`` and of ``scratch``'s buffers."""
    last = len(shape) - 1
    cur = z
    if use_band:
        n = shape[last]
        flat = scratch.get("w", padded, ct)
        call(np.matmul, z.reshape(-1, n), band(n, p.lo, p.hi, ct.str).T,
             out=flat.reshape(-1, n))
        cur = flat
    elif last in axes:  # along the last axis: one flat run over every row, padding and all
        lo, hi = pads[last]
        w = lo + hi + 1
        flat = scratch.get("w", padded, ct)
        valid = flat.size - (w - 1)
        tree_sum(z.reshape(-1), w, flat.reshape(-1)[:valid],
                 lambda j, rows: scratch.get(f"f{j}", (rows,), ct), call=call)
        call(np.copyto, flat.reshape(-1)[valid:], 0)  # past the last row's windows: never read
        cur = flat  # the sums of row r, column c, are at [r, c] (not [r, lo + c])
    cur_shape = list(padded)
    for a in (a for a in reversed(axes) if a != last):
        lo, hi = pads[a]
        cur_shape[a] = shape[a]
        dst = scratch.get(f"d{a}", tuple(cur_shape), ct)

        def buffer(j: int, rows: int, a=a, shape_now=tuple(cur.shape)) -> np.ndarray:
            return scratch.get(f"t{j}", (*shape_now[:a], rows, *shape_now[a + 1:]), ct)

        tree_sum(cur, lo + hi + 1, dst, buffer, a, call=call)
        cur = dst
    d = cur
    if p.alpha_eff != 1.0:
        call(np.multiply, d, p.alpha_eff, out=d)
    if p.k_eff != 0.0:
        call(np.add, d, p.k_eff, out=d)
    _power(d, p.beta, scratch.get("s", d.shape, ct), call)
    return d


def _in_range(xb: np.ndarray, s: np.ndarray, ct: np.dtype, window: int, p: LRNParams,
              smax: float) -> bool:
    """True when every result of the block is computed accurately in ``ct``.

    With ``d = k + alpha' * sum`` between ``dmin`` and ``dmax``: neither the
    largest window sum, ``dmax`` nor ``dmax ** beta`` may overflow, and
    ``dmin ** beta`` must stay a normal number with full precision (else 0/0
    or a lost result).  Small squares
    only matter where ``k`` does not dominate them: then no nonzero value may
    square to 0 or to a subnormal.  Bounds are compared as base-2 logarithms.
    """
    small, log_small, log_big = _limits(ct)
    if smax != smax:  # NaN: it propagates; judge the rest of the block
        smax = float(np.nanmax(s)) if not np.all(np.isnan(s)) else 0.0
    dmax = p.k_eff + p.alpha_eff * window * smax
    if not (smax * window < 2.0**log_big and dmax < 2.0**log_big):
        return False  # the window sum, or k + alpha' * sum, would overflow
    if dmax > 0 and p.beta * math.log2(dmax) > log_big:
        return False  # its power would
    k = p.k_eff
    if k > 0 and p.beta * math.log2(k) < log_small:
        return False  # k ** beta itself would underflow
    if k >= max(p.alpha_eff * window, 1.0) * small:
        return True  # k dominates whatever squares underflow
    if np.count_nonzero(s) != np.count_nonzero(xb):
        return False  # a nonzero value squared to 0
    smin = float(np.min(s, where=s > 0, initial=math.inf))
    if smin == math.inf:
        return True  # all zero: every result is 0
    return (
        smin >= small
        and p.alpha_eff * smin >= small
        and p.beta * math.log2(k + p.alpha_eff * smin) >= log_small
    )


@lru_cache(maxsize=8)
def _limits(ct: np.dtype) -> tuple[float, float, float]:
    """``(small, log2(small), log2(max) - 8)`` of ``ct``: below ``small`` squares
    lose relative precision; sums are kept 8 binary orders below the largest."""
    fi = np.finfo(ct)
    small = float(fi.tiny) / float(fi.eps)
    return small, math.log2(small), math.log2(float(fi.max)) - 8


def _power(d: np.ndarray, beta: float, tmp: np.ndarray, call=_now) -> None:
    """``d **= beta`` in place, through sqrt for the common exponents (faster, as exact)."""
    if beta == 1.0:
        return
    if beta == 0.0:
        call(np.copyto, d, 1)
    elif beta == 0.5:
        call(np.sqrt, d, out=d)
    elif beta == 0.75:  # d**0.75 = d**0.5 * d**0.25
        call(np.sqrt, d, out=tmp)
        call(np.sqrt, tmp, out=d)
        call(np.multiply, d, tmp, out=d)
    elif beta == 0.25:
        call(np.sqrt, d, out=d)
        call(np.sqrt, d, out=d)
    elif beta == 1.5:
        call(np.sqrt, d, out=tmp)
        call(np.multiply, d, tmp, out=d)
    elif beta == 2.0:
        call(np.multiply, d, d, out=d)
    else:
        call(np.power, d, beta, out=d)
