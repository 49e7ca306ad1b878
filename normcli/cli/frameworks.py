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


CHANNEL_AXIS = click.option(
    "--channel-axis", type=int, metavar="AXIS",
    help="The axis of the channels in each input array (negative from the end: Keras's and "
    "MXNet's axis), for layouts neither channels first nor last; outputs keep the layout.")


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


#: The batch-norm conventions' names and aliases, as in
#: :data:`normcli.ops.bn_conventions.BN_CONVENTIONS` (written out here: that module
#: imports numpy, and ``normcli --help`` must not; a test keeps them equal).
BN_NAMES = ("pytorch", "tensorflow", "keras", "onnx", "caffe", "mxnet")
BN_ALIASES = {"torch": "pytorch", "tf": "tensorflow", "tf.keras": "keras"}


def bn_framework_options(f: Callable) -> Callable:
    """``--convention``, ``--update-stats`` and ``--momentum`` of ``batchnorm``."""
    from normcli.cli.types import PATH, ConventionChoice

    return stack(
        click.option("--convention", type=ConventionChoice(BN_NAMES, BN_ALIASES),
                     help="A framework's batch norm: its eps and the form of its stored "
                     "statistics for --stats and --update-stats (the table above; any case)."),
        click.option("--update-stats", metavar="RUNNING.npz", type=PATH,
                     help="Update the framework's running statistics in this .npz with the "
                     "batch's, its way (a missing file starts from its initial state), and "
                     "write them with the outputs."),
        click.option("--momentum", metavar="M|none",
                     help="For --update-stats, in the framework's meaning; none: PyTorch's "
                     "cumulative average [default: the convention's]."),
    )(f)


def bn_conventions_text() -> str:
    """The batch-norm conventions as a plain-text table for ``--help``."""
    from normcli.ops.bn_conventions import BN_CONVENTIONS

    rows = [("name", "eps", "stored var", "default momentum (it weighs)")]
    for c in BN_CONVENTIONS.values():
        rows.append((c.name, f"{c.eps:g}", c.stored_var,
                     f"{c.momentum_name}={c.momentum:g} (the {c.momentum_weights})"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    return "\b\n" + "\n".join(lines)
