"""``normcli batchnorm``: batch normalization over the inputs as one batch."""

from __future__ import annotations

import click

from normcli.cli.command import NormcliCommand
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

\b
The batch is the stack of all inputs (a directory's arrays in name order,
all of one shape; per channel, images of any size) or, for a single array
input, its first axis. Image outputs map -3..3 to 0..255 (--pixels)."""


@click.command(cls=NormcliCommand, epilog=EXAMPLES,
               short_help="Batch normalization over the inputs as one batch.")
@io_options()
@bn_options()
@click.option("--gamma", type=FloatOrFile(), default="1", show_default=True,
              help="Scale: a number, or a .npy broadcastable to the statistics' shape.")
@click.option("--beta", type=FloatOrFile(), default="0", show_default=True,
              help="Shift: a number, or a .npy broadcastable to the statistics' shape.")
@click.option("--save-stats", metavar="FILE.npz", type=PATH,
              help="Save the batch's mean, var, var_unbiased, count and per.")
@click.option("--stats", metavar="FILE.npz", type=PATH,
              help="Normalize with saved statistics instead of the batch's (inference).")
@preview_option
def batchnorm(per, eps, gamma, beta, save_stats, stats, preview, inputs, **kwargs) -> None:
    """Batch normalization of the INPUTs (.npy, .npz, image, DIR, -) taken as one batch:
    y = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch's mean and
    biased variance, or saved ones (--stats)."""
    from normcli import runs

    display, options = Display.pop(kwargs), run_options(kwargs)
    per = given("per") if stats else per  # saved statistics say which, unless --per does
    check_stdout(display, options)
    shown = {name: f"{v:g}" if isinstance(v, float) else v for name, v in
             (("gamma", gamma), ("beta", beta))}
    fit = f"saved statistics {stats}" if stats else "batch statistics"
    recorder = make_preview(
        preview, title="batch norm" + ("" if stats else f" per {per}"),
        subtitle=f"{fit}: eps={eps:g}, gamma={shown['gamma']}, beta={shown['beta']}",
        force=options["force"], channels_last=options["channels_last"])
    with progress_bar(display) as bar:
        report = runs.batchnorm(inputs, per=per, eps=eps, gamma=gamma, beta=beta, stats=stats,
                                save_stats=save_stats, progress=bar, preview=recorder,
                                **options, **display_options(display))
    show(report, display)
    finish_preview(recorder, quiet=not display.table)
