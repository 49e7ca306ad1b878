"""Porting between frameworks, over files: which normalization an output is, its
parameters in another convention, and the layers of a model file.

The numbers are :mod:`normcli.ops.identify` and :mod:`normcli.ops.translate`'s;
this module reads the files, accepts each framework's words for the
parameters, and takes LRN and batch-norm settings from model files, so that
the commands stay a parse of flags and a call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from normcli.errors import InputError, ParameterError, UsageError
from normcli.ops.conventions import LRNParams, resolve_lrn
from normcli.ops.words import lrn_words
from normcli.runs.inputs import load_stack
from normcli.runs.options import RunOptions

__all__ = ["lrn_settings", "bn_model", "from_model", "identify", "translate", "layers"]


def lrn_settings(
    *,
    mode: str | None = None,
    convention: str | None = None,
    n: int | None = None,
    k: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    size: int | None = None,
    local_size: int | None = None,
    depth_radius: int | None = None,
    bias: float | None = None,
    from_onnx: str | os.PathLike[str] | None = None,
    from_caffe: str | os.PathLike[str] | None = None,
    layer: str | None = None,
) -> LRNParams:
    """LRN settings from flags in any framework's words, or from a model's layer.

    ``size``/``local_size`` (window sizes), ``depth_radius`` (TensorFlow's
    radius) and ``bias`` (= ``k``) are accepted where they mean what the
    convention's ``n`` and ``k`` mean (:func:`normcli.ops.words.lrn_words`).
    ``from_onnx`` or ``from_caffe`` with ``layer`` (the node or layer name)
    take every setting from that layer; then no other setting may be given.
    """
    model = from_onnx if from_onnx is not None else from_caffe
    if model is not None:
        given = [name for name, value in (("mode", mode), ("n", n), ("k", k), ("alpha", alpha),
                                          ("beta", beta), ("size", size),
                                          ("local_size", local_size),
                                          ("depth_radius", depth_radius), ("bias", bias))
                 if value is not None]
        if given or convention is not None:
            names = ", ".join("--" + name.replace("_", "-") for name in given or ["convention"])
            raise UsageError(f"{names}: the model's layer gives every LRN setting; leave them "
                             "out", param=(given or ["convention"])[0])
        return _model_layer(from_onnx, from_caffe, layer, "lrn").lrn
    words = lrn_words(convention or "seed", n=n, size=size, local_size=local_size,
                      depth_radius=depth_radius, k=k, bias=bias)
    return resolve_lrn(mode=mode or "inter", alpha=alpha, beta=beta, **words)


def bn_model(*, from_onnx=None, from_caffe=None, layer: str | None = None):
    """The :class:`~normcli.files.models.BatchNormLayer` a model file gives, or None."""
    if from_onnx is None and from_caffe is None:
        if layer is not None:
            raise UsageError("--node/--layer names a layer of --from-onnx or --from-caffe",
                             param="layer", value=layer)
        return None
    return _model_layer(from_onnx, from_caffe, layer, "batchnorm").bn


def from_model(model, source, layer: str, *, per, eps, convention, gamma, beta, params, stats,
               momentum, updating: bool = False):
    """``(per, eps, convention, gamma, beta, params, stats, momentum)`` for the
    batch-norm run from a model's layer (:func:`bn_model`); what the layer gives
    may not be given again (``momentum``: the layer's when ``updating``
    running statistics, unless given).  Caffe's prototxt holds neither gamma and beta (its Scale
    layer's are in the ``.caffemodel``: ``gamma``/``beta`` may give them) nor
    the stored statistics (``stats`` gives them)."""
    from normcli.ops.bn_conventions import DEFAULT_MOMENTUM
    from normcli.ops.moments import BatchStats

    caffe = model.convention == "caffe"
    source = os.fspath(source)
    taken = [("per", per is not None), ("eps", eps is not None), ("params", params is not None),
             ("convention", convention is not None)]
    if not caffe:
        taken += [("gamma", not _is_value(gamma, 1.0)), ("beta", not _is_value(beta, 0.0))]
    if model.statistics == "fixed" and not caffe:
        taken.append(("stats", stats is not None))
    given = [name for name, is_given in taken if is_given]
    if given:
        names = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{names}: the model's layer {layer!r} gives that; leave it out",
                         param=given[0])
    if model.statistics == "batch":
        if stats is not None:
            raise UsageError(f"--stats: layer {layer!r} normalizes with the batch's statistics "
                             "(training mode)", param="stats")
    elif not caffe:
        if not model.has_stats:
            raise InputError(source, f"layer {layer!r} has no stored mean and variance")
        stats = BatchStats(model.mean, model.var, 0, model.per)
    elif stats is None:
        raise InputError(source, f"layer {layer!r} normalizes with stored statistics "
                         "(use_global_stats: true), which live in the .caffemodel: give them "
                         "with --stats FILE.npz (mean_sum, var_sum, scale_factor)")
    if not caffe:
        gamma, beta = model.gamma, model.beta
    if updating and momentum == DEFAULT_MOMENTUM and model.momentum is not None:
        from normcli.ops.bn_conventions import check_momentum, get_bn_convention

        try:  # (the file's value: its error names the file, it is no --momentum flag's)
            check_momentum(get_bn_convention(model.convention), model.momentum)
        except ParameterError as e:
            raise InputError(source, f"layer {layer!r}: its momentum {e.problem}") from None
        momentum = model.momentum
    return model.per, model.eps, model.convention, gamma, beta, None, stats, momentum


def _is_value(value, default: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == default


def _model_layer(from_onnx, from_caffe, layer, kind: str):
    from normcli.files import find_layer

    if from_onnx is not None and from_caffe is not None:
        raise UsageError("--from-onnx and --from-caffe exclude each other", param="from_onnx")
    if layer is None:
        flag = "--node" if from_onnx is not None else "--layer"
        raise UsageError(f"{flag} names the layer of the model to use", param="layer")
    if from_onnx is not None:
        from normcli.files.onnx_model import read_onnx_layers

        found = read_onnx_layers(from_onnx)
        return find_layer(found, layer, kind=kind, source=os.fspath(from_onnx))
    from normcli.files.caffe_prototxt import read_caffe_layers

    found = read_caffe_layers(from_caffe)
    return find_layer(found, layer, kind=kind, source=os.fspath(from_caffe))


def identify(inputs: Sequence[str | os.PathLike[str]], outputs: Sequence[str | os.PathLike[str]],
             *, channels_last: bool = False, raw_png: bool = False, **settings):
    """Which normalizations make ``outputs`` from ``inputs`` (each one file, or
    several stacked as one batch): ``(result, input label, output label)``.

    ``settings`` go to :func:`normcli.ops.identify.identify` (``normalizations``,
    ``max_half``, ``tolerance``...).  Raises :class:`InputError` when the two
    differ in shape, naming the output.
    """
    from normcli.ops.identify import identify as identify_op

    options = RunOptions(channels_last=channels_last, raw_png=raw_png, allow_nonfinite=True)
    if sum(os.fspath(p) == "-" for p in [*inputs, *outputs]) > 1:
        raise UsageError("- (standard input) can be read once: give the input or the output "
                         "as a file", param="inputs", value="-")
    x, x_label, _ = load_stack(inputs, options)
    y, y_label, _ = load_stack(outputs, options)
    if x.shape != y.shape:
        raise InputError(y_label, f"has shape {y.shape} but {x_label} has {x.shape}; an "
                         "output has the shape of its input")
    try:
        result = identify_op(x, y, channels_last=channels_last, **settings)
    except ParameterError as e:
        if e.param in ("x", "y"):
            raise InputError(x_label if e.param == "x" else y_label, str(e)) from None
        raise
    return result, x_label, y_label


def translate(from_convention: str, *, to: str = "all", mode: str = "inter", **words):
    """The LRN of ``from_convention`` in another convention (or all), its
    parameters given in that framework's words (see :func:`lrn_settings`)."""
    from normcli.ops.translate import translate_params

    alpha, beta = words.pop("alpha", None), words.pop("beta", None)
    source = lrn_settings(mode=mode, convention=from_convention, alpha=alpha, beta=beta,
                          **words)
    return translate_params(source, to=to)


def layers(model: str | os.PathLike[str]):
    """Every LRN and batch-norm layer of an ``.onnx`` model or a Caffe ``.prototxt``."""
    from normcli.files import read_layers

    return read_layers(model)
