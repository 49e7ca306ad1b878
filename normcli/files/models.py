"""The LRN and batch-norm layers of model files, as normcli settings.

:func:`read_layers` lists them from an ONNX model (``.onnx``,
:mod:`normcli.files.onnx_model`, needs the optional ``onnx`` package) or a
Caffe text prototxt (``.prototxt``, :mod:`normcli.files.caffe_prototxt`);
:func:`find_layer` picks one by name.  Each :class:`ModelLayer` carries its
attributes as the file states them and, resolved, an
:class:`~normcli.ops.conventions.LRNParams` (``.lrn``) or a
:class:`BatchNormLayer` (``.bn``), ready for :func:`normcli.ops.lrn.lrn` and
:func:`normcli.ops.batchnorm.batch_norm`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from normcli.errors import InputError
from normcli.ops.batchnorm import BNParams, resolve_batchnorm
from normcli.ops.conventions import LRNParams

__all__ = ["ModelLayer", "BatchNormLayer", "read_layers", "find_layer", "MODEL_SUFFIXES"]

MODEL_SUFFIXES = (".onnx", ".prototxt", ".pbtxt")


@dataclass(frozen=True, eq=False)
class BatchNormLayer:
    """A batch-norm layer's settings.

    ``statistics`` is ``"fixed"`` (inference with stored ``mean`` and ``var``;
    Caffe's prototxt holds none, they live in the ``.caffemodel``: then both
    are ``None``) or ``"batch"`` (ONNX ``training_mode=1``, Caffe
    ``use_global_stats: false``).  ``gamma`` and ``beta`` are arrays or
    numbers (Caffe's BatchNorm has none: 1 and 0, a Scale layer follows).
    """

    per: str
    eps: float
    gamma: float | np.ndarray = 1.0
    beta: float | np.ndarray = 0.0
    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    statistics: str = "fixed"
    momentum: float | None = None
    convention: str = "onnx"

    @property
    def params(self) -> BNParams:
        """The checked settings for :func:`normcli.ops.batchnorm.batch_norm` (``params=``)."""
        return resolve_batchnorm(per=self.per, eps=self.eps, gamma=self.gamma, beta=self.beta)

    @property
    def has_stats(self) -> bool:
        return self.mean is not None and self.var is not None


@dataclass(frozen=True, eq=False)
class ModelLayer:
    """One LRN or batch-norm layer of a model file."""

    name: str
    op: str  # as the file names it: LRN, BatchNormalization, BatchNorm
    source: str
    attributes: dict[str, object] = field(default_factory=dict)
    lrn: LRNParams | None = None
    bn: BatchNormLayer | None = None
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``"lrn"`` or ``"batchnorm"``."""
        return "lrn" if self.lrn is not None else "batchnorm"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: name, op, kind, attributes (arrays as their shape) and notes."""
        attrs = {k: (list(np.shape(v)) if isinstance(v, np.ndarray) else v)
                 for k, v in self.attributes.items()}
        d: dict[str, object] = {"name": self.name, "op": self.op, "kind": self.kind,
                                "attributes": attrs, "notes": list(self.notes)}
        if self.bn is not None:
            d["per"] = self.bn.per
            d["eps"] = self.bn.eps
            d["statistics"] = self.bn.statistics
        return d


def read_layers(path: str | os.PathLike[str], *, max_bytes: int | None = None
                ) -> list[ModelLayer]:
    """Every LRN and batch-norm layer of an ``.onnx`` model or a Caffe ``.prototxt``.

    Raises :class:`~normcli.errors.InputError` for other file types, unreadable
    or malformed files, and (``.onnx``) when the ``onnx`` package is missing.
    """
    suffix = os.fspath(path).lower()
    if suffix.endswith(".onnx"):
        from normcli.files.onnx_model import read_onnx_layers

        return read_onnx_layers(path, max_bytes=max_bytes)
    if suffix.endswith((".prototxt", ".pbtxt")):
        from normcli.files.caffe_prototxt import read_caffe_layers

        return read_caffe_layers(path, max_bytes=max_bytes)
    raise InputError(path, "not a model file normcli reads (.onnx, or Caffe's .prototxt)")


def find_layer(layers: list[ModelLayer], name: str, *, kind: str | None = None,
               source: object = None) -> ModelLayer:
    """The layer called ``name`` (of ``kind`` ``"lrn"`` or ``"batchnorm"`` if given).

    Raises :class:`~normcli.errors.InputError` naming the file and the layers
    there are, when there is no such layer, it is of the other kind, or the
    name is not unique.
    """
    where = source if source is not None else (layers[0].source if layers else "model")
    found = [layer for layer in layers if layer.name == name]
    if not found:
        listing = ", ".join(f"{layer.name} ({layer.op})" for layer in layers[:20])
        more = f" and {len(layers) - 20} more" if len(layers) > 20 else ""
        have = f"; it has {listing}{more}" if layers else "; it has no LRN or batch-norm layer"
        raise InputError(where, f"no LRN or batch-norm layer named {name!r}{have}")
    if len(found) > 1:
        raise InputError(where, f"{len(found)} layers are named {name!r}; names must be unique")
    layer = found[0]
    if kind is not None and layer.kind != kind:
        want = "an LRN" if kind == "lrn" else "a batch-norm"
        raise InputError(where, f"{name!r} is a {layer.op} layer, not {want} layer")
    return layer
