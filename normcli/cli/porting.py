"""``normcli identify``, ``translate`` and ``layers``: porting models between frameworks."""

from __future__ import annotations

import json

import click

from normcli.cli.command import NormcliCommand
from normcli.cli.options import CHANNELS_LAST, RAW_PNG, stack


def _print(view) -> None:
    from normcli.render.console import make_consoles

    make_consoles()[1].print(view)


def _json(doc) -> None:
    click.echo(json.dumps(doc, indent=2, allow_nan=False))


ID_EXAMPLES = """\b
Examples:
  normcli identify x.npy y.npy                 # which LRN or batch norm made y from x
  normcli identify conv1/ norm1/ --json        # a batch of maps in, its outputs
  normcli identify x_nhwc.npy y_nhwc.npy --channels-last

\b
Exit status 0 when something reproduces OUTPUT, 1 when nothing does (the
closest is shown then, with where it differs)."""


@click.command(cls=NormcliCommand, epilog=ID_EXAMPLES,
               short_help="Which normalizations reproduce OUTPUT from INPUT.")
@click.argument("input_", metavar="INPUT", type=click.Path())
@click.argument("output", metavar="OUTPUT", type=click.Path())
@CHANNELS_LAST
@RAW_PNG
@click.option("--only", type=click.Choice(["lrn", "batchnorm"]), default=None,
              help="Look for one normalization only [default: both].")
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
def identify(input_, output, channels_last, raw_png, only, as_json) -> None:
    """Every LRN (convention, mode, n, k, alpha, beta, grouped by window) and batch
    norm (per, eps, batch or fixed statistics) that turns INPUT into OUTPUT, with
    its largest relative error; robust to float32 rounding of OUTPUT.  INPUT and
    OUTPUT are files or directories (stacked as one batch), read as everywhere in
    normcli."""
    from normcli.runs.porting import identify as run

    settings = {"normalizations": (only,)} if only else {}
    result, _, _ = run([input_], [output], channels_last=channels_last, raw_png=raw_png,
                       **settings)
    if as_json:
        _json(result.to_dict())
    else:
        from normcli.render.porting import identify_view

        _print(identify_view(result))
    if not result.exact:
        click.get_current_context().exit(1)


TR_EXAMPLES = """\b
Examples:
  normcli translate --from caffe --local-size 5 --alpha 1e-4 --beta 0.75 --to tensorflow
  normcli translate --from tensorflow --depth-radius 2 --bias 1 --alpha 2e-5 --to all
  normcli translate --from pytorch --size 4 --to onnx --json"""


def _words(f):
    """The LRN parameters in any framework's words."""
    return stack(
        click.option("--n", "n", type=int, help="Window parameter in the source convention."),
        click.option("--size", type=int, help="Window size (pytorch, onnx, cudnn, caffe)."),
        click.option("--local-size", type=int, help="Window size, Caffe's word."),
        click.option("--depth-radius", type=int, help="TensorFlow's radius (window 2r+1)."),
        click.option("--k", "k", type=float, help="Additive constant."),
        click.option("--bias", type=float, help="k, TensorFlow's and ONNX's word."),
        click.option("--alpha", type=float, help="Scale of the sum of squares."),
        click.option("--beta", "beta", type=float, help="Exponent."),
    )(f)


@click.command(cls=NormcliCommand, epilog=TR_EXAMPLES,
               short_help="LRN parameters from one convention to another.")
@click.option("--from", "from_", required=True, metavar="CONVENTION",
              help="The convention the parameters are in (case-insensitive).")
@click.option("--to", default="all", show_default=True, metavar="CONVENTION|all",
              help="The convention to translate to, or all of them.")
@click.option("--mode", type=click.Choice(["inter", "intra"]), default="inter",
              show_default=True, help="Across channels, or within a channel.")
@_words
@click.option("--json", "as_json", is_flag=True, help="Print the translations as JSON.")
def translate(from_, to, mode, as_json, **words) -> None:
    """The same LRN in another convention: its n, k, alpha and beta, or why no exact
    equivalent exists (an even window the target cannot place, Caffe's odd sizes,
    cuDNN's limits, a k the target ignores) with the closest and its largest error
    on random data.  Every translation is checked by running both kernels."""
    from normcli.runs.porting import translate as run

    result = run(from_, to=to, mode=mode, **words)
    if as_json:
        _json(result.to_dict())
    else:
        from normcli.render.porting import translate_view

        _print(translate_view(result))


LY_EXAMPLES = """\b
Examples:
  normcli layers alexnet.onnx
  normcli layers deploy.prototxt --json"""


@click.command(cls=NormcliCommand, epilog=LY_EXAMPLES,
               short_help="The LRN and batch-norm layers of a model file.")
@click.argument("model", metavar="MODEL", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the layers as JSON.")
def layers(model, as_json) -> None:
    """Every LRN and BatchNormalization node of an ONNX model (MODEL.onnx, needs
    `pip install "normcli[onnx]"`) or LRN and BatchNorm layer of a Caffe
    deploy.prototxt, with its parameters; for LRN, its equivalent in every
    convention (flagging what onnxruntime refuses, such as even sizes)."""
    from normcli.runs.porting import layers as run

    found = run(model)
    if as_json:
        from normcli.render.porting import layers_data

        _json(layers_data(found, source=model))
    else:
        from normcli.render.porting import layers_view
        from normcli.render.text import printable

        _print(layers_view(found, source=printable(model)))

