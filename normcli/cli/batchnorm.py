"""``normcli batchnorm``: batch normalization over the inputs as one batch."""

from __future__ import annotations

import click

from normcli.cli.command import NormcliCommand
from normcli.cli.frameworks import (
    CHANNEL_AXIS,
    bn_conventions_text,
    bn_framework_options,
    model_layer,
    model_options,
)
from normcli.cli.options import (
    Display,
    bn_options,
    given,
    io_options,
    run_options,
)
from normcli.cli.preview import finish_preview, make_preview, preview_option
from normcli.cli.report import check_stdout, display_options, progress_bar, show
from normcli.cli.types import PATH, FloatOrFile

EXAMPLES = """\b
Examples:
  normcli batchnorm sample_data/seed_batch/ -o normed/
  normcli batchnorm features/ --per channel --save-stats train.npz -o normed/
  normcli batchnorm new/ --stats train.npz -o new_normed/
  normcli batchnorm batch.npy --gamma 2 --beta beta.npy -o out.npy
  normcli lrn features/ -o - | normcli batchnorm - --per channel -o b.npy
  normcli batchnorm photos/ -r --stats photos.npz -o normed/ --resume
  normcli batchnorm batch.npy --convention pytorch --per channel --update-stats running.npz
  normcli batchnorm x.npy --convention keras --per channel --stats keras_stats.npz -o y.npy
  normcli batchnorm x.npy --from-onnx model.onnx --node bn1 -o y.npy

\b
The batch is the stack of all inputs (a directory's arrays in name order,
all of one shape; per channel, images of any size) or, for a single array
input, its first axis. Image outputs map -3..3 to 0..255 (--pixels)."""


class _Command(NormcliCommand):
    """The help's conventions table is made when help is shown (it needs numpy)."""

    def format_help_text(self, ctx, formatter) -> None:
        if "{conventions}" in (self.help or ""):
            self.help = self.help.replace("{conventions}", bn_conventions_text())
        super().format_help_text(ctx, formatter)


HELP = """Batch normalization of the INPUTs (.npy, .npz, image, DIR, -) taken as one batch:
y = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch's mean and
biased variance, or saved ones (--stats). --convention takes a framework's
eps and the form of its stored statistics:

{conventions}

The arrays each stores: `normcli conventions --only batchnorm`.
"""


@click.command(cls=_Command, epilog=EXAMPLES, help=HELP,
               short_help="Batch normalization over the inputs as one batch.")
@io_options()
@bn_options(eps_help="Added to the variance; > 0 [default: the convention's, else 1e-5].",
            eps_default=None)
@bn_framework_options
@model_options
@CHANNEL_AXIS
@click.option("--gamma", type=FloatOrFile(), default="1", show_default=True,
              help="Scale: a number, or a .npy broadcastable to the statistics' shape.")
@click.option("--beta", type=FloatOrFile(), default="0", show_default=True,
              help="Shift: a number, or a .npy broadcastable to the statistics' shape.")
@click.option("--save-stats", metavar="FILE.npz", type=PATH,
              help="Save the batch's mean, var, var_unbiased, count and per.")
@click.option("--stats", metavar="FILE.npz", type=PATH,
              help="Normalize with saved statistics instead of the batch's (inference): "
              "--save-stats's file, or with --convention the framework's stored form.")
@preview_option
def batchnorm(per, eps, gamma, beta, save_stats, stats, preview, inputs, convention,
              update_stats, momentum, from_onnx, from_caffe, node, layer, **kwargs) -> None:
    from normcli import runs
    from normcli.runs.running import bn_defaults, momentum_value

    display, options = Display.pop(kwargs), run_options(kwargs)
    model = dict(from_onnx=from_onnx, from_caffe=from_caffe,
                 layer=model_layer(node, layer, from_onnx, from_caffe))
    from_model = from_onnx is not None or from_caffe is not None
    # saved statistics and model layers say which, unless --per does
    per = given("per") if stats or from_model else per
    framework = dict(convention=convention, update_stats=update_stats,
                     momentum=momentum_value(momentum), **model)
    if from_model:
        gamma, beta = (given(name) if given(name) is not None else default
                       for name, default in (("gamma", 1.0), ("beta", 0.0)))
        shown_eps = f"layer {model['layer']}'s"
    else:
        shown_eps = f"{bn_defaults(convention, eps)[1]:g}"
    check_stdout(display, options)
    shown = {name: f"{v:g}" if isinstance(v, float) else v for name, v in
             (("gamma", gamma), ("beta", beta))}
    fit = f"saved statistics {stats}" if stats else "batch statistics"
    recorder = make_preview(
        preview, title="batch norm" + ("" if stats else f" per {per}"),
        subtitle=f"{fit}: eps={shown_eps}, gamma={shown['gamma']}, beta={shown['beta']}",
        force=options["force"], channels_last=options["channels_last"])
    with progress_bar(display) as bar:
        report = runs.batchnorm(inputs, per=per, eps=eps, gamma=gamma, beta=beta, stats=stats,
                                save_stats=save_stats, progress=bar, preview=recorder,
                                **framework,
                                **options, **display_options(display))
    show(report, display)
    finish_preview(recorder, quiet=not display.table)
