"""How each framework keeps batch-norm running statistics, as one table of data.

Frameworks agree on batch normalization itself (``y = gamma (x - mean) /
sqrt(var + eps) + beta``) and disagree on everything around it: the default
``eps``, which variance the running statistics track (biased, or Bessel's
unbiased ``m/(m-1)`` form), what ``momentum`` weights (the new batch or the
old value), and what is stored (Caffe keeps running *sums* and a third
``scale_factor`` blob).  Porting a BN network between them is where
"eps 1e-5 against 1e-3" and "Caffe's separate BatchNorm + Scale layers" bugs
come from.  Each :class:`BNConvention` records those facts, checked against
each framework's source (see ``docs/normalization.md``):

===========  =======  ==========  =======================================================
convention   eps      stored var  running update with the batch's statistics ``b``
===========  =======  ==========  =======================================================
pytorch      1e-5     unbiased    ``r = (1 - p) r + p b``, p = momentum (0.1); None: 1/t
tensorflow   1e-3     unbiased    ``r = (1 - f) r + f b``, f = exponential_avg_factor (1)
keras        1e-3     biased      ``r = m r + (1 - m) b``, m = momentum (0.99)
onnx         1e-5     biased      ``r = m r + (1 - m) b``, m = momentum (0.9)
caffe        1e-5     unbiased    ``s = l s + b``, ``f = l f + 1``, statistics ``s / f``
mxnet        1e-3     biased      ``r = m r + (1 - m) b``, m = momentum (0.9)
===========  =======  ==========  =======================================================

:func:`update_running` applies one batch's :class:`~normcli.ops.moments.BatchStats`
to a :class:`RunningState` the framework's way; :meth:`RunningState.to_mapping`
and :meth:`RunningState.from_mapping` are each framework's stored form, by
its own names (``running_mean``, ``moving_variance``, ``scale_factor``...);
:mod:`normcli.files.running_stats` reads and writes them as ``.npz``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from normcli.errors import ParameterError
from normcli.ops.moments import PER, BatchStats, check_per

__all__ = [
    "BNConvention",
    "BN_CONVENTIONS",
    "DEFAULT_MOMENTUM",
    "RunningState",
    "get_bn_convention",
    "initial_state",
    "update_running",
    "check_momentum",
]

#: ``momentum=DEFAULT_MOMENTUM`` takes the convention's default momentum.
DEFAULT_MOMENTUM = "default"


@dataclass(frozen=True)
class BNConvention:
    """One framework's batch norm, as data.

    ``momentum`` is the framework's default in its own meaning, named
    ``momentum_name``; ``momentum_weights`` says which value it multiplies:
    ``"new"`` (the batch's statistics: PyTorch, TensorFlow) or ``"old"`` (the
    running value: Keras, ONNX, MXNet, and Caffe's ``moving_average_fraction``
    on its sums).  ``stored_var`` is the variance the running statistics track.
    ``keys`` are the names of the stored arrays (mean, var, and the extra
    counter or ``None``), ``storage`` is ``"running"`` or Caffe's ``"sums"``.
    """

    name: str
    framework: str
    eps: float
    momentum: float | None
    momentum_name: str
    momentum_weights: str
    stored_var: str
    bessel: str  # the unbiased factor, for people ("m/(m-1)") or "" if biased
    storage: str
    keys: tuple[str, str, str | None]
    update: str  # the running update, for people
    initial: str  # the initial running statistics, for people
    gamma_fixed: bool = False
    momentum_none: bool = False  # momentum=None allowed (PyTorch's cumulative average)
    note: str = ""

    @property
    def mean_key(self) -> str:
        return self.keys[0]

    @property
    def var_key(self) -> str:
        return self.keys[1]

    @property
    def extra_key(self) -> str | None:
        return self.keys[2]

    def stored_variance(self, batch: BatchStats) -> np.ndarray:
        """The variance of ``batch`` that this framework's running statistics track."""
        if self.stored_var == "biased":
            return batch.var
        m = batch.count
        if self.name == "pytorch":
            if m < 2:
                raise ParameterError(
                    f"batch has {m} value per statistic: PyTorch refuses to train batch norm "
                    "on a single value per channel (its unbiased variance divides by m - 1 = 0)",
                    param="batch", value=batch)
            return batch.var * (m / (m - 1))
        # TensorFlow: m / max(m - 1, 1); Caffe: m > 1 ? m / (m - 1) : 1.  The same numbers.
        return batch.var * (m / max(m - 1, 1))


