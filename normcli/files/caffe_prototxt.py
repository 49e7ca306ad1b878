"""LRN and BatchNorm layers of Caffe's text prototxt (``deploy.prototxt``), read safely.

A small parser of the protobuf text format, enough for network definitions
and bounded against hostile input: the file size (16 MiB), the nesting depth
(64) and the number of tokens (4 million) are limited, strings and numbers
are only ever kept as text, and every problem is one
:class:`~normcli.errors.InputError` line naming the file and the line.  No
protobuf package is needed.

Both layer formats are read: ``layer { type: "LRN" ... }`` and the old
``layers { type: LRN ... }``.  ``LRN`` layers become ``caffe``-convention
:class:`~normcli.ops.conventions.LRNParams` (``norm_region:
WITHIN_CHANNEL`` is the intra-channel form); ``BatchNorm`` layers a
:class:`~normcli.files.models.BatchNormLayer` (per channel, ``eps``,
``use_global_stats``; the statistics themselves are in the ``.caffemodel``),
with the ``Scale`` layer that follows it named in its notes.
"""

from __future__ import annotations

import os
import re

from normcli.errors import InputError, ParameterError
from normcli.files.models import BatchNormLayer, ModelLayer, find_layer
from normcli.files.npy import read_bounded
from normcli.ops.conventions import LRNParams, resolve_lrn

__all__ = ["parse_prototxt", "read_caffe_layers", "lrn_from_caffe", "batchnorm_from_caffe",
           "MAX_PROTOTXT_BYTES"]

MAX_PROTOTXT_BYTES = 16 * 1024**2
MAX_DEPTH = 64
MAX_TOKENS = 4_000_000

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?|[-+]?(?:inf|nan)\b)
  | (?P<punct>[{}<>:\[\],;])
