"""Flags in the frameworks' words, and settings taken from model files.

``--size``, ``--local-size``, ``--depth-radius`` and ``--bias`` (declared with
the LRN flags) mean n and k where the chosen convention's n and k mean them;
``--from-onnx MODEL --node NAME`` and ``--from-caffe PROTOTXT --layer NAME`` take
every setting of a layer.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from normcli.cli.options import stack


def lrn_words(settings: dict) -> dict:
    """``settings`` with the frameworks' words (``size``, ``local_size``,
    ``depth_radius``, ``bias``) turned into ``n`` and ``k`` where they mean them."""
    from normcli.ops.words import lrn_words as words

    names = ("n", "size", "local_size", "depth_radius", "k", "bias")
    given = {name: settings.pop(name, None) for name in names}
    return {**settings, **words(settings.get("convention", "seed"), **given)}


def model_options(f: Callable) -> Callable:
    """``--from-onnx MODEL --node NAME`` and ``--from-caffe PROTOTXT --layer NAME``."""
    from normcli.cli.types import PATH

    return stack(
        click.option("--from-onnx", type=PATH, metavar="MODEL.onnx",
                     help="Take the settings from a node of an ONNX model (needs the onnx "
                     "extra)."),
        click.option("--node", metavar="NAME", help="The node of --from-onnx."),
        click.option("--from-caffe", type=PATH, metavar="PROTOTXT",
                     help="Take the settings from a layer of a Caffe deploy.prototxt."),
        click.option("--layer", metavar="NAME", help="The layer of --from-caffe."),
    )(f)


def model_layer(node: str | None, layer: str | None, from_onnx, from_caffe) -> str | None:
    """The layer name: ``--node`` goes with ``--from-onnx``, ``--layer`` with ``--from-caffe``."""
    if node is not None and from_onnx is None:
        raise click.UsageError("--node names a node of --from-onnx MODEL.onnx")
    if layer is not None and from_caffe is None:
        raise click.UsageError("--layer names a layer of --from-caffe PROTOTXT")
    return node if node is not None else layer
