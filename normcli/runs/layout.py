"""``channel_axis``: arrays whose channels are on another axis than the kernels'.

The kernels read channels first or channels last (``channels_last``); an
array with its channels elsewhere (Keras's and MXNet's ``axis``) is given to
them as a view with that axis moved last (:func:`numpy.moveaxis`), and its
result is moved back, so that outputs keep the input's layout and equal, bit
for bit, a run on the array transposed by hand to channels last.
"""

from __future__ import annotations

import numpy as np

from normcli.errors import InputError, ParameterError

__all__ = ["channel_axis_of", "to_channels_last", "from_channels_last"]


def channel_axis_of(shape: tuple[int, ...], axis: int, *, first: int = 0, least: int = 1,
                    what: str = "") -> int:
    """``axis`` of an array of ``shape`` as a non-negative index, or a
    :class:`ParameterError` about the data (``param="x"``: the run names the
    input): ``axis`` out of range, one of the ``first`` batch axes, or an array
    of fewer than ``least`` axes."""
    ndim = len(shape)
    if ndim < least:
        raise ParameterError(f"has shape {shape}: --channel-axis needs {what or 'arrays'} "
                         f"of {least} or more axes", param="x")
    if not -ndim <= axis < ndim:
        raise ParameterError(f"has {ndim} ax{'is' if ndim == 1 else 'es'} {shape}: "
                         f"--channel-axis {axis} is not one of them", param="x")
    a = axis % ndim
    if a < first:
        raise ParameterError(f"has shape {shape}: --channel-axis {axis} is "
                         f"{'its batch axis' if first == 1 else 'one of its batch axes'}",
                             param="x")
    return a


def to_channels_last(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` with its axis ``axis`` moved last (a view)."""
    return np.moveaxis(x, axis, -1)


def from_channels_last(y: np.ndarray, axis: int) -> np.ndarray:
    """The inverse of :func:`to_channels_last` (a view)."""
    return np.moveaxis(y, -1, axis)


def refuse_image(label: str) -> InputError:
    return InputError(label, "is an image: its channels are known; --channel-axis is for "
                      "arrays")