BN_CONVENTIONS: dict[str, BNConvention] = {
    c.name: c
    for c in (
        BNConvention(
            name="pytorch",
            framework="PyTorch nn.BatchNorm1d/2d/3d",
            eps=1e-5,
            momentum=0.1,
            momentum_name="momentum",
            momentum_weights="new",
            stored_var="unbiased",
            bessel="m/(m-1)",
            storage="running",
            keys=("running_mean", "running_var", "num_batches_tracked"),
            update="r = (1-p)*r + p*batch; momentum=None: p = 1/num_batches_tracked "
                   "(a cumulative average)",
            initial="mean 0, var 1, num_batches_tracked 0",
            momentum_none=True,
            note="a single value per channel is refused in training",
        ),
        BNConvention(
            name="tensorflow",
            framework="TensorFlow tf.nn.fused_batch_norm (and tf.keras 2's fused path)",
            eps=1e-3,
            momentum=1.0,
            momentum_name="exponential_avg_factor",
            momentum_weights="new",
            stored_var="unbiased",
            bessel="m/max(m-1, 1)",
            storage="running",
            keys=("mean", "variance", None),
            update="r = (1-f)*r + f*batch; f = 1 replaces r by the batch's statistics",
            initial="given by the caller",
        ),
        BNConvention(
            name="keras",
            framework="Keras 3 BatchNormalization",
            eps=1e-3,
            momentum=0.99,
            momentum_name="momentum",
            momentum_weights="old",
            stored_var="biased",
            bessel="",
            storage="running",
            keys=("moving_mean", "moving_variance", None),
            update="r = m*r + (1-m)*batch",
            initial="mean 0, var 1",
            note="tf.keras 2 with fused=True stores TensorFlow's unbiased variance",
        ),
        BNConvention(
            name="onnx",
            framework="ONNX BatchNormalization (training_mode=1)",
            eps=1e-5,
            momentum=0.9,
            momentum_name="momentum",
            momentum_weights="old",
            stored_var="biased",
            bessel="",
            storage="running",
            keys=("input_mean", "input_var", None),
            update="r = m*r + (1-m)*batch",
            initial="given as inputs",
            note="onnxruntime agrees",
        ),
        BNConvention(
            name="caffe",
            framework="Caffe BatchNorm (+ a separate Scale layer for gamma, beta)",
            eps=1e-5,
            momentum=0.999,
            momentum_name="moving_average_fraction",
            momentum_weights="old",
            stored_var="unbiased",
            bessel="m/(m-1) (1 when m = 1)",
            storage="sums",
            keys=("mean_sum", "var_sum", "scale_factor"),
            update="s = l*s + batch, f = l*f + 1 (the third blob); statistics = s/f",
            initial="sums 0, scale_factor 0",
            note="no gamma or beta: a Scale layer (bias_term: true) follows",
        ),
        BNConvention(
            name="mxnet",
            framework="MXNet BatchNorm",
            eps=1e-3,
            momentum=0.9,
            momentum_name="momentum",
            momentum_weights="old",
            stored_var="biased",
            bessel="",
            storage="running",
            keys=("moving_mean", "moving_var", None),
            update="r = m*r + (1-m)*batch (applied in the backward pass)",
            initial="mean 0, var 1",
            gamma_fixed=True,
            note="fix_gamma=True by default: gamma is forced to 1",
        ),
    )
}


