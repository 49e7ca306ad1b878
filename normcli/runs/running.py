"""Framework conventions in the batch-norm run: defaults, and running statistics.

``convention`` gives a framework's ``eps`` and the form of its stored
statistics (:mod:`normcli.ops.bn_conventions`); ``update_stats`` names a
``.npz`` of running statistics that the run updates with its batch's
statistics the framework's way and writes with its other outputs (staged:
all or nothing).  A file that does not exist yet starts from the framework's
initial state (mean 0, variance 1; Caffe's sums and scale factor 0), or
from the stored statistics of the model layer the run takes its settings from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from normcli.errors import InputError, ParameterError, UsageError
from normcli.ops.bn_conventions import (
    DEFAULT_MOMENTUM,
    BNConvention,
    RunningState,
    check_momentum,
    get_bn_convention,
    initial_state,
    update_running,
)
from normcli.ops.moments import BatchStats

__all__ = ["bn_defaults", "RunningUpdate", "named_convention"]

#: The eps of batch norm when no convention says otherwise.
DEFAULT_EPS = 1e-5


def bn_defaults(convention: str | None, eps: float | None) -> tuple[BNConvention | None, float]:
    """The convention (None when not given) and the eps to use: the one given,
    else the convention's, else :data:`DEFAULT_EPS`."""
    conv = get_bn_convention(convention) if convention is not None else None
    if eps is None:
        eps = conv.eps if conv is not None else DEFAULT_EPS
    return conv, eps


@dataclass
class RunningUpdate:
    """One run's ``update_stats``: the file, its convention and momentum, checked
    before any input is read."""

    path: str
    convention: BNConvention
    momentum: float | None
    #: Where a missing file starts from instead of the initial state: a model
    #: layer's stored ``(mean, var)`` (ONNX ``training_mode=1``'s inputs).
    start: tuple | None = None

    @classmethod
    def check(cls, path, convention: BNConvention | None, momentum: object, *,
              per: str) -> RunningUpdate:
        path = os.fspath(path)
        if not path.lower().endswith(".npz"):
            problem = f"{path!r} must be a .npz file"
            raise ParameterError(f"update_stats={problem}", param="update_stats", value=path,
                                 problem=problem)
        if convention is None:
            convention = _named_convention(path)
        if convention is None:
            raise UsageError("--update-stats needs --convention NAME: which framework's "
                             "running statistics to keep", param="update_stats", value=path)
        return cls(path, convention, check_momentum(convention, momentum))

    def updated(self, batch: BatchStats) -> RunningState:
        """The running statistics after this run's batch (the file's, or the
        framework's initial ones when it does not exist)."""
        if os.path.exists(self.path):
            from normcli.files.running_stats import read_running_stats

            state = read_running_stats(self.path, self.convention.name, per=batch.per)
        else:
            state = initial_state(self.convention, batch.mean.shape, per=batch.per)
            if self.start is not None and np.shape(self.start[0]) == state.shape:
                state = replace(state, mean=np.asarray(self.start[0], np.float64),
                                var=np.asarray(self.start[1], np.float64))
        if state.shape != batch.mean.shape:
            raise InputError(self.path, f"holds running statistics of shape {state.shape}, "
                             f"but this batch's statistics per {batch.per} have shape "
                             f"{batch.mean.shape}")
        try:
            return update_running(state, batch, momentum=self.momentum)
        except ParameterError as e:  # (PyTorch's refusal of one value per channel)
            raise InputError(self.path, str(e)) from None


def named_convention(path: object) -> str | None:
    """The convention a running-statistics file normcli wrote names (``update_stats``
    or ``stats``), else None: a run on such a file takes that convention's eps."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    conv = _named_convention(os.fspath(path))
    return conv.name if conv is not None else None


def _named_convention(path: str) -> BNConvention | None:
    """The convention a file normcli wrote names (None if absent or unreadable: the
    update itself reports a bad file)."""
    if not os.path.isfile(path):
        return None
    try:
        from normcli.files.running_stats import read_running_stats

        return read_running_stats(path).convention
    except (InputError, ParameterError):
        return None


def momentum_value(text: str | None) -> float | None | str:
    """``--momentum``'s word: a number, ``none`` (PyTorch's cumulative average), or
    left out (the convention's default)."""
    if text is None:
        return DEFAULT_MOMENTUM
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--momentum {text!r} is not a number or 'none'",
                         param="momentum", value=text) from None
