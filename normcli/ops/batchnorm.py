"""Batch normalization, per activation (the seed's form) or per channel.

:func:`resolve_batchnorm` checks the settings once (``per``, ``eps``, ``gamma``,
``beta``) into a :class:`BNParams`, which :func:`batch_norm`,
:class:`BatchNormalizer`, ``normcli explain`` and the commands all take.  The
statistics themselves are :mod:`normcli.ops.moments`'s.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numpy as np

from normcli.checks import check_flag, is_bool
from normcli.errors import ParameterError
from normcli.ops._blocks import Scratch, run_blocks, serial_scratch
from normcli.ops.arrays import check_array, check_out, check_threads, compute_dtype
from normcli.ops.moments import (
    _DOT_ROW,
    _ONE_PASS_LIMIT,
    _ROWS,
    Moments,
    _subtract,
    batch_layout,
    check_overflow,
    check_per,
    stats_shape,
)

__all__ = [
    "BNParams",
    "BatchNormalizer",
    "batch_norm",
    "resolve_batchnorm",
    "bn_params",
]


#: batch_norm's defaults, which ``params=`` requires to be left as they are.
_DEFAULTS = {"per": "activation", "eps": 1e-5, "gamma": 1.0, "beta": 0.0}


@dataclass(frozen=True, eq=False)
class BNParams:
    """Checked batch-norm settings, from :func:`resolve_batchnorm`.

    ``gamma`` and ``beta`` are float64: a number, or an array that
    :meth:`broadcast` fits to the statistics' shape once the data's shape is
    known.
    """

    per: str
    eps: float
    gamma: float | np.ndarray
    beta: float | np.ndarray

    def broadcast(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``(gamma, beta)`` as read-only views of the statistics' ``shape``.

        Raises
        ------
        ParameterError
            ``.param`` ``"gamma"`` or ``"beta"``: an array that does not
            broadcast to ``shape``, or has more dimensions than it.
        """
        return _broadcast(self.gamma, "gamma", shape), _broadcast(self.beta, "beta", shape)

    def describe(self) -> str:
        """``eps=1e-05, gamma=1, beta=0`` (an array as its shape)."""
        return f"eps={self.eps:g}, gamma={_text(self.gamma)}, beta={_text(self.beta)}"


def _text(value: float | np.ndarray) -> str:
    if np.ndim(value) == 0:
        return f"{float(value):g}"
    return "array " + "×".join(map(str, np.shape(value)))


def resolve_batchnorm(
    *,
    per: str = "activation",
    eps: float = 1e-5,
    gamma: float | np.ndarray = 1.0,
    beta: float | np.ndarray = 0.0,
) -> BNParams:
    """Validate batch-norm settings once: the ``_iv`` step of every BN entry point.

    Raises :class:`~normcli.errors.ParameterError` (a ``ValueError``) whose
    ``.param`` names the setting: ``per`` not ``"activation"`` or
    ``"channel"``, ``eps`` not finite and > 0, ``gamma`` or ``beta`` not
    numbers or holding NaN/Inf.  Their shapes are checked against the
    statistics by :meth:`BNParams.broadcast`.

    >>> resolve_batchnorm(per="channel", gamma=2).describe()
    'eps=1e-05, gamma=2, beta=0'
    >>> resolve_batchnorm(eps=0)
    Traceback (most recent call last):
    ...
    normcli.errors.ParameterError: eps=0.0 must be finite and > 0
    """
    return BNParams(check_per(per), _eps(eps), _parameter(gamma, "gamma"),
                    _parameter(beta, "beta"))


def _eps(eps: object) -> float:
    try:
        if isinstance(eps, (str, bytes)) or is_bool(eps):  # ("1e-3" and True are no numbers)
            raise TypeError
        value = float(eps)
    except (TypeError, ValueError):
        raise ParameterError(f"eps={eps!r} must be a number > 0", param="eps", value=eps,
                             problem=f"{eps!r} must be a number > 0") from None
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"eps={value} must be finite and > 0", param="eps", value=eps,
                             problem=f"{value} must be finite and > 0")
    return value


