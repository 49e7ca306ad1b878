"""``normcli batchnorm``: batch normalization over the inputs as one batch."""

from __future__ import annotations

import math

import click

from normcli.cli.options import FloatOrFile, IOOptions, io_options
from normcli.cli.preview import preview_option

EXAMPLES = """\b
Examples:
  normcli batchnorm sample_data/seed_batch/ -o normed/
  normcli batchnorm features/ --per channel --save-stats train.npz -o normed/
  normcli batchnorm new/ --stats train.npz -o new_normed/
  normcli batchnorm batch.npy --gamma 2 --beta beta.npy -o out.npy
  normcli lrn features/ -o - | normcli batchnorm - --per channel -o b.npy

\b
The batch is the stack of all inputs (a directory's arrays in name order,
all of one shape) or, for a single input, its first axis."""


@click.command(
    epilog=EXAMPLES,
    short_help="Batch normalization over the inputs as one batch.",
)
@io_options()
@click.option(
    "--per", type=click.Choice(["activation", "channel"]), default="activation",
    show_default=True,
    help="activation: a mean and variance for every position over the batch (the seed's "
    "form, BatchNorm1d on the flattened samples); channel: one per channel over batch and "
    "space (BatchNorm2d).",
)
@click.option("--eps", type=float, default=1e-5, show_default=True,
              help="Added to the variance; > 0.")
@click.option("--gamma", type=FloatOrFile(), default="1", show_default=True,
              help="Scale: a number, or a .npy broadcastable to the statistics' shape.")
@click.option("--beta", type=FloatOrFile(), default="0", show_default=True,
              help="Shift: a number, or a .npy broadcastable to the statistics' shape.")
@click.option("--save-stats", metavar="FILE.npz",
              help="Save the batch's mean, var, var_unbiased, count and per.")
@click.option("--stats", "stats_file", metavar="FILE.npz",
              help="Normalize with saved statistics instead of the batch's (inference).")
@preview_option
def batchnorm(per, eps, gamma, beta, save_stats, stats_file, preview, **kwargs) -> None:
    """Batch normalization of the INPUTs (.npy, .npz, PNG, DIR, -) taken as one batch:
    y = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch's mean and
    biased variance, or saved ones (--stats)."""
    io = IOOptions.pop(kwargs)
    if save_stats and stats_file:
        raise click.UsageError("--save-stats and --stats exclude each other: fit statistics "
                               "on one run, apply them on another")
    if not (math.isfinite(eps) and eps > 0):
        raise click.BadParameter(f"{eps} must be finite and > 0", param_hint="'--eps'")
    for name, value in (("--save-stats", save_stats), ("--stats", stats_file)):
        if value is not None and not value.lower().endswith(".npz"):
            raise click.BadParameter(f"{value!r} must be a .npz file", param_hint=f"'{name}'")
    source = click.get_current_context().get_parameter_source("per")
    from normcli.cli.pipeline import process_batch
    from normcli.cli.preview import finish_preview, start_preview

    fit = f"saved statistics {stats_file}" if stats_file else "batch statistics"
    shown = {name: f"{v:g}" if isinstance(v, float) else v for name, v in
             (("gamma", gamma), ("beta", beta))}
    recorder = start_preview(
        preview, io, title="batch norm" + ("" if stats_file else f" per {per}"),
        subtitle=f"{fit}: eps={eps:g}, gamma={shown['gamma']}, beta={shown['beta']}",
        others=(io.output, save_stats))
    process_batch(io, per=per, per_given=source == click.core.ParameterSource.COMMANDLINE,
                  eps=eps, gamma=gamma, beta=beta, save_stats=save_stats, stats_file=stats_file,
                  preview=recorder)
    finish_preview(recorder, quiet=io.quiet or io.as_json)
