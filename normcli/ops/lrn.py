"""Local response normalization in the six conventions of :mod:`normcli.ops.conventions`."""

from __future__ import annotations

import math

import numpy as np

from normcli.ops._blocks import BLOCK_ELEMENTS, Scratch, run_blocks
from normcli.ops._windows import box_sum, choose_method
from normcli.ops.arrays import check_array, compute_dtype
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

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``; float32 for float16/float32 input, else float64.

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
    ct = compute_dtype(arr.dtype)
    out = np.empty(arr.shape, ct)
    if arr.size == 0:
        return out
    plan = lrn_blocks_plan(arr.shape, params, channels_last=channels_last)
    xs, outs = plan.views(arr), plan.views(out)

    def work(i: int, scratch: Scratch) -> None:
        _lrn_block(xs(i), outs(i), params, plan, ct, scratch)

    run_blocks(work, plan.count, elements=arr.size, threads=threads)
    return out


class _Plan:
    """How an array is cut into blocks and along which block axes the window runs."""

    def __init__(self, view_shape, block_axis, block_size, index_axes, axes, order=None):
        self.view_shape = view_shape  # the array reshaped (a view) before blocking
        self.block_axis = block_axis  # the axis of view_shape cut into blocks
        self.block_size = block_size
        self.index_axes = index_axes  # leading axes iterated one index at a time
        self.axes = axes  # window axes within one block
        self.order = order  # transpose applied to each block (None: as sliced)
        lead = [view_shape[a] for a in index_axes]
        self.lead_count = int(np.prod(lead, dtype=np.int64))
        self.splits = -(-view_shape[block_axis] // block_size)
        self.count = self.lead_count * self.splits

    def views(self, arr: np.ndarray):
        v = arr.reshape(self.view_shape)
        lead = [self.view_shape[a] for a in self.index_axes]

        def block(i: int) -> np.ndarray:
            j, part = divmod(i, self.splits)
            index: list[object] = list(np.unravel_index(j, lead)) if lead else []
            start = part * self.block_size
            rest = [slice(None)] * (len(self.view_shape) - len(index))
            rest[self.block_axis - len(index)] = slice(start, start + self.block_size)
            b = v[tuple(index) + tuple(rest)]
            return b if self.order is None else b.transpose(self.order)

        return block


def lrn_blocks_plan(shape: tuple[int, ...], params: LRNParams, *, channels_last: bool) -> _Plan:
    """Cut an array of ``shape`` into cache-sized blocks for the LRN kernel."""
    if len(shape) == 2:
        shape = (1, 1, *shape) if not channels_last else (1, *shape, 1)
    if channels_last:
        *lead, h, w, c = shape
    else:
        *lead, c, h, w = shape
    b = int(np.prod(lead, dtype=np.int64))
    if params.mode == "inter":
        if not channels_last:  # (B, C, HW): blocks of columns, window along C
            q = max(16, BLOCK_ELEMENTS // c // 16 * 16)
            return _Plan((b, c, h * w), 2, q, (0,), (0,))
        rows = max(1, BLOCK_ELEMENTS // c)  # (B*HW, C): blocks of rows, window along C
        return _Plan((b * h * w, c), 0, rows, (), (1,))
    if not channels_last:
        # (B*C, H, W): blocks of whole maps, each seen as (H, maps, W) so that the
        # window along H is one long matrix product or contiguous shifted adds.
        maps = max(1, BLOCK_ELEMENTS // (h * w))
        return _Plan((b * c, h, w), 0, maps, (), (2, 0), order=(1, 0, 2))
    # (B, H, W, C): per sample, blocks of channels, windows along W then H
    cb = max(1, BLOCK_ELEMENTS // (h * w))
    return _Plan((b, h, w, c), 3, cb, (0,), (1, 0))


def _methods(shape: tuple[int, ...], axes: tuple[int, ...], p: LRNParams, ct: np.dtype):
    return [
        choose_method(shape[a], p.lo, p.hi, ct, int(np.prod(shape[a + 1:], dtype=np.int64)))
        for a in axes
    ]


# The compute types tried in turn when a block's squares leave the range of one.
_WIDER = {np.dtype(np.float32): np.dtype(np.float64), np.dtype(np.float64): np.dtype(np.longdouble)}


def _lrn_block(
    xb: np.ndarray, ob: np.ndarray, p: LRNParams, plan: _Plan, ct: np.dtype, scratch: Scratch
) -> None:
    """Normalize one block ``xb`` into ``ob``, computing in ``ct`` (or wider if needed)."""
    window = p.size ** len(plan.axes)
    while True:
        s = scratch.get("s", xb.shape, ct)
        np.multiply(xb, xb, out=s, dtype=ct)
        wider = _WIDER.get(ct)
        if wider is None or wider == ct or _in_range(xb, s, ct, window, p):
            break
        ct = wider  # rare: huge, tiny or k=0 data; recompute this block wider
    methods = _methods(xb.shape, plan.axes, p, ct)
    if not np.isfinite(s.max()):
        methods = ["shift"] * len(methods)  # a band product would spread NaN (0 * NaN)
    d = scratch.get("d", xb.shape, ct)
    if len(plan.axes) == 1:
        box_sum(s, plan.axes[0], p.lo, p.hi, d, methods[0])
    else:  # separable square window: along one axis into d, then the other back into s
        box_sum(s, plan.axes[0], p.lo, p.hi, d, methods[0])
        box_sum(d, plan.axes[1], p.lo, p.hi, s, methods[1])
        s, d = d, s
    if p.alpha_eff != 1.0:
        np.multiply(d, p.alpha_eff, out=d)
    if p.k_eff != 0.0:
        np.add(d, p.k_eff, out=d)
    _power(d, p.beta, s)
    np.divide(xb, d, out=ob, dtype=ct, casting="unsafe")
    if p.k_eff == 0.0 and p.beta != 0.0:
        # An all-zero window with k = 0 is 0/0: its value is 0, so its result is 0.
        np.copyto(ob, 0, where=d == 0)


def _in_range(xb: np.ndarray, s: np.ndarray, ct: np.dtype, window: int, p: LRNParams) -> bool:
    """True when every result of the block is computed accurately in ``ct``.

    With ``d = k + alpha' * sum`` between ``dmin`` and ``dmax``: neither the
    largest window sum, ``dmax`` nor ``dmax ** beta`` may overflow, and
    ``dmin ** beta`` must stay a normal number with full precision (else 0/0
    or a lost result).  Small squares
    only matter where ``k`` does not dominate them: then no nonzero value may
    square to 0 or to a subnormal.  Bounds are compared as base-2 logarithms.
    """
    fi = np.finfo(ct)
    small = float(fi.tiny) / float(fi.eps)  # below this, squares lose relative precision
    log_small, log_big = math.log2(small), math.log2(float(fi.max)) - 8
    smax = float(s.max())
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


def _power(d: np.ndarray, beta: float, tmp: np.ndarray) -> None:
    """``d **= beta`` in place, through sqrt for the common exponents (faster, as exact)."""
    if beta == 1.0:
        return
    if beta == 0.0:
        d.fill(1)
    elif beta == 0.5:
        np.sqrt(d, out=d)
    elif beta == 0.75:  # d**0.75 = d**0.5 * d**0.25
        np.sqrt(d, out=tmp)
        np.sqrt(tmp, out=d)
        np.multiply(d, tmp, out=d)
    elif beta == 0.25:
        np.sqrt(d, out=d)
        np.sqrt(d, out=d)
    elif beta == 1.5:
        np.sqrt(d, out=tmp)
        np.multiply(d, tmp, out=d)
    elif beta == 2.0:
        np.multiply(d, d, out=d)
    else:
        np.power(d, beta, out=d)
