"""Batch normalization, per activation (the seed's form) or per channel.

:func:`resolve_batchnorm` checks the settings once (``per``, ``eps``, ``gamma``,
``beta``) into a :class:`BNParams`, which :func:`batch_norm`,
:class:`BatchNormalizer`, ``normcli explain`` and the commands all take.  The
statistics themselves are :mod:`normcli.ops.moments`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from normcli.errors import ParameterError
from normcli.ops._blocks import Scratch, run_blocks
from normcli.ops.arrays import check_array, compute_dtype
from normcli.ops.moments import (
    Moments,
    batch_layout,
    block_plan,
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
        self.params, self.per, self.channels_last = p, p.per, channels_last
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
        np.divide(gamma_b, scale, out=scale)
        self._scale = scale.reshape(-1)
        self._mean = np.ascontiguousarray(mean_b).reshape(-1)
        self._cache: dict[np.dtype, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def _coefficients(self, ct: np.dtype):
        """(mean rounded to ct, scale, shift or None) as ct column vectors."""
        if ct not in self._cache:
            # (statistics beyond float32's range, from float64 data, round to Inf as
            # IEEE says; NaN statistics, with --allow-nonfinite, stay NaN)
            with np.errstate(over="ignore", invalid="ignore"):
                first = self._mean.astype(ct)
                # y = (x - first) * scale + shift, with x - first exact where it matters
                shift = self._beta - (self._mean - first) * self._scale
                self._cache[ct] = (
                    first[None, :, None],
                    self._scale.astype(ct)[None, :, None],
                    shift.astype(ct)[None, :, None] if np.any(shift != 0) else None,
                )
        return self._cache[ct]

    def __call__(self, x: object, *, threads: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """Normalize ``x``; into ``out`` (of x's shape and compute dtype) if given,
        which may be ``x`` itself."""
        arr = check_array(x)
        if arr.size == 0:
            _refuse_x(arr, f"has shape {arr.shape}: an empty batch cannot be normalized")
        shape = stats_shape(arr.shape, self.per, self.channels_last)
        if shape != self.shape:
            _refuse_x(arr, f"has shape {arr.shape}, whose statistics per {self.per} have "
                      f"shape {shape}; these statistics have shape {self.shape}")
        ct = compute_dtype(arr.dtype)
        first, scale, shift = self._coefficients(ct)
        if out is None:
            out = np.empty(arr.shape, ct)
        elif out.shape != arr.shape or out.dtype != ct or not out.flags.c_contiguous:
            raise ParameterError(f"out must be a C-contiguous {ct} array of shape {arr.shape}",
                                 param="out", value=out)
        layout = batch_layout(arr.shape, self.per, self.channels_last)
        v, o = arr.reshape(layout), out.reshape(layout)
        by_rows, blocks = block_plan(layout)

        def work(i: int, scratch: Scratch) -> None:
            sl = blocks[i]
            xb, ob, cols = (v[sl], o[sl], slice(None)) if by_rows else (
                v[:, sl, :], o[:, sl, :], sl)
            np.subtract(xb, first[:, cols], out=ob, dtype=ct)  # (out may be x itself)
            np.multiply(ob, scale[:, cols], out=ob)
            if shift is not None:
                np.add(ob, shift[:, cols], out=ob)

        run_blocks(work, len(blocks), elements=arr.size, threads=threads)
        return out


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

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``; float32 for float16/float32 input, else float64.

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
    if arr.size == 0:
        _refuse_x(arr, f"has shape {arr.shape}: an empty batch cannot be normalized")
    shape = stats_shape(arr.shape, per, channels_last)
    if (mean is None) != (var is None):
        raise ParameterError("give both mean and var (stored statistics), or neither",
                             param="mean" if var is None else "var", value=None)
    if mean is not None:
        return BatchNormalizer(mean, var, params=p, channels_last=channels_last,
                               shape=shape)(arr, threads=threads)
    gamma_b, beta_b = (a.reshape(-1) for a in p.broadcast(shape))
    outer, c, inner = batch_layout(arr.shape, per, channels_last)
    if outer * inner < 2:
        what = "batch of one" if per == "activation" else "single value per channel"
        _refuse_x(arr, f"has shape {arr.shape}: a {what} has zero variance everywhere; "
                  "give a larger batch, or stored statistics (mean and var)")
    ct = compute_dtype(arr.dtype)
    out = np.empty(arr.shape, ct)
    layout = batch_layout(arr.shape, per, channels_last)
    moments = Moments(arr.reshape(layout), ct, threads)
    o = out.reshape(layout)

    def normalize(i: int, sl: slice, dev: np.ndarray) -> None:
        # y = (x - first) * scale + (beta - (mean - first) * scale), where ``first``
        # is the mean rounded to the compute type: x - first is exact where it matters.
        mu, variance = moments.mean[sl], moments.m2[sl] / moments.count
        scale = gamma_b[sl] / np.sqrt(variance + eps)
        shift = beta_b[sl] - (mu - moments.first[sl]) * scale
        ob = moments.out_block(o, i)
        np.multiply(dev, scale.astype(ct)[None, :, None], out=ob)
        if np.any(shift != 0):
            np.add(ob, shift.astype(ct)[None, :, None], out=ob)

    moments.compute(normalize)
    check_overflow(arr, moments.m2)
    return out


def _refuse_x(arr: np.ndarray, problem: str) -> None:
    raise ParameterError(f"x {problem}", param="x", value=arr, problem=problem)
