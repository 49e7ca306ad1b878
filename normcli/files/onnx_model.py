"""LRN and BatchNormalization nodes of ONNX models, read safely.

Needs the optional ``onnx`` package (``pip install 'normcli[onnx]'``),
imported on first use; without it every function raises one
:class:`~normcli.errors.InputError` line naming the extra.

A model file is untrusted input:

* it must be a regular file within the size limit (``NORMCLI_MAX_BYTES``,
  2 GiB by default: protobuf's own limit) and parse as a ``ModelProto``;
* only the tensors the nodes need are decoded (scale, B, mean, var), only
  as float16/32/64, within the limit;
* external data (weights beside the model) must name a relative path inside
  the model's folder (no ``..``, no absolute path, no symbolic link leading
  out), a regular file, with an offset and length inside it that match the
  tensor's shape: nothing else on the disk is ever opened;
* subgraphs (``If``, ``Loop``, ``Scan`` bodies) are searched to a bounded
  depth, and the number of nodes is bounded.

Every problem is one ``InputError`` line naming the file (and the node).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from normcli.errors import InputError, ParameterError
from normcli.files.limits import MAX_BYTES_ENV, resolve_max_bytes
from normcli.files.models import BatchNormLayer, ModelLayer, find_layer
from normcli.files.npy import nonblocking, open_error, read_bounded
from normcli.ops.conventions import LRNParams, resolve_lrn

__all__ = ["read_onnx_layers", "lrn_from_onnx", "batchnorm_from_onnx", "ONNX_EXTRA",
           "import_onnx"]

#: What to install for ``--from-onnx`` and ``normcli layers MODEL.onnx``.
ONNX_EXTRA = "pip install 'normcli[onnx]'"
MAX_DEPTH = 8  # nested subgraphs searched
MAX_NODES = 1_000_000
_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64"}  # TensorProto data types
_OPS = ("LRN", "BatchNormalization")


def import_onnx(source: object):
    """The ``onnx`` module, or an InputError line saying how to install it."""
    try:
        import onnx
        from onnx import numpy_helper  # noqa: F401
    except ImportError:
        raise InputError(source, f"reading ONNX models needs the onnx package: {ONNX_EXTRA}"
                         ) from None
    return onnx


def read_onnx_layers(path: str | os.PathLike[str], *, max_bytes: int | None = None
                     ) -> list[ModelLayer]:
    """Every LRN and BatchNormalization node of the model at ``path``, in graph order.

    LRN nodes become ``onnx``-convention :class:`~normcli.ops.conventions.LRNParams`;
    BatchNormalization nodes a :class:`~normcli.files.models.BatchNormLayer` with
    their ``scale``, ``B``, ``mean`` and ``var`` tensors (``spatial=0``, opset
    <= 8, is per activation; ``training_mode=1`` uses the batch's statistics).
    A node without a name is called after its first output.
    """
    onnx = import_onnx(path)
    limit = resolve_max_bytes(max_bytes)
    data = _read_limited(path, limit)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # DecodeError, RecursionError, ...
        raise InputError(path, f"not a valid ONNX model ({type(e).__name__})") from None
    if not model.HasField("graph"):
        raise InputError(path, "not a valid ONNX model (it has no graph)")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise InputError(path, "the model imports no version of the default ONNX operator set")
    base = Path(os.path.abspath(path)).parent
    reader = _Reader(onnx, path, base, limit)
    layers: list[ModelLayer] = []
    count = [0]
    _walk(model.graph, {}, 0, reader, layers, opset, count)
    return layers


def lrn_from_onnx(path: str | os.PathLike[str], node: str, *, max_bytes: int | None = None
                  ) -> LRNParams:
    """The LRN settings of the node called ``node``: what onnxruntime computes for it."""
    return find_layer(read_onnx_layers(path, max_bytes=max_bytes), node, kind="lrn",
                      source=path).lrn


def batchnorm_from_onnx(path: str | os.PathLike[str], node: str, *,
                        max_bytes: int | None = None) -> BatchNormLayer:
    """The batch-norm settings and stored statistics of the node called ``node``."""
    return find_layer(read_onnx_layers(path, max_bytes=max_bytes), node, kind="batchnorm",
                      source=path).bn


def _read_limited(path, limit: int) -> bytes:
    data = read_bounded(path, limit, what="an ONNX model")
    if not data:
        raise InputError(path, "empty file, not an ONNX model")
    return data


def _walk(graph, outer: dict, depth: int, reader, layers, opset: int, count) -> None:
    if depth > MAX_DEPTH:
        raise InputError(reader.path, f"subgraphs nested over {MAX_DEPTH} deep")
    consts = dict(outer)
    for t in graph.initializer:
        consts[t.name] = t
    for node in graph.node:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise InputError(reader.path, f"over {MAX_NODES} nodes")
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    consts[node.output[0]] = attr.t
        if node.op_type in _OPS and node.domain in ("", "ai.onnx"):
            layers.append(_layer(node, consts, reader, opset))
        for attr in node.attribute:
            subs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for sub in subs:
                _walk(sub, consts, depth + 1, reader, layers, opset, count)


def _attributes(node, reader, where: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for attr in node.attribute:
        if attr.name in out:  # (onnx's checker and onnxruntime refuse it; the last was taken)
            raise InputError(where, f"attribute {attr.name} is given more than once")
        kinds = {1: ("f", float), 2: ("i", int), 3: ("s", bytes)}
        if attr.type in kinds:
            field_name, kind = kinds[attr.type]
            value = getattr(attr, field_name)
            out[attr.name] = value.decode("utf-8", "replace") if kind is bytes else kind(value)
        else:
            out[attr.name] = f"<{attr.type}>"
    return out


def _number(attrs: dict, key: str, default: float, where: str) -> float:
    """A numeric attribute (or its default); another type is the file's error."""
    value = attrs.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(where, f"attribute {key} is {value!r}, not a number")
    return float(value)


def _switch(attrs: dict, key: str, default: int, where: str) -> int:
    """An integer attribute that is 0 or 1 (``spatial``, ``training_mode``)."""
    value = attrs.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise InputError(where, f"attribute {key} is {value!r}; it must be the integer 0 or 1")
    return value


def _name(node) -> str:
    if node.name:
        return node.name
    return node.output[0] if node.output and node.output[0] else f"<unnamed {node.op_type}>"


def _layer(node, consts, reader, opset: int) -> ModelLayer:
    name = _name(node)
    where = f"{reader.path}: node {name!r}"
    attrs = _attributes(node, reader, where)
    if node.op_type == "LRN":
        if "size" not in attrs:
            raise InputError(where, "LRN without its required size attribute")
        if not isinstance(attrs["size"], int):  # (onnxruntime reads it as an integer or fails)
            raise InputError(where, f"attribute size is {attrs['size']!r}, not an integer")
        try:
            p = resolve_lrn(convention="onnx", n=attrs["size"], k=attrs.get("bias", 1.0),
                            alpha=attrs.get("alpha", 1e-4), beta=attrs.get("beta", 0.75))
        except ParameterError as e:
            raise InputError(where, f"unusable LRN attributes: {e}") from None
        notes = ()
        if p.n % 2 == 0:
            notes = ("onnxruntime's CPU LRN refuses even sizes (size % 2 == 1 is checked)",)
        return ModelLayer(name, "LRN", str(reader.path), attrs, lrn=p, notes=notes)
    # BatchNormalization: X, scale, B, mean, var
    if len(node.input) < 5:
        raise InputError(where, f"BatchNormalization with {len(node.input)} inputs; it needs 5 "
                         "(X, scale, B, mean, var)")
    names = ("scale", "B", "mean", "var")
    arrays = {}
    for key, inp in zip(names, node.input[1:5], strict=True):
        if inp not in consts:
            raise InputError(where, f"its {key} comes from {inp!r}, which is not a stored "
                             "tensor (an initializer or a Constant)")
        arrays[key] = reader.tensor(consts[inp], f"{where}: {key} {inp!r}")
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise InputError(where, "scale, B, mean and var differ in shape: "
                         + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
    if np.any(arrays["var"] < 0):
        raise InputError(where, "var holds negative values")
    eps = _number(attrs, "epsilon", 1e-5, where)
    spatial = _switch(attrs, "spatial", 1, where) if opset <= 8 else 1
    training = _switch(attrs, "training_mode", 0, where) if opset >= 14 else 0
    momentum = _number(attrs, "momentum", 0.9, where)
    per = "channel" if spatial else "activation"
    if per == "channel" and arrays["scale"].ndim != 1:
        raise InputError(where, f"scale has shape {arrays['scale'].shape}; per channel it "
                         "must be 1-D")
    try:
        bn = BatchNormLayer(per=per, eps=eps, gamma=arrays["scale"], beta=arrays["B"],
                            mean=arrays["mean"], var=arrays["var"],
                            statistics="batch" if training else "fixed",
                            momentum=momentum, convention="onnx")
        bn.params  # noqa: B018 - checks eps > 0 and the arrays
    except ParameterError as e:
        raise InputError(where, f"unusable BatchNormalization attributes: {e}") from None
    notes = []
    if training:
        notes.append("training_mode=1: normalizes with the batch's statistics (biased "
                     "variance) and updates the running ones with momentum "
                     f"{bn.momentum:g} weighting the old value")
    if not spatial:
        notes.append("spatial=0: statistics per activation")
    return ModelLayer(name, "BatchNormalization", str(reader.path),
                      {**attrs, **{k: v for k, v in arrays.items()}}, bn=bn, notes=tuple(notes))


class _Reader:
    """Decodes tensors, with external data confined to the model's folder."""

    def __init__(self, onnx, path, base: Path, limit: int) -> None:
        self.onnx, self.path, self.base, self.limit = onnx, path, base, limit

    def tensor(self, t, where: str) -> np.ndarray:
        from onnx import numpy_helper

        if t.data_type not in _FLOAT_TYPES:
            raise InputError(where, f"has ONNX data type {t.data_type}; expected float16, "
                             "float32 or float64")
        dims = list(t.dims)
        if any(d < 0 for d in dims):
            raise InputError(where, f"has negative dimensions {dims}")
        count = 1
        for d in dims:
            count *= d
        itemsize = np.dtype(_FLOAT_TYPES[t.data_type]).itemsize
        if count * itemsize > self.limit:
            raise InputError(where, f"needs {count * itemsize} bytes, over the limit of "
                             f"{self.limit} (set {MAX_BYTES_ENV} to raise it)")
        if t.data_location == 1:  # EXTERNAL
            t = self._inline(t, where, count * itemsize)
        try:
            arr = numpy_helper.to_array(t)
        except Exception as e:  # a length that does not match the shape, ...
            raise InputError(where, f"cannot be decoded ({type(e).__name__}: "
                             f"{str(e)[:120]})") from None
        arr = np.asarray(arr, np.float64)
        if arr.shape != tuple(dims):
            raise InputError(where, f"holds {arr.size} values for shape {tuple(dims)}")
        if arr.ndim == 0 or arr.size == 0:
            raise InputError(where, f"has shape {arr.shape}; expected an array")
        if not np.all(np.isfinite(arr)):
            raise InputError(where, "holds NaN or infinite values")
        return arr

    def _inline(self, t, where: str, nbytes: int):
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if not location or os.path.isabs(location) or ".." in Path(location).parts \
                or location.startswith(("/", "\\")) or "\x00" in location:
            raise InputError(where, f"external data location {location!r} must be a relative "
                             "path inside the model's folder")
        target = (self.base / location)
        real, base = os.path.realpath(target), os.path.realpath(self.base)
        if os.path.commonpath([real, base]) != base:
            raise InputError(where, f"external data {location!r} leads outside the model's "
                             "folder")
        try:
            offset = int(info.get("offset", "0"))
            length = int(info.get("length", str(nbytes)))
        except ValueError:
            raise InputError(where, "external data offset or length is not a number") from None
        if offset < 0 or length != nbytes:
            raise InputError(where, f"external data of {length} bytes at offset {offset}; the "
                             f"tensor's shape needs {nbytes}")
        try:
            with open(real, "rb", opener=nonblocking) as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise InputError(where, f"external data {location!r} is not a regular file")
                if offset + length > st.st_size:
                    raise InputError(where, f"external data {location!r} has {st.st_size} "
                                     f"bytes; the tensor needs {offset + length}")
                f.seek(offset)
                raw = f.read(length)
        except OSError as e:
            raise open_error(f"{where}: external data {location!r}", e) from None
        if len(raw) != length:
            raise InputError(where, f"external data {location!r} is truncated")
        inlined = self.onnx.TensorProto()
        inlined.CopyFrom(t)
        del inlined.external_data[:]
        inlined.data_location = 0
        inlined.raw_data = raw
        return inlined