def get_bn_convention(name: object) -> BNConvention:
    """Look up a BN convention by name, case-insensitively (``"PyTorch"``, ``"tf"``).

    >>> get_bn_convention("Keras").eps
    0.001
    """
    key = name.strip().lower() if isinstance(name, str) else name
    key = _BN_ALIASES.get(key, key)
    try:
        return BN_CONVENTIONS[key]
    except (KeyError, TypeError):
        raise ParameterError(
            f"convention={name!r} is not known for batch norm; use one of "
            f"{', '.join(BN_CONVENTIONS)}",
            param="convention", value=name,
            problem=f"{name!r} is not one of {', '.join(BN_CONVENTIONS)}",
        ) from None


_BN_ALIASES = {"torch": "pytorch", "tf": "tensorflow", "tf.keras": "keras"}


def check_momentum(convention: BNConvention, momentum: object) -> float | None:
    """The momentum to use: the default for :data:`DEFAULT_MOMENTUM`, else a number
    in [0, 1] (or ``None`` where the framework allows it)."""
    if isinstance(momentum, str) and momentum == DEFAULT_MOMENTUM:
        return convention.momentum
    word = convention.momentum_name
    if momentum is None:
        if convention.momentum_none:
            return None
        raise ParameterError(
            f"momentum=None is PyTorch's cumulative average; {convention.name}'s {word} "
            "must be a number in [0, 1]", param="momentum", value=momentum,
            problem=f"None is PyTorch's; {convention.name}'s {word} must be a number in [0, 1]")
    try:
        value = float(momentum)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(momentum, bool) or not (0.0 <= value <= 1.0):
        raise ParameterError(
            f"momentum={momentum!r} must be a number in [0, 1] ({convention.name}'s {word})",
            param="momentum", value=momentum,
            problem=f"{momentum!r} must be a number in [0, 1] ({convention.name}'s {word})")
    return value