""", re.VERBOSE)

Message = list  # of (key, value) with value a str (scalar text) or a Message


def parse_prototxt(text: str, *, source: object = "<prototxt>") -> Message:
    """Parse protobuf text format into nested ``[(key, value), ...]`` lists.

    Scalars stay as their text (strings unquoted, escapes kept as written).

    >>> parse_prototxt('layer { name: "n1" lrn_param { local_size: 5 } }  # ok')
    [('layer', [('name', 'n1'), ('lrn_param', [('local_size', '5')])])]
    """
    tokens = _tokens(text, source)
    pos = 0
    stack: list[tuple[Message, str | None]] = [([], None)]

    def fail(at: int, problem: str) -> None:
        line = tokens[at][2] if at < len(tokens) else (tokens[-1][2] if tokens else 1)
        raise InputError(source, f"line {line}: {problem}")

    while pos < len(tokens):
        kind, value, _ = tokens[pos]
        current = stack[-1][0]
        if kind == "punct" and value in "}>":
            closer = stack[-1][1]
            if closer is None or value != closer:
                fail(pos, f"unexpected {value!r}")
            stack.pop()
            pos += 1
            continue
        if kind == "punct" and value in ",;":
            pos += 1
            continue
        if kind != "word":
            fail(pos, f"expected a field name, found {value!r}")
        key = value
        pos += 1
        colon = pos < len(tokens) and tokens[pos][1] == ":" and tokens[pos][0] == "punct"
        if colon:
            pos += 1
        if pos >= len(tokens):
            fail(pos, f"field {key!r} has no value")
        kind, value, _ = tokens[pos]
        if kind == "punct" and value in "{<":
            if len(stack) > MAX_DEPTH:
                fail(pos, f"messages nested over {MAX_DEPTH} deep")
            child: Message = []
            current.append((key, child))
            stack.append((child, "}" if value == "{" else ">"))
            pos += 1
            continue
        if not colon:
            fail(pos, f"expected ':' or '{{' after {key!r}")
        if kind == "punct" and value == "[":  # a list of scalars
            pos += 1
            while pos < len(tokens) and tokens[pos][1] != "]":
                k2, v2, _ = tokens[pos]
                if k2 == "punct" and v2 == ",":
                    pos += 1
                    continue
                if k2 not in ("string", "number", "word"):
                    fail(pos, f"unexpected {v2!r} in the list of {key!r}")
                current.append((key, _scalar(k2, v2)))
                pos += 1
            if pos >= len(tokens):
                fail(pos, f"the list of {key!r} is not closed")
            pos += 1
            continue
        if kind not in ("string", "number", "word"):
            fail(pos, f"field {key!r} has no value")
        text_value = _scalar(kind, value)
        pos += 1
        while kind == "string" and pos < len(tokens) and tokens[pos][0] == "string":
            text_value = _Quoted(text_value + _scalar("string", tokens[pos][1]))  # "a" "b"
            pos += 1
        current.append((key, text_value))
    if len(stack) > 1:
        fail(len(tokens), "the file ends inside a message (a '}' is missing)")
    return stack[0][0]


class _Quoted(str):
    """A scalar written as a quoted string: Caffe refuses it for a number."""


def _scalar(kind: str, value: str) -> str:
    return _Quoted(value[1:-1]) if kind == "string" else value


def _tokens(text: str, source: object) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    line, pos = 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InputError(source, f"line {line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            out.append((kind, m.group(), line))
            if len(out) > MAX_TOKENS:
                raise InputError(source, f"over {MAX_TOKENS} tokens; not a network definition")
        pos = m.end()
    return out


def _get(msg: Message, key: str, default: object = None) -> object:
    for k, v in msg:
        if k == key:
            return v
    return default


def _all(msg: Message, key: str) -> list:
    return [v for k, v in msg if k == key]


def read_caffe_layers(path: str | os.PathLike[str], *, max_bytes: int | None = None
                      ) -> list[ModelLayer]:
    """Every LRN and BatchNorm layer of a Caffe ``.prototxt``, in file order."""
    limit = MAX_PROTOTXT_BYTES if max_bytes is None else max_bytes
    raw = read_bounded(path, limit, what="a prototxt")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, f"not UTF-8 text (byte {e.start}); not a prototxt") from None
    net = parse_prototxt(text.removeprefix("\ufeff"), source=path)  # (a byte-order mark)
    layers = [v for k, v in net if k in ("layer", "layers") and isinstance(v, list)]
    if not layers and any(k == "node" for k, _ in net):
        raise InputError(path, "holds node { } messages, not Caffe's layer { }: a TensorFlow "
                         "graph, not a Caffe network definition")
    out: list[ModelLayer] = []
    for i, layer in enumerate(layers):
        where = f"{path}: layer {_name(layer, i)!r}"
        for key in ("name", "type", "lrn_param", "batch_norm_param"):
            _single(layer, key, where)
        kind = _text(_get(layer, "type", ""))
        if kind == "LRN":  # (Caffe's layer types are case-sensitive: "lrn" is no layer)
            out.append(_lrn_layer(layer, i, path))
        elif kind == "BatchNorm":
            out.append(_bn_layer(layer, i, path, layers))
    return out


#: The fields of Caffe's LRNParameter and BatchNormParameter (caffe.proto).
_FIELDS = {"lrn_param": ("local_size", "alpha", "beta", "norm_region", "k", "engine"),
           "batch_norm_param": ("use_global_stats", "moving_average_fraction", "eps")}


def _single(msg: Message, key: str, where: str) -> None:
    """Refuse a field that is not repeated in caffe.proto given more than once
    (protobuf's text format refuses it; the first was silently taken)."""
    if sum(k == key for k, _ in msg) > 1:
        raise InputError(where, f"{key} is given more than once")


def _param(layer: Message, key: str, where: str) -> Message:
    """The layer's ``key`` message, every field of it known and given once: a
    misspelt field (``locl_size``) would leave its default in place unseen."""
    param = _get(layer, key, [])
    if not isinstance(param, list):
        raise InputError(where, f"{key} is not a message")
    for field, _ in param:
        if field not in _FIELDS[key]:
            raise InputError(where, f"{key} has no field {field!r} (Caffe's: "
                             f"{', '.join(_FIELDS[key])})")
        _single(param, field, f"{where}: {key}")
    return param


def lrn_from_caffe(path: str | os.PathLike[str], layer: str) -> LRNParams:
    """The LRN settings of the Caffe layer called ``layer``."""
    return find_layer(read_caffe_layers(path), layer, kind="lrn", source=path).lrn


def batchnorm_from_caffe(path: str | os.PathLike[str], layer: str) -> BatchNormLayer:
    """The BatchNorm settings of the Caffe layer called ``layer`` (no statistics:
    they are in the ``.caffemodel``; give them in Caffe's stored form)."""
    return find_layer(read_caffe_layers(path), layer, kind="batchnorm", source=path).bn


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _number(value: object, where: str, key: str, kind=float):
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(where, f"{key} is a message, not a number")
    if isinstance(value, _Quoted):
        raise InputError(where, f"{key}: \"{value}\" is a quoted string, not a number")
    # (a float may end in f, as 0.5f; inf and -inf end in f too)
    text = value[:-1] if kind is float and value[-1:] in "fF" and value[-3:].lower() != "inf" \
        else value
    try:
        number = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise InputError(where, f"{key}: {value!r} is not {what}") from None
    return number


def _name(layer: Message, i: int) -> str:
    return _text(_get(layer, "name")) or f"<layer {i}>"


def _lrn_layer(layer: Message, i: int, path) -> ModelLayer:
    name = _name(layer, i)
    where = f"{path}: layer {name!r}"
    param = _param(layer, "lrn_param", where)
    size = _number(_get(param, "local_size"), where, "local_size", int)
    alpha = _number(_get(param, "alpha"), where, "alpha")
    beta = _number(_get(param, "beta"), where, "beta")
    k = _number(_get(param, "k"), where, "k")
    region = _text(_get(param, "norm_region", "ACROSS_CHANNELS")) or "ACROSS_CHANNELS"
    if region not in ("ACROSS_CHANNELS", "WITHIN_CHANNEL", "0", "1"):
        raise InputError(where, f"norm_region {region!r} is not ACROSS_CHANNELS or "
                         "WITHIN_CHANNEL")
    mode = "intra" if region in ("WITHIN_CHANNEL", "1") else "inter"
    try:
        p = resolve_lrn(convention="caffe", mode=mode, n=size, k=k, alpha=alpha, beta=beta)
    except ParameterError as e:
        raise InputError(where, f"unusable lrn_param: {e}") from None
    notes = []
    engine = _text(_get(param, "engine", ""))
    if mode == "intra":
        notes.append("WITHIN_CHANNEL ignores k and uses 1")
        if engine == "CUDNN":
            notes.append("engine: CUDNN routes WITHIN_CHANNEL to cuDNN, which does use k "
                         "(convention cudnn)")
    attrs = {"local_size": p.n, "alpha": p.alpha, "beta": p.beta, "k": p.k,
             "norm_region": "WITHIN_CHANNEL" if mode == "intra" else "ACROSS_CHANNELS"}
    if engine:
        attrs["engine"] = engine
    return ModelLayer(name, "LRN", str(path), attrs, lrn=p, notes=tuple(notes))


def _bn_layer(layer: Message, i: int, path, layers: list) -> ModelLayer:
    name = _name(layer, i)
    where = f"{path}: layer {name!r}"
    param = _param(layer, "batch_norm_param", where)
    eps = _number(_get(param, "eps"), where, "eps")
    eps = 1e-5 if eps is None else eps
    fraction = _number(_get(param, "moving_average_fraction"), where,
                       "moving_average_fraction")
    fraction = 0.999 if fraction is None else fraction
    global_stats = _text(_get(param, "use_global_stats", ""))
    if global_stats not in ("", "true", "false", "True", "False", "1", "0"):
        raise InputError(where, f"use_global_stats {global_stats!r} is not true or false")
    fixed = global_stats.lower() not in ("false", "0")  # a deploy net runs in TEST: true
    if not eps > 0:
        raise InputError(where, f"eps={eps} must be > 0")
    bn = BatchNormLayer(per="channel", eps=eps, statistics="fixed" if fixed else "batch",
                        momentum=fraction, convention="caffe")
    notes = ["no gamma or beta: Caffe's BatchNorm only normalizes",
             "the statistics are in the .caffemodel (blobs: mean sum, variance sum, "
             "scale_factor): give them in Caffe's stored form (mean_sum, var_sum, "
             "scale_factor)"]
    tops = set(_all(layer, "top"))
    for other in layers[i + 1:]:
        if _text(_get(other, "type", "")) == "Scale" and set(_all(other, "bottom")) & tops:
            scale = _get(other, "scale_param", [])
            bias = isinstance(scale, list) and _text(_get(scale, "bias_term", "")) == "true"
            notes.append(f"followed by Scale layer {_name(other, layers.index(other))!r}"
                         + (" (bias_term: true): gamma and beta" if bias else ": gamma")
                         + " live in the .caffemodel")
            break
    attrs = {"eps": eps, "moving_average_fraction": fraction,
             "use_global_stats": "true" if fixed else "false"}
    return ModelLayer(name, "BatchNorm", str(path), attrs, bn=bn, notes=tuple(notes))