def _parameter(value: object, name: str, *, finite: bool = True) -> float | np.ndarray:
    """A number as a float, an array as float64; refused if not numeric (or finite)."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype.kind not in "biuf":
        problem = f"has dtype {arr.dtype}; give a number or a numeric array"
        raise ParameterError(f"{name} {problem}", param=name, value=value, problem=problem)
    arr = arr.astype(np.float64, copy=False)
    if finite and not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} holds non-finite values", param=name, value=value,
                             problem="holds non-finite values")
    return float(arr) if arr.ndim == 0 else arr


def _broadcast(value: float | np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    if arr.ndim > len(shape):
        problem = f"has shape {arr.shape}; the statistics' shape is {shape}"
        raise ParameterError(f"{name} {problem}", param=name, value=value, problem=problem)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        problem = (f"has shape {arr.shape}, which does not broadcast to the statistics' "
                   f"shape {shape}")
        raise ParameterError(f"{name} {problem}", param=name, value=value,
                             problem=problem) from None


def bn_params(params: BNParams | None, **given: object) -> BNParams:
    """``params`` if given (the other settings left at their defaults), else
    :func:`resolve_batchnorm` of the settings."""
    if params is None:
        per, eps = given.get("per", "activation"), given.get("eps", 1e-5)
        gamma, beta = given.get("gamma", 1.0), given.get("beta", 0.0)
        if (type(per) is str and type(eps) in _CACHEABLE and type(gamma) in _CACHEABLE
                and type(beta) in _CACHEABLE):
            return _resolve_cached(per, eps, gamma, beta)
        return resolve_batchnorm(**given)
    if not isinstance(params, BNParams):
        raise ParameterError(f"params must be a BNParams from resolve_batchnorm, not "
                             f"{type(params).__name__}", param="params", value=params)
    also = [name for name, default in _DEFAULTS.items()
            if not (_same(given[name], default) or _same(given[name], getattr(params, name)))]
    if also:
        raise ParameterError(f"give params or {', '.join(also)}, not both", param="params",
                             value=params)
    return params


#: Settings of these types are resolved once per value (as numbers, 1 and 1.0
#: and True resolve alike, so the cache keeps them apart by type).
_CACHEABLE = frozenset((int, float, bool, np.float64, np.float32))


@functools.lru_cache(maxsize=128, typed=True)
def _resolve_cached(per, eps, gamma, beta) -> BNParams:
    return resolve_batchnorm(per=per, eps=eps, gamma=gamma, beta=beta)


def _same(a: object, b: object) -> bool:
    return a is b or (np.ndim(a) == 0 and np.ndim(b) == 0 and a == b)


class BatchNormalizer:
    """Stored statistics, gamma and beta, ready to normalize many batches.

    ``BatchNormalizer(mean, var, ...)(x)`` equals ``batch_norm(x, mean=mean,
    var=var, ...)``; the scale ``gamma / sqrt(var + eps)`` and the shift are
    computed once, so each call costs three passes over its data.  This is
    how the command line applies one batch's statistics to file after file.

    >>> from normcli.ops.moments import batch_stats
    >>> s = batch_stats(np.arange(12.0).reshape(4, 3), per="channel")
    >>> norm = BatchNormalizer(s.mean, s.var, per="channel")
    >>> norm(np.array([[4.5, 5.5, 6.5]])).round(6).tolist()
    [[0.0, 0.0, 0.0]]
    """

    def __init__(self, mean: object, var: object, *, per: str = "activation",
                 eps: float = 1e-5, gamma: float | np.ndarray = 1.0,
                 beta: float | np.ndarray = 0.0, channels_last: bool = False,
                 shape: tuple[int, ...] | None = None, finite_stats: bool = True,
                 params: BNParams | None = None) -> None:
        """``params``: settings from :func:`resolve_batchnorm` instead of ``per``,
        ``eps``, ``gamma`` and ``beta``.  ``finite_stats=False`` accepts NaN and
        Inf in ``mean`` and ``var``: the statistics of data that hold them
        (``--allow-nonfinite``), which then propagate to the outputs as in
        :func:`batch_norm`."""
        p = bn_params(params, per=per, eps=eps, gamma=gamma, beta=beta)
        self.params, self.per = p, p.per
        self.channels_last = check_flag(channels_last, "channels_last")
        self.shape = tuple(np.shape(mean)) if shape is None else tuple(shape)
        # broadcast views: a scalar gamma or beta is never copied to the full shape
        mean_b = _broadcast(_parameter(mean, "mean", finite=finite_stats), "mean", self.shape)
        var_b = _broadcast(_parameter(var, "var", finite=finite_stats), "var", self.shape)
        if np.any(var_b < 0):
            raise ParameterError("var holds negative values", param="var", value=var,
                                 problem="holds negative values")
        gamma_b, beta_b = p.broadcast(self.shape)
        self._beta = beta_b.reshape(-1) if np.ndim(p.beta) else np.float64(p.beta)
        scale = np.sqrt(var_b + p.eps)
        with np.errstate(over="ignore"):  # (a gamma that overflows is refused at the call)
            np.divide(gamma_b, scale, out=scale)
        self._scale = scale.reshape(-1)
        self._mean = np.ascontiguousarray(mean_b).reshape(-1)
        # the size of the outputs, to judge which roundings are negligible
        self._size = (np.abs(gamma_b) + np.abs(beta_b)).reshape(-1)
        # y = x * scale + (beta - mean * scale) rounds x * scale and the shift, each
        # as large as |mean| * scale: no worse than (x - mean) * scale + beta while
        # |mean| * scale <= |gamma|, i.e. |mean| <= sqrt(var + eps).  Beyond, the
        # mean is subtracted first (exactly, for values near it).
        with np.errstate(all="ignore"):
            self._fused = bool(np.all(np.abs(self._mean * self._scale) <= np.abs(gamma_b)
                                      .reshape(-1)))
        self._cache: dict[np.dtype, tuple[np.ndarray | None, np.ndarray,
                                          np.ndarray | None]] = {}

    def _coefficients(self, ct: np.dtype):
        """``(first, scale, shift)`` as ct column vectors: ``y = (x - first) * scale
        + shift``, where ``first`` is ``None`` (the fused form, ``y = x * scale +
        shift``) or the mean rounded to ct, and ``shift`` is ``None`` where it is 0
        or below an eighth of an ulp of the outputs' size."""
        if ct not in self._cache:
            # (statistics beyond float32's range, from float64 data, round to Inf as
            # IEEE says; NaN statistics, with --allow-nonfinite, stay NaN)
            with np.errstate(over="ignore", invalid="ignore"):
                if self._fused:
                    first = None
                    shift = np.multiply(self._mean, self._scale)
                    np.subtract(self._beta, shift, out=shift)
                else:
                    first = self._mean.astype(ct)
                    # A finite mean beyond ct's range (1e39 for float32 data) would
                    # subtract Inf: there the form is the fused one, x * scale + shift,
                    # whose shift (about -mean * scale) holds all that ct can of y.
                    first[np.isinf(first) & np.isfinite(self._mean)] = 0
                    # x - first is exact where it matters; one temporary, in place
                    shift = np.subtract(self._mean, first)
                    shift *= self._scale
                    np.subtract(self._beta, shift, out=shift)
                    first = first[None, :, None]
                check_range(self.params, ct)
                check_scale(self._scale, ct)
                self._check_mean_range(ct)
                self._cache[ct] = (
                    first,
                    self._scale.astype(ct)[None, :, None],
                    _shift(shift, self._size, ct),
                )
        return self._cache[ct]

    def _check_mean_range(self, ct: np.dtype) -> None:
        """Refuse stored means so far beyond the range of ``ct`` that every output of
        their statistic would be infinite, whatever its input: ``(|mean| - max) *
        |scale| > max + |beta|`` (a float64 mean of 1e300 on float32 data; a mean
        of 1e39 with a variance to match gives finite outputs, and is kept)."""
        big = float(np.finfo(ct).max)
        if big >= float(np.finfo(np.float64).max):
            return  # (a finite float64 mean is within float64's range)
        beta = np.abs(self._beta)
        with np.errstate(over="ignore", invalid="ignore"):
            for i in range(0, self._mean.size, _JUDGED):  # (in pieces: see _shift)
                part = slice(i, i + _JUDGED)
                far = (np.abs(self._mean[part]) - big) * np.abs(self._scale[part])
                if np.any(far > big + (beta[part] if beta.ndim else beta)):
                    largest = float(np.max(np.abs(self._mean)))
                    problem = (f"holding {largest:.3g} is beyond {ct}'s range ({big:.3g}), the "
                               "type the outputs are computed in: every output of its "
                               "statistic would be infinite")
                    raise ParameterError(f"mean {problem}", param="mean", value=self._mean,
                                         problem=problem)

    def __call__(self, x: object, *, threads: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """Normalize ``x``; into ``out`` (of x's shape and compute dtype) if given,
        which may be ``x`` itself."""
        arr = check_array(x)
        threads = check_threads(threads)
        shape = stats_shape(arr.shape, self.per, self.channels_last)
        if shape != self.shape:
            _refuse_x(arr, f"has shape {arr.shape}, whose statistics per {self.per} have "
                      f"shape {shape}; these statistics have shape {self.shape}")
        if arr.size == 0:  # as PyTorch and TensorFlow: nothing in, nothing out
            return check_out(out, arr, compute_dtype(arr.dtype))
        return self._apply(arr, threads, out)

    def _apply(self, arr: np.ndarray, threads: int | None, out: object) -> np.ndarray:
        """Normalize a checked, non-empty ``arr`` of the statistics' shape."""
        layout = batch_layout(arr.shape, self.per, self.channels_last)
        ct = compute_dtype(arr.dtype)
        first, scale, shift = self._coefficients(ct)
        if layout[1] * layout[2] <= _ROW_VALUES and layout[2] > 1:
            first, scale, shift = _rows(self, ct, layout, first, scale, shift)
        out = check_out(out, arr, ct)
        v, o = arr.reshape(layout), out.reshape(layout)
        if arr.size < _SMALL:  # one block, in this thread, with the fewest calls
            with np.errstate(all="ignore"):
                _affine(v, o, first, scale, shift, ct)
            return out
        blocks = _stretches(layout, _GIVEN_BLOCK)

        def work(i: int, scratch: Scratch) -> None:
            rows, cols = blocks[i]
            _affine(v[rows, cols], o[rows, cols], None if first is None else first[:, cols],
                    scale[:, cols], None if shift is None else shift[:, cols], ct)

        run_blocks(work, len(blocks), elements=arr.size, threads=threads, blas=False)
        return out


#: Coefficients of samples of up to this many values (C * inner) are spelled out
#: for every value of a sample: numpy's loops over a column of coefficients
#: broadcast along rows ran at half the speed of the same arithmetic on two
#: contiguous arrays ((1, 16, 1600) float32: 17 us against 9; (32, 96, 3025):
#: 13 ms against 9).  The same arithmetic, so the same bits.
_ROW_VALUES = 1 << 19
_rows_kept: dict[tuple, tuple] = {}
_rows_lock = threading.Lock()


def _rows(norm: BatchNormalizer, ct: np.dtype, layout: tuple[int, int, int], *coefs):
    """``coefs`` (column vectors, or None) broadcast to ``(1, C, inner)`` and kept,
    for the last few normalizers and layouts."""
    key = (id(norm), ct, layout[1], layout[2])
    kept = _rows_kept.get(key)
    if kept is not None and kept[0] is norm:
        return kept[1]
    rows = tuple(None if a is None else
                 np.ascontiguousarray(np.broadcast_to(a, (1, layout[1], layout[2])))
                 for a in coefs)
    with _rows_lock:
        while len(_rows_kept) >= _KEPT_ROWS:
            del _rows_kept[next(iter(_rows_kept))]
        _rows_kept[key] = (norm, rows)
    return rows


#: Normalizers (with their layouts) whose spelled-out coefficients are kept.
_KEPT_ROWS = 4

#: Below this many values a normalization runs as one block in the calling thread.
_SMALL = 1 << 18
#: Values per block with stored statistics.  Every value needs only its own
#: statistic's coefficients, so a block can be any stretch of memory: whole
#: samples, or a few statistics of one sample (scattered rows of a few channels
#: of every sample read more slowly).  Half a (96, 55, 55) sample, with its
#: spelled-out coefficients, stays closer to the cache than whole samples
#: (one thread: 17.0 ms for 128 Ki-value blocks, 18.2 for 512 Ki, under load).
_GIVEN_BLOCK = 1 << 18


def _stretches(layout: tuple[int, int, int], size: int) -> list[tuple[slice, slice]]:
    """Blocks ``(rows, cols)`` of a batch viewed as ``(outer, C, inner)``, each one
    contiguous stretch of about ``size`` values (at least one ``inner`` row)."""
    outer, c, inner = layout
    if c * inner <= size:  # several whole samples
        step = -(-outer // -(-outer // max(1, size // (c * inner))))
        return [(slice(i, i + step), slice(None)) for i in range(0, outer, step)]
    step = max(1, size // inner)
    step = -(-c // -(-c // step))
    return [(slice(i, i + 1), slice(j, j + step)) for i in range(outer) for j in range(0, c, step)]


def _affine(xb, ob, first, scale, shift, ct) -> None:
    """``ob = (xb - first) * scale + shift`` (``first``, ``shift``: None to leave out);
    ``ob`` may be ``xb`` itself."""
    if first is None:
        np.multiply(xb, scale, out=ob, dtype=ct)
    else:
        np.subtract(xb, first, out=ob, dtype=ct)
        np.multiply(ob, scale, out=ob)
    if shift is not None:
        np.add(ob, shift, out=ob)


def _shift(shift: np.ndarray, size: np.ndarray, ct: np.dtype) -> np.ndarray | None:
    """``shift`` as a ct column vector, or None when every one of its values is
    below an eighth of an ulp of its statistic's output size (|gamma| + |beta|):
    adding it would move no output by more than that (and mostly not at all)."""
    negligible = np.finfo(ct).eps / 8
    with np.errstate(invalid="ignore"):
        # in pieces: for many statistics, full-size temporaries made the peak of
        # a streamed batch norm (two float64 arrays of the statistics' size)
        for i in range(0, shift.size, _JUDGED):
            part = np.abs(shift[i:i + _JUDGED])
            if not np.all(part <= np.multiply(size[i:i + _JUDGED], negligible)):
                return shift.astype(ct)[None, :, None]
    return None


#: Statistics whose shifts :func:`_shift` judges at a time.
_JUDGED = 1 << 15


def _kept_shift(shift: np.ndarray, ct: np.dtype) -> np.ndarray | None:
    """``shift`` as a ct column vector, or None where it is exactly 0.  For the
    fused form ``x * scale + shift``, whose shift is all of ``beta - mean *
    scale``: it may be far larger than outputs that are small against ``gamma``
    (a variance well below ``eps``), so no size of it is negligible."""
    if not np.any(shift):
        return None
    return shift.astype(ct)[None, :, None]


_normalizers: dict[tuple, BatchNormalizer] = {}
_normalizers_lock = threading.Lock()
_CACHED_STATS = 4096  # statistics up to this size are remembered by value


def _normalizer(mean: object, var: object, p: BNParams, channels_last: bool,
                shape: tuple[int, ...]) -> BatchNormalizer:
    """A BatchNormalizer for these statistics, remembered by their values (small
    statistics, scalar gamma and beta): the same statistics applied to input
    after input are checked and turned into coefficients once."""
    if not (type(mean) is np.ndarray and type(var) is np.ndarray
            and mean.size <= _CACHED_STATS and var.size <= _CACHED_STATS
            and type(p.gamma) is float and type(p.beta) is float):
        return BatchNormalizer(mean, var, params=p, channels_last=channels_last, shape=shape)
    key = (mean.tobytes(), mean.dtype.str, mean.shape, var.tobytes(), var.dtype.str, var.shape,
           p.per, p.eps, p.gamma, p.beta, channels_last, shape)
    norm = _normalizers.get(key)
    if norm is None:
        norm = BatchNormalizer(mean, var, params=p, channels_last=channels_last, shape=shape)
        with _normalizers_lock:
            if len(_normalizers) >= 32:
                del _normalizers[next(iter(_normalizers))]
            _normalizers[key] = norm
    return norm


def batch_norm(
    x: object,
    *,
    per: str = "activation",
    eps: float = 1e-5,
    gamma: float | np.ndarray = 1.0,
    beta: float | np.ndarray = 0.0,
    mean: np.ndarray | None = None,
    var: np.ndarray | None = None,
    params: BNParams | None = None,
    channels_last: bool = False,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Batch normalization of a batch (axis 0; all leading axes beyond 4-D).

    .. math::

        y = \gamma \, \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    with the batch mean :math:`\mu` and biased variance :math:`\sigma^2`
    (Ioffe and Szegedy 2015, Algorithm 1), or the given ``mean`` and ``var``
    (inference with stored statistics).

    Parameters
    ----------
    x : array_like
        ``(N, ...)``, at least 2-D; beyond 4-D, ``(..., C, H, W)`` with every
        leading axis a batch axis (as :func:`normcli.lrn` reads it).
    per : {"activation", "channel"}
        ``"activation"`` (the seed's form): one mean and variance for each of
        the ``x.shape[1:]`` positions, over the batch; equals PyTorch's
        ``BatchNorm1d`` on ``x.reshape(N, -1)``.  ``"channel"``: one per
        channel over the batch and spatial axes; equals ``BatchNorm2d`` in
        training mode.
    eps : float
        Added to the variance; must be > 0.
    gamma, beta : float or array_like
        Scale and shift, broadcastable to the statistics' shape.
    mean, var : array_like, optional
        Stored statistics (give both): normalize with them instead of the
        batch's.  ``var`` is the variance to divide by (biased, for PyTorch's
        running_var it is whatever was stored).
    params : BNParams, optional
        Settings already checked by :func:`resolve_batchnorm`, instead of
        ``per``, ``eps``, ``gamma`` and ``beta`` (which are then left out).
    channels_last : bool
        With ``per="channel"``, the channel axis is the last one.
    threads : int, optional
        Worker threads (default: ``NORMCLI_THREADS`` or the usable cores).
    out : numpy.ndarray, optional
        Where to write the result: C-contiguous, of ``x``'s shape and the
        compute dtype (below).  With stored statistics it may be ``x`` itself;
        with batch statistics it must not share memory with ``x``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``; float32 for float16/float32 input, else float64
        (``out``, if given).

    Examples
    --------
    The seed's example: a batch of three (4, 4, 4) activations; every one of
    the 64 positions ends with mean 0 and variance 1 over the batch.

    >>> x = np.random.default_rng(0).normal(5, 2, size=(3, 4, 4, 4))
    >>> y = batch_norm(x, eps=1e-12)
    >>> bool(np.allclose(y.mean(axis=0), 0) and np.allclose(y.var(axis=0), 1))
    True

    With ``gamma = sqrt(var + eps)`` and ``beta = mean`` training can undo it:

    >>> from normcli.ops.moments import batch_stats
    >>> s = batch_stats(x)
    >>> back = batch_norm(x, gamma=np.sqrt(s.var + 1e-5), beta=s.mean)
    >>> bool(np.allclose(back, x))
    True
    """
    p = bn_params(params, per=per, eps=eps, gamma=gamma, beta=beta)
    per, eps = p.per, p.eps
    arr = check_array(x)
    channels_last, threads = check_flag(channels_last, "channels_last"), check_threads(threads)
    shape = stats_shape(arr.shape, per, channels_last)
    if (mean is None) != (var is None):
        raise ParameterError("give both mean and var (stored statistics), or neither",
                             param="mean" if var is None else "var", value=None)
    if arr.size == 0:  # as PyTorch and TensorFlow: an empty batch gives an empty output
        p.broadcast(shape)  # (the settings must still fit the statistics)
        return check_out(out, arr, compute_dtype(arr.dtype))
    if mean is not None:
        return _normalizer(mean, var, p, channels_last, shape)._apply(arr, threads, out)
    gamma_b, beta_b = (a.reshape(-1) for a in p.broadcast(shape))
    outer, c, inner = batch_layout(arr.shape, per, channels_last)
    if outer * inner < 2:
        what = "batch of one" if per == "activation" else "single value per channel"
        _refuse_x(arr, f"has shape {arr.shape}: a {what} has zero variance everywhere; "
                  "give a larger batch, or stored statistics (mean and var)")
    ct = compute_dtype(arr.dtype)
    check_range(p, ct)
    if out is not None and np.may_share_memory(out, arr):
        # the statistics read x again after the first blocks are written (the
        # overflow check); with stored statistics, out=x is fine
        problem = "shares memory with x; with batch statistics, give separate memory"
        raise ParameterError(f"out {problem}", param="out", value=out, problem=problem)
    out = check_out(out, arr, ct)
    layout = (outer, c, inner)
    moments = Moments(arr.reshape(layout), ct, threads, one_pass=True, pooled=True)
    o = out.reshape(layout)

    negligible = float(np.finfo(ct).eps) / 8  # (see _shift)

    def normalize(i: int, sl: slice, dev: np.ndarray) -> None:
        # y = (x - first) * scale + (beta - (mean - first) * scale), where ``first``
        # is the mean rounded to the compute type: x - first is exact where it matters.
        ob = moments.out_block(o, i)  # (may be dev itself)
        if sl.stop is not None and sl.stop - sl.start == 1:
            # One channel (large channels): the same float64 arithmetic in Python
            # floats, so the same bits, and by scalars, which numpy multiplies by
            # twice as fast as by a broadcast (1, 1, 1) array; some 20 calls on
            # one-element arrays cost more than the block's own passes here.
            c = sl.start
            first, g, b = float(moments.first[c]), float(gamma_b[c]), float(beta_b[c])
            scale = g / math.sqrt(float(moments.m2[c]) / moments.count + eps)
            shift = b - (float(moments.mean[c]) - first) * scale
            np.multiply(dev, ct.type(scale), out=ob)
            # (around 0 the shift is all of -mean * scale: kept unless exactly 0)
            if (not abs(shift) <= negligible * (abs(g) + abs(b)) if first != 0.0
                    else shift != 0.0):
                np.add(ob, ct.type(shift), out=ob)
            return
        mu, variance = moments.mean[sl], moments.m2[sl] / moments.count
        scale = gamma_b[sl] / np.sqrt(variance + eps)
        shift = beta_b[sl] - (mu - moments.first[sl]) * scale
        # (around 0, Moments._around_zero, the shift is all of -mean * scale: kept)
        shift = (_shift(shift, _output_size(gamma_b, beta_b, sl), ct) if moments.first[sl].any()
                 else _kept_shift(shift, ct))
        np.multiply(dev, scale.astype(ct)[None, :, None], out=ob)
        if shift is not None:
            np.add(ob, shift, out=ob)

    first_try = None
    if not moments.by_rows and arr.dtype == ct and inner <= _DOT_ROW:
        if _two_phases(moments, o, gamma_b, beta_b, eps, ct, threads):
            _check_batch_scale(p, gamma_b, moments, ct)
            return out
        if moments.one_pass and inner == 1:
            first_try = _activations(moments, o, gamma_b, beta_b, eps, ct)
        elif moments.one_pass and moments.shifts is not None:
            first_try = _one_channel(moments, o, gamma_b, beta_b, eps, ct)
    moments.compute(normalize, o, first_try)
    check_overflow(arr, moments.m2)
    _check_batch_scale(p, gamma_b, moments, ct)
    return out


def check_scale(scale: np.ndarray, ct: np.dtype) -> None:
    """Refuse scales ``gamma / sqrt(var + eps)`` (float64) beyond the range of the
    compute type ``ct``: the outputs, about ``gamma * z`` for normalized values
    ``z``, may well be finite, but the scale rounds to Inf and the fused form's
    ``x * Inf + shift`` gives NaN (gamma=1e38 over a variance of 1e-4 on float32
    data).  NaN scales (``--allow-nonfinite``) propagate."""
    big = float(np.finfo(ct).max)
    with np.errstate(invalid="ignore"):
        for i in range(0, scale.size, _JUDGED):  # (in pieces: see _shift)
            part = np.abs(scale.reshape(-1)[i:i + _JUDGED])
            if np.any(part > big):
                largest = float(np.max(np.abs(scale)))
                problem = (f"over sqrt(var + eps) reaches {largest:.3g} for some statistic, "
                           f"beyond {ct}'s range ({big:.3g}), the type the outputs are "
                           "computed in: give a smaller gamma or a larger eps")
                raise ParameterError(f"gamma {problem}", param="gamma", value=scale,
                                     problem=problem)


def _check_batch_scale(p: BNParams, gamma_b: np.ndarray, moments: Moments,
                       ct: np.dtype) -> None:
    """:func:`check_scale` of the batch's statistics, once they are known (the outputs
    are written meanwhile: an error leaves them to be thrown away).  Asked only of a
    gamma that could overflow at all: ``|gamma| / sqrt(eps)`` beyond the range."""
    big = float(np.finfo(ct).max)
    with np.errstate(over="ignore"):
        if not float(np.max(np.abs(p.gamma))) / math.sqrt(p.eps) > big:
            return
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scale = np.abs(gamma_b) / np.sqrt(moments.m2 / moments.count + p.eps)
    check_scale(scale, ct)


def _two_phases(moments: Moments, o: np.ndarray, gamma_b: np.ndarray, beta_b: np.ndarray,
                eps: float, ct: np.dtype, threads: int | None) -> bool:
    """Per channel, for data of the compute type whose every channel has its mean
    within one standard deviation of 0: the statistics in one pass over x,
    then ``x * scale + (beta - mean * scale)`` with stored-statistics batch
    norm's blocks and spelled-out coefficients.

    The first pass takes, for every row (one channel of one sample), the
    pairwise sum of its values and the dot product of the row with itself,
    in blocks of a few rows that stay in cache for the second of the two;
    the rows' sums are then added in float64.  These are the sums
    :meth:`Moments._around_zero` takes block by block, and its condition
    (``s2 <= 2 * M2``) holds for every channel but a few, or False is
    returned (:meth:`Moments.compute` then does the work) with each channel's
    mean from these sums as its one pass's shift (``moments.shifts``).  Each pass is
    a few large numpy calls per block instead of about 45 per channel: on
    (32, 96, 55, 55) float32 these two passes took 8 ms where one fused pass
    of one-channel blocks took 10 (one thread, measured while shared).
    """
    v = moments.v
    outer, c, inner = v.shape
    if inner == 1:
        # Per activation the same two phases were no faster (31 ms against 29, one
        # thread, measured while shared): the coefficients' float64 arithmetic on
        # every one of 290400 statistics cost as much as the pass they saved.
        return False
    blocks = _stretches(v.shape, _GIVEN_BLOCK)
    row_s1 = np.empty((outer, c), ct)
    row_s2 = np.empty((outer, c), ct)

    def sums(i: int, scratch: Scratch) -> None:
        rows, cols = blocks[i]
        xb = v[rows, cols]
        np.add.reduce(xb, axis=2, dtype=ct, out=row_s1[rows, cols])
        np.einsum("ijk,ijk->ij", xb, xb, out=row_s2[rows, cols])

    run_blocks(sums, len(blocks), elements=v.size, threads=threads, blas=False)
    with np.errstate(all="ignore"):  # (squares that overflow: see `far` below)
        s1 = row_s1.sum(axis=0, dtype=np.float64)
        s2 = row_s2.sum(axis=0, dtype=np.float64)
    count = moments.count
    with np.errstate(all="ignore"):
        m2 = s2 - s1 * s1 / count
        far = np.flatnonzero(~((s2 <= 2.0 * m2) & np.isfinite(s2)))
    if far.size * outer * inner > v.size // 8:
        # Data far from 0 (images, or a few channels far off): these sums still
        # give every channel's mean to float32's precision, the one pass's shift
        # (its s2 is then about M2 itself, always within the limit), so that the
        # blocks neither sample a shift nor try their sums around 0 again: on
        # (32, 96, 55, 55) + 5, one thread, 57 ms took three sums around 0 per
        # channel before the one that held.
        with np.errstate(all="ignore"):  # (NaN and Inf: the two-pass form takes them)
            moments.shifts = s1 / count
        return False
    np.maximum(m2, 0.0, out=m2)
    mean = s1 / count
    first, offset = np.zeros(c), mean.copy()
    if far.size:
        # the few statistics beyond a standard deviation from 0 (or not finite):
        # Moments' exact two passes on a copy of their values
        sub = np.ascontiguousarray(v[:, far, :])
        exact = Moments(sub, ct, 1)
        exact.compute()
        first[far], offset[far], mean[far], m2[far] = (exact.first, exact.offset, exact.mean,
                                                      exact.m2)
    moments.first, moments.offset, moments.mean, moments.m2 = first, offset, mean, m2
    with np.errstate(all="ignore"):  # (as in the blocks: NaN and Inf propagate)
        scale = gamma_b / np.sqrt(m2 / count + eps)
        shifts = beta_b - (mean - first) * scale
        fused, fused_shift = scale.copy(), shifts.copy()
        fused[far] = fused_shift[far] = 0.0  # (their outputs are written below)
        factor, shift = fused.astype(ct)[None, :, None], _kept_shift(fused_shift, ct)
    _fused_outputs(v, o, blocks, factor, shift, ct, threads)
    if far.size:
        with np.errstate(all="ignore"):
            o[:, far, :] = _two_pass_outputs(sub, first[far], scale[far], shifts[far],
                                             _output_size(gamma_b, beta_b, far),
                                             ct)
    return True


def _output_size(gamma_b: np.ndarray, beta_b: np.ndarray, index) -> np.ndarray:
    """``|gamma| + |beta|`` of the statistics at ``index``: the size of their
    outputs, by which :func:`_shift` judges a shift's rounding negligible.
    Asked for where it is needed only: for every statistic at once it would be
    two full-size arrays per call (3.8 ms per activation on (32, 96, 55, 55),
    new memory's page faults included, against 11 for the whole batch norm)."""
    return np.abs(gamma_b[index]) + np.abs(beta_b[index])


def _two_pass_outputs(sub: np.ndarray, first: np.ndarray, scale: np.ndarray,
                      shift: np.ndarray, size: np.ndarray, ct: np.dtype) -> np.ndarray:
    """``(sub - first) * scale + shift`` in ``ct``, as Moments' two-pass form, for
    a copy ``sub`` (outer, k, inner) of the statistics that :func:`_two_phases`
    and :func:`_activations` leave to Moments' exact two passes (``first``,
    ``scale``, ``shift`` and ``size``: those k statistics' own, float64)."""
    dev = np.empty_like(sub, dtype=ct)
    _subtract(sub, first.astype(ct)[None, :, None], dev)
    np.multiply(dev, scale.astype(ct)[None, :, None], out=dev)
    kept = _shift(shift, size, ct)
    if kept is not None:
        np.add(dev, kept, out=dev)
    return dev


def _fused_outputs(v: np.ndarray, o: np.ndarray, blocks: list, factor: np.ndarray,
                   shift: np.ndarray | None, ct: np.dtype, threads: int | None) -> None:
    """``o = v * factor + shift`` (column vectors ``(1, C, 1)``; ``shift`` None
    for none), for a batch viewed as ``(outer, C, inner)``."""
    outer, c, inner = v.shape
    if inner >= _SCALAR_ROWS:
        # a block per channel, by scalars: numpy's loops multiply by a scalar
        # faster than by a contiguous row of coefficients (a third stream)
        factors = factor.reshape(-1).tolist()
        shifts = None if shift is None else shift.reshape(-1).tolist()

        def affine(i: int, scratch: Scratch) -> None:
            ob = o[:, i:i + 1, :]
            np.multiply(v[:, i:i + 1, :], ct.type(factors[i]), out=ob)
            if shifts is not None:
                np.add(ob, ct.type(shifts[i]), out=ob)

        run_blocks(affine, c, elements=v.size, threads=threads, blas=False)
        return
    if c * inner <= _ROW_VALUES and inner > 1:  # contiguous coefficients: see _ROW_VALUES
        factor = _spelled_out(factor, inner, "bn scale rows")
        shift = None if shift is None else _spelled_out(shift, inner, "bn shift rows")

    def affine_stretch(i: int, scratch: Scratch) -> None:
        rows, cols = blocks[i]
        _affine(v[rows, cols], o[rows, cols], None, factor[:, cols],
                None if shift is None else shift[:, cols], ct)

    run_blocks(affine_stretch, len(blocks), elements=v.size, threads=threads, blas=False)


#: Rows (one channel of one sample) at least this long are normalized a channel
#: at a time, by scalars; shorter ones in stretches with spelled-out coefficients.
_SCALAR_ROWS = 1024


def _spelled_out(column: np.ndarray, inner: int, key: str) -> np.ndarray:
    """``(1, C, 1)`` coefficients as a C-contiguous ``(1, C, inner)`` array, in this
    thread's scratch memory (a fresh megabyte would be page faults every call)."""
    rows = serial_scratch().get(key, (1, column.shape[1], inner), column.dtype)
    np.copyto(rows, column)
    return rows


def _one_channel(moments: Moments, o: np.ndarray, gamma_b: np.ndarray, beta_b: np.ndarray,
                 eps: float, ct: np.dtype):
    """A block of one channel (large channels) around its shift in
    ``moments.shifts`` (the mean :func:`_two_phases` found) in a few numpy
    calls: ``d = x - shift`` straight into the output, the sums of d and d**2,
    the coefficients in Python floats, and ``d * scale + (beta - (mean -
    shift) * scale)`` in place.  These are the operations of
    :meth:`Moments._one_pass` and batch norm's ``normalize`` (Python floats
    are the same float64 arithmetic, so the same bits), whose checks it keeps.
    Per-block numpy calls on one-element arrays cost more than the arithmetic
    here (about 40 of them, 1-3 us each, against ~70 us of work), and they hold
    the GIL.  False for several channels or a block beyond the one pass's
    limit (or not finite): :meth:`Moments.compute` takes it, and overwrites
    the output it wrote."""
    count = moments.count
    kind = ct.type
    shifts = moments.shifts
    negligible = float(np.finfo(ct).eps) / 8  # (see _shift)

    def block(i: int, xb: np.ndarray, sl: slice, scratch: Scratch) -> bool:
        if xb.shape[1] != 1:
            return False
        c = sl.start
        first = kind(shifts[c])
        ob = o[:, sl, :]
        np.subtract(xb, first, out=ob)
        t1 = float(moments._reduce(ob, ct)[0])
        t2 = float(np.einsum("ijk,ijk->ij", ob, ob).sum(axis=0, dtype=np.float64)[0])
        m2 = t2 - t1 * t1 / count
        if not (math.isfinite(t2) and t2 <= _ONE_PASS_LIMIT * m2):
            return False
        first = float(first)
        offset = t1 / count
        mean = first + offset
        m2 = max(m2, 0.0)
        moments.first[c], moments.offset[c], moments.mean[c], moments.m2[c] = (
            first, offset, mean, m2)
        g, b = float(gamma_b[c]), float(beta_b[c])
        scale = g / math.sqrt(m2 / count + eps)
        shift = b - (mean - first) * scale
        np.multiply(ob, kind(scale), out=ob)
        # (a shift of 0: all of -mean * scale, never negligible, see _kept_shift)
        if (not abs(shift) <= negligible * (abs(g) + abs(b)) if first != 0.0
                else shift != 0.0):
            np.add(ob, kind(shift), out=ob)
        return True

    return block


def _activations(moments: Moments, o: np.ndarray, gamma_b: np.ndarray, beta_b: np.ndarray,
                 eps: float, ct: np.dtype):
    """Per activation (rows of one value), a column block in the fewest numpy
    calls, on 2-D views: the sums of x and x**2 over the batch (the conditions
    of :meth:`Moments._around_zero`), then ``x * scale + (beta - mean * scale)``
    straight into the output, every call into this thread's scratch or the
    statistics' own arrays.

    Where some statistics have their mean beyond a standard deviation from 0
    (a small batch has a few in every block: with 16 samples 198 of 131,072 in
    the tests) or are not finite, those few are redone by Moments' exact two
    passes on a copy of their values, as :func:`_two_phases` redoes its far
    channels.  Where more are (data far from 0, or ReLU outputs of a batch of
    32), the whole block is taken again around the means just found, rounded
    to the compute type: the deviations ``d = x - first``, their sums, and
    ``d * scale + (beta - (mean - first) * scale)``, as Moments' one pass.

    A block of 16384 statistics around 0 takes two reading passes (the sums of
    squares by one dot product per column, the squares never stored), one
    multiply and one add over its values, and some 15 float64 calls on 16384
    statistics: on (32, 96, 55, 55) float32, two threads, 11-12 ms against
    16-20 for the same work in twice the calls with fresh temporaries; around
    the means, 3 passes more (measured while shared).  False for a block with
    more than an eighth of its statistics not finite, or beyond the one pass's
    limit: :meth:`Moments.compute` takes it, and overwrites what this wrote of
    the block's statistics."""
    count = moments.count
    f64 = np.dtype(np.float64)

    def sums(a: np.ndarray, s1: np.ndarray, s2: np.ndarray, scratch: Scratch) -> None:
        """s1, s2 = the float64 sums over the batch of ``a`` and ``a**2``."""
        if ct == f64:
            np.add.reduce(a, axis=0, out=s1)
            np.einsum("ij,ij->j", a, a, out=s2)
        elif a.shape[0] > _ROWS:  # many rows: float64 accumulation, as Moments._reduce
            np.add.reduce(a, axis=0, dtype=f64, out=s1)
            sq = scratch.get("act squares", a.shape, ct)
            np.multiply(a, a, out=sq)
            np.add.reduce(sq, axis=0, dtype=f64, out=s2)
        else:  # float32 sums of at most 32 rows, then float64
            part = scratch.get("act part", s1.shape, ct)
            np.add.reduce(a, axis=0, out=part)
            np.copyto(s1, part)
            np.einsum("ij,ij->j", a, a, out=part)
            np.copyto(s2, part)

    def beyond(s2: np.ndarray, m2: np.ndarray, limit: float, scratch: Scratch):
        """The statistics whose ``s2`` exceeds ``limit * m2`` or is not finite:
        None for none, else their indices."""
        ok = scratch.get("act ok", s2.shape, np.dtype(np.bool_))
        bound = scratch.get("act bound", s2.shape, f64)
        np.multiply(m2, limit, out=bound)
        np.less_equal(s2, bound, out=ok)
        # (a sum of finite float32 squares' sums is finite in float64: one
        # reduction asks whether every s2 is)
        if ok.all() and math.isfinite(float(s2.sum())):
            return None
        return np.flatnonzero(~(ok & np.isfinite(s2)))

    def block(i: int, xb: np.ndarray, sl: slice, scratch: Scratch) -> bool:
        k = xb.shape[1]
        x2 = xb[:, :, 0]
        s1, s2, scale, shift = (scratch.get(key, (k,), f64)
                                for key in ("act s1", "act s2", "act scale", "act shift"))
        sums(x2, s1, s2, scratch)
        mean, m2, first = moments.mean[sl], moments.m2[sl], moments.first[sl]
        with np.errstate(all="ignore"):  # (NaN and Inf propagate, as in the blocks)
            np.divide(s1, count, out=mean)
            np.multiply(s1, mean, out=scale)
            np.subtract(s2, scale, out=m2)  # M2 = s2 - s1**2 / count
            far = beyond(s2, m2, 2.0, scratch)  # s2 <= 2 * M2: within a standard deviation
            src = x2  # what the outputs are computed from: x, or x - first
            if far is not None and far.size > k // 32:
                # around the means: d = x - first, whose sums give M2 with s2 near M2
                factor = scratch.get("act factor", (k,), ct)
                np.copyto(factor, mean, casting="same_kind")
                np.copyto(first, factor)
                src = scratch.get("act deviations", x2.shape, ct)
                np.subtract(x2, factor, out=src)
                sums(src, s1, s2, scratch)
                np.divide(s1, count, out=scale)  # mean - first
                np.add(first, scale, out=mean)
                np.multiply(s1, scale, out=scale)
                np.subtract(s2, scale, out=m2)
                far = beyond(s2, m2, _ONE_PASS_LIMIT, scratch)
            else:
                first[:] = 0.0
            if far is not None and far.size > k // 8:
                return False
            np.maximum(m2, 0.0, out=m2)
            if far is not None:
                sub = np.ascontiguousarray(xb[:, far, :])
                exact = Moments(sub, ct, 1)
                exact.compute()
                first[far], mean[far], m2[far] = exact.first, exact.mean, exact.m2
            np.divide(m2, count, out=scale)
            scale += eps
            np.sqrt(scale, out=scale)
            np.divide(gamma_b[sl], scale, out=scale)
            np.subtract(mean, first, out=moments.offset[sl])
            np.multiply(moments.offset[sl], scale, out=shift)
            np.subtract(beta_b[sl], shift, out=shift)
            factor = scratch.get("act factor", (k,), ct)
            addend = scratch.get("act addend", (k,), ct)
            np.copyto(factor, scale, casting="same_kind")
            np.copyto(addend, shift, casting="same_kind")
            ob = o[:, sl, 0]
            # (around 0 the shift is all of -mean * scale: never negligible, see
            # _kept_shift; around the means, adding it is as the one pass does)
            np.multiply(src, factor, out=ob)
            np.add(ob, addend, out=ob)
            if far is not None:  # (from x, with the exact two passes' own first)
                ob[:, far] = _two_pass_outputs(sub, first[far], scale[far], shift[far],
                                               _output_size(gamma_b[sl], beta_b[sl], far),
                                               ct)[:, :, 0]
        return True

    return block


def check_range(p: BNParams, ct: np.dtype) -> None:
    """Refuse a ``gamma`` or ``beta`` beyond the range of the compute type ``ct``:
    the outputs are about ``gamma * z + beta`` for normalized values ``z`` of a
    few units, so every one of them would be infinite (``gamma=1e308`` on
    float32 data).  (Outputs that overflow for an extreme ``z`` are IEEE's
    business, as in every framework.)  And an ``eps`` so small that ``1 /
    sqrt(eps)`` is beyond that range (below 8.6e-78 for float32): a statistic
    without variance (a constant channel, a position that a ReLU zeroes in
    every sample) would have an infinite scale, and its outputs, 0 * inf, NaN."""
    big = float(np.finfo(ct).max)
    tiny = 1.0 / big / big
    if p.eps < tiny:
        problem = (f"{p.eps:g} is below {tiny:.3g}: 1/sqrt(eps) is beyond {ct}'s range, the "
                   "type the outputs are computed in, and a statistic without variance "
                   "would give NaN")
        raise ParameterError(f"eps={problem}", param="eps", value=p.eps, problem=problem)
    for name in ("gamma", "beta"):
        value = getattr(p, name)
        largest = float(np.max(np.abs(value)))
        if largest > big:
            shown = f"{value:g}" if np.ndim(value) == 0 else f"holding {largest:.3g}"
            problem = (f"{shown} is beyond {ct}'s range ({big:.3g}), the type the outputs are "
                       "computed in: every output would be infinite")
            raise ParameterError(f"{name}={problem}" if np.ndim(value) == 0 else
                                 f"{name} {problem}", param=name, value=value, problem=problem)


def _refuse_x(arr: np.ndarray, problem: str) -> None:
    raise ParameterError(f"x {problem}", param="x", value=arr, problem=problem)