@dataclass(frozen=True, eq=False)
class RunningState:
    """Running statistics as one framework stores them.

    ``mean`` and ``var`` are the stored arrays (Caffe: the running sums);
    ``extra`` is PyTorch's ``num_batches_tracked`` (an int) or Caffe's
    ``scale_factor`` (a float), else ``None``.  ``dtype`` is the type they are
    stored in (they are computed in float64 and rounded to it after each
    update, as a framework rounds to its parameters' type).
    """

    convention: BNConvention
    per: str
    mean: np.ndarray
    var: np.ndarray
    extra: int | float | None = None
    dtype: np.dtype = np.dtype(np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.mean.shape

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, var)`` in float64: what inference normalizes with.

        For Caffe, the sums divided by ``scale_factor`` (0 when it is 0, as
        Caffe does); for the others the stored arrays themselves (PyTorch's
        unbiased running variance is what it divides by in eval mode).
        """
        mean = np.asarray(self.mean, np.float64)
        var = np.asarray(self.var, np.float64)
        if self.convention.storage == "sums":
            factor = float(self.extra or 0.0)
            scale = 0.0 if factor == 0 else 1.0 / factor
            return mean * scale, var * scale
        return mean, var

    def to_mapping(self) -> dict[str, np.ndarray]:
        """The arrays to save, by the framework's names, plus ``convention`` and ``per``.

        >>> s = initial_state("pytorch", (2,))
        >>> sorted(s.to_mapping())
        ['convention', 'num_batches_tracked', 'per', 'running_mean', 'running_var']
        """
        c = self.convention
        out = {c.mean_key: np.asarray(self.mean, self.dtype),
               c.var_key: np.asarray(self.var, self.dtype)}
        if c.extra_key == "num_batches_tracked":
            out[c.extra_key] = np.asarray(int(self.extra or 0), np.int64)
        elif c.extra_key is not None:  # Caffe's third blob: shape (1,), like the others' type
            out[c.extra_key] = np.asarray([float(self.extra or 0.0)], self.dtype)
        out["convention"] = np.asarray(c.name)
        out["per"] = np.asarray(self.per)
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, np.ndarray], convention: str | None = None, *,
                     per: str | None = None) -> RunningState:
        """Rebuild stored statistics from arrays by the framework's names.

        ``convention`` may be left out when ``data`` names it (files normcli
        wrote); ``per`` likewise, else 1-D statistics are per channel and
        others per activation.  Raises ``ValueError`` saying what is wrong
        (a missing array, shapes that differ, NaN, a negative variance...).
        """
        named = _text_field(data, "convention")
        if convention is None and named is None:
            raise ValueError("the statistics do not say which framework stored them; "
                             "give the convention")
        conv = get_bn_convention(convention if convention is not None else named)
        if named is not None and convention is not None and get_bn_convention(named) != conv:
            raise ValueError(f"the statistics were stored in the {named} convention, "
                             f"not {conv.name}")
        missing = [k for k in (conv.mean_key, conv.var_key) if k not in data]
        if conv.extra_key == "scale_factor" and conv.extra_key not in data:
            missing.append(conv.extra_key)
        if missing:
            raise ValueError(f"{conv.name} statistics need {', '.join(missing)} "
                             f"(found {', '.join(sorted(data)) or 'nothing'})")
        mean, var = data[conv.mean_key], data[conv.var_key]
        for key, arr in ((conv.mean_key, mean), (conv.var_key, var)):
            if np.asarray(arr).dtype.kind != "f" or np.ndim(arr) == 0:
                raise ValueError(f"{key} has dtype {np.asarray(arr).dtype} and shape "
                                 f"{np.shape(arr)}; expected a float array")
        if mean.shape != var.shape:
            raise ValueError(f"{conv.mean_key} {mean.shape} and {conv.var_key} {var.shape} "
                             "differ in shape")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
            raise ValueError("the statistics hold NaN or infinite values")
        if np.any(var < 0):
            raise ValueError(f"{conv.var_key} holds negative values")
        file_per = _text_field(data, "per")
        if file_per is not None and per is not None and file_per != per:
            raise ValueError(f"the statistics are per {file_per}, not per {per}")
        per = per or file_per or ("channel" if mean.ndim == 1 else "activation")
        if per not in PER:
            raise ValueError(f"per={per!r} is not 'activation' or 'channel'")
        extra: int | float | None = None
        if conv.extra_key == "num_batches_tracked":
            extra = _count_field(data, conv.extra_key) if conv.extra_key in data else 0
        elif conv.extra_key == "scale_factor":
            factor = np.asarray(data[conv.extra_key])
            if factor.size != 1 or factor.dtype.kind not in "fiu":
                raise ValueError(f"scale_factor has shape {factor.shape} and dtype "
                                 f"{factor.dtype}; expected one number")
            extra = float(factor.reshape(-1)[0])
            if not (math.isfinite(extra) and extra >= 0):
                raise ValueError(f"scale_factor={extra} must be finite and >= 0")
        dtype = np.result_type(mean.dtype, var.dtype)
        return cls(conv, per, np.asarray(mean, np.float64), np.asarray(var, np.float64),
                   extra, np.dtype(dtype))


def _text_field(data: Mapping[str, np.ndarray], key: str) -> str | None:
    if key not in data:
        return None
    arr = np.asarray(data[key])
    if arr.dtype.kind != "U" or arr.size != 1:
        raise ValueError(f"{key} has dtype {arr.dtype} and shape {arr.shape}; expected a string")
    return str(arr.reshape(-1)[0])


def _count_field(data: Mapping[str, np.ndarray], key: str) -> int:
    arr = np.asarray(data[key])
    if arr.dtype.kind not in "iu" or arr.size != 1:
        raise ValueError(f"{key} has dtype {arr.dtype} and shape {arr.shape}; "
                         "expected one integer")
    value = int(arr.reshape(-1)[0])
    if value < 0:
        raise ValueError(f"{key}={value} must be >= 0")
    if value >= np.iinfo(np.int64).max:  # (stored as int64, and counted on by one)
        raise ValueError(f"{key}={value} must be below {np.iinfo(np.int64).max}")
    return value


def initial_state(convention: str | BNConvention, shape: tuple[int, ...], *,
                  per: str = "channel", dtype: object = np.float64) -> RunningState:
    """Running statistics as the framework initializes them: mean 0 and variance 1
    (Caffe: sums 0 and scale_factor 0; PyTorch: num_batches_tracked 0).

    >>> s = initial_state("caffe", (3,))
    >>> s.var.tolist(), s.extra
    ([0.0, 0.0, 0.0], 0.0)
    """
    conv = convention if isinstance(convention, BNConvention) else get_bn_convention(convention)
    check_per(per)
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ParameterError(f"dtype={dt} must be a float type", param="dtype", value=dtype)
    shape = tuple(int(s) for s in shape)
    sums = conv.storage == "sums"
    extra = {"num_batches_tracked": 0, "scale_factor": 0.0}.get(conv.extra_key or "")
    return RunningState(conv, per, np.zeros(shape), np.zeros(shape) if sums else np.ones(shape),
                        extra, dt)


def update_running(state: RunningState, batch: BatchStats, *,
                   momentum: float | None | str = DEFAULT_MOMENTUM) -> RunningState:
    """Running statistics after one training batch, the framework's way.

    Parameters
    ----------
    state : RunningState
        The running statistics before the batch (from :func:`initial_state` or a file).
    batch : BatchStats
        The batch's statistics from :func:`normcli.ops.moments.batch_stats`
        (mean, biased variance and count m).
    momentum : float or None, optional
        In the framework's own meaning (:attr:`BNConvention.momentum_name`);
        left out, its default.  ``None`` is PyTorch's cumulative average:
        each batch weighs ``1 / num_batches_tracked``.

    Returns
    -------
    RunningState
        A new state, rounded to ``state.dtype``.

    Examples
    --------
    PyTorch weighs the new batch by 0.1 and tracks the unbiased variance:

    >>> from normcli.ops.moments import batch_stats
    >>> b = batch_stats(np.array([[1.0], [3.0]]), per="channel")
    >>> s = update_running(initial_state("pytorch", (1,)), b)
    >>> s.mean.tolist(), s.var.tolist(), s.extra
    ([0.2], [1.1], 1)

    Keras weighs the old value by 0.99 and tracks the biased variance:

    >>> s = update_running(initial_state("keras", (1,)), b)
    >>> [round(v, 12) for v in (float(s.mean[0]), float(s.var[0]))]
    [0.02, 1.0]
    """
    conv = state.convention
    if not isinstance(batch, BatchStats):
        raise ParameterError(f"batch must be BatchStats, not {type(batch).__name__}",
                             param="batch", value=batch)
    if batch.per != state.per or batch.mean.shape != state.shape:
        raise ParameterError(
            f"batch has statistics per {batch.per} of shape {batch.mean.shape}; the running "
            f"statistics are per {state.per} of shape {state.shape}", param="batch", value=batch)
    m = check_momentum(conv, momentum)
    mean_b = np.asarray(batch.mean, np.float64)
    var_b = conv.stored_variance(batch)
    extra = state.extra
    if conv.storage == "sums":  # Caffe: s = l*s + batch, f = l*f + 1
        mean = m * state.mean + mean_b
        var = m * state.var + var_b
        extra = float(np.asarray(m * float(extra or 0.0) + 1.0, state.dtype))
    else:
        if conv.extra_key == "num_batches_tracked":
            extra = int(extra or 0) + 1
        if conv.momentum_weights == "new":
            p = (1.0 / extra) if m is None else m
        else:
            p = 1.0 - m
        if p == 1.0:  # the batch replaces the running value (TensorFlow's default f = 1)
            mean, var = mean_b.copy(), var_b.copy()
        else:
            mean = (1.0 - p) * state.mean + p * mean_b
            var = (1.0 - p) * state.var + p * var_b
    mean = np.asarray(mean, state.dtype).astype(np.float64)
    var = np.asarray(var, state.dtype).astype(np.float64)
    return replace(state, mean=mean, var=var, extra=extra)
