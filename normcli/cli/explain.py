"""``normcli explain lrn|batchnorm``: the arithmetic of one output value."""

from __future__ import annotations

import click

from normcli.cli.options import FloatOrFile, lrn_options

AT_HELP = ("Comma-separated indices into the array as stored, e.g. 0,0,0 for (C, H, W); "
           "for batchnorm the batch index first [default: the first value].")


def parse_position(ctx, param, value: str | None) -> tuple[int, ...] | None:
    """``--at 0,1,2`` → ``(0, 1, 2)``; anything else is a usage error."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    out = []
    for part in parts:
        try:
            out.append(int(part))
        except ValueError:
            shown = part or "(empty)"
            raise click.BadParameter(
                f"{value!r}: {shown!r} is not an integer; give comma-separated indices such "
                "as 0,0,0", ctx, param) from None
    return tuple(out)


def _at_option(f):
    return click.option("--at", "position", metavar="POSITION", callback=parse_position,
                        help=AT_HELP)(f)


def _reading_options(f):
    f = click.option("--json", "as_json", is_flag=True,
                     help="Print the numbers as JSON instead of the explanation.")(f)
    f = click.option("--raw-png", is_flag=True,
                     help="Read PNG pixels as stored integers instead of scaled to [0, 1].")(f)
    f = click.option("--channels-last", is_flag=True,
                     help="Arrays are (..., H, W, C) instead of (..., C, H, W).")(f)
    return click.argument("inputs", nargs=-1, metavar="[INPUT]...")(f)


def _load(inputs: tuple[str, ...], *, channels_last: bool, raw_png: bool,
          allow_nonfinite: bool = True):
    """``(array, label, stacked)``: one input as stored, or several stacked along a new
    first axis (``stacked`` true)."""
    import numpy as np

    from normcli.cli.options import IOOptions
    from normcli.cli.pipeline import load_checked, open_sources
    from normcli.errors import InputError

    io = IOOptions(inputs=inputs, channels_last=channels_last, raw_png=raw_png,
                   allow_nonfinite=allow_nonfinite)
    sources = open_sources(io)
    arrays = [load_checked(s, io) for s in sources]
    if len(arrays) == 1:
        return arrays[0], sources[0].label, False
    for s, a in zip(sources[1:], arrays[1:], strict=True):
        if a.shape != arrays[0].shape:
            raise InputError(s.label, f"has shape {a.shape} but {sources[0].label} has "
                             f"{arrays[0].shape}; stacked inputs need one shape")
    return np.stack(arrays), f"{len(arrays)} inputs stacked ({sources[0].label}, …)", True


def _checked_position(shape, position, names) -> tuple[int, ...]:
    from normcli.errors import ParameterError
    from normcli.ops.explain import check_position

    if position is None:
        position = (0,) * len(shape)
    try:
        return check_position(shape, position, names)
    except ParameterError as e:
        raise click.BadParameter(f"{','.join(map(str, position))} {e.problem}",
                                 param_hint="'--at'") from None


def _show(explanation, view) -> None:
    import json

    from rich.console import Console

    if click.get_current_context().params.get("as_json"):
        click.echo(json.dumps(explanation.to_dict(), indent=2, allow_nan=False))
    else:
        Console().print(view)


@click.group(short_help="Show the arithmetic of one output value, step by step.")
def explain() -> None:
    """Show, for one position, how LRN or batch norm computes its output value:
    the neighbourhood or the batch's values, each intermediate number and the
    whole computation as an equation.  Without INPUT, the seed's worked
    examples (sample_data/seed_inter.npy, seed_intra.npy, seed_batch/) are used."""


LRN_EXAMPLES = """\b
Examples:
  normcli explain lrn                        # the seed's example: b = 1 / (1² + 1²) = 0.5
  normcli explain lrn sample_data/seed_inter.npy --mode inter --k 0 --alpha 1 --beta 1 \\
      --n 2 --at 0,0,0
  normcli explain lrn --mode intra --at 4,4
  normcli explain lrn x.npy --convention pytorch --n 4 --at 2,10,10"""


@explain.command("lrn", epilog=LRN_EXAMPLES,
                 short_help="Explain one LRN value: neighbours, sum of squares, power.")
@_reading_options
@_at_option
@lrn_options
def explain_lrn(inputs, position, mode, convention, n, k, alpha, beta, channels_last, raw_png,
                as_json) -> None:
    """Explain one value of `normcli lrn` with the same flags.  Several INPUTs
    (or a directory) are stacked along a new first axis.  Without INPUT: the
    seed's example (seed_inter.npy, or seed_intra.npy with --mode intra), with
    the seed's (n, k, alpha, beta) = (2, 0, 1, 1) unless given."""
    from normcli.ops.conventions import resolve_lrn

    builtin = not inputs
    if builtin and convention == "seed" and (n, k, alpha, beta) == (None,) * 4:
        from normcli.ops.explain import SEED_EXAMPLE_PARAMS as seed

        n, k, alpha, beta = seed["n"], seed["k"], seed["alpha"], seed["beta"]
    try:
        params = resolve_lrn(mode=mode, convention=convention, n=n, k=k, alpha=alpha, beta=beta)
    except ValueError as e:
        raise click.UsageError(str(e)) from None

    from normcli.errors import InputError
    from normcli.ops.explain import SEED_INTER, SEED_INTRA, axis_names
    from normcli.ops.explain import explain_lrn as explain_op
    from normcli.render.explain import lrn_explanation

    if builtin:
        x = SEED_INTRA if mode == "intra" else SEED_INTER
        label = ("the built-in example (the seed's worked example "
                 + ("2, sample_data/seed_intra.npy)" if mode == "intra"
                    else "1, sample_data/seed_inter.npy)"))
        channels_last = False
    else:
        x, label, _ = _load(inputs, channels_last=channels_last, raw_png=raw_png)
    if x.ndim < 2:
        raise InputError(label, f"has shape {x.shape}; LRN needs at least 2 dimensions (H, W)")
    pos = _checked_position(x.shape, position, axis_names(x.ndim, channels_last=channels_last))
    try:
        e = explain_op(x, pos, mode=params.mode, convention=convention, n=params.n, k=params.k,
                       alpha=params.alpha, beta=params.beta, channels_last=channels_last)
    except ValueError as err:
        raise InputError(label, str(err)) from None
    _show(e, lrn_explanation(e, source=label))


BN_EXAMPLES = """\b
Examples:
  normcli explain batchnorm                  # the seed's mini-batch, position 0,0,0,0
  normcli explain batchnorm sample_data/seed_batch/ --at 1,1,2,3
  normcli explain batchnorm sample_data/features/ --per channel --at 0,5,10,10"""


@explain.command("batchnorm", epilog=BN_EXAMPLES,
                 short_help="Explain one batch-norm value: batch values, mean, variance.")
@_reading_options
@_at_option
@click.option("--per", type=click.Choice(["activation", "channel"]), default="activation",
              show_default=True,
              help="activation: statistics of each position over the batch; channel: of each "
              "channel over batch and space.")
@click.option("--eps", type=float, default=1e-5, show_default=True,
              help="Added to the variance; > 0.")
@click.option("--gamma", type=FloatOrFile(), default=1.0, show_default=True,
              help="Scale: a number, or a .npy of the statistics' shape (as for batchnorm).")
@click.option("--beta", type=FloatOrFile(), default=0.0, show_default=True,
              help="Shift: a number, or a .npy of the statistics' shape.")
@click.option("--stats", "stats_file", metavar="FILE.npz",
              help="Saved statistics (batchnorm --save-stats) instead of the batch's: "
              "inference, as batchnorm --stats.")
def explain_batchnorm(inputs, position, per, eps, gamma, beta, stats_file, channels_last,
                      raw_png, as_json) -> None:
    """Explain one value of `normcli batchnorm` with batch statistics (or saved
    ones, --stats).  The batch is the stack of the INPUTs (a directory's arrays
    in name order) or, for a single input, its first axis; POSITION starts with
    the batch index.  Without INPUT: the seed's mini-batch of three (4, 4, 4)
    activations."""
    import math

    if not (math.isfinite(eps) and eps > 0):
        raise click.BadParameter(f"{eps} must be finite and > 0", param_hint="'--eps'")

    from normcli.errors import InputError
    from normcli.ops.explain import SEED_BATCH, axis_names, explain_batch_norm
    from normcli.render.explain import bn_explanation

    if not inputs:
        x, label = SEED_BATCH, ("the built-in example (the seed's mini-batch of three "
                                "activations, sample_data/seed_batch/)")
        channels_last = False
    else:
        x, label, _ = _load(inputs, channels_last=channels_last, raw_png=raw_png)
    if x.ndim < 2:
        raise InputError(label, f"has shape {x.shape}; a batch needs at least 2 dimensions "
                         "(N, ...)")
    names = axis_names(x.ndim, channels_last=channels_last, batch=True)
    pos = _checked_position(x.shape, position, names)
    stats = None
    if stats_file is not None:
        from normcli.cli.pipeline import read_stats_file

        stats = read_stats_file(stats_file)
        source = click.get_current_context().get_parameter_source("per")
        if source is click.core.ParameterSource.COMMANDLINE and per != stats.per:
            raise InputError(stats_file, f"holds statistics per {stats.per}, but --per {per} "
                             "was given")
        per = stats.per
    from normcli.files import read_npy

    params = {name: read_npy(v, source=v) if isinstance(v, str) else v
              for name, v in (("gamma", gamma), ("beta", beta))}
    try:
        e = explain_batch_norm(x, pos, per=per, eps=eps, channels_last=channels_last,
                               stats=stats, **params)
    except ValueError as err:
        text = str(err)
        files = {"gamma": gamma, "beta": beta}
        where = next((f for n, f in files.items() if text.startswith(n) and isinstance(f, str)),
                     stats_file if stats is not None and "statistics are" in text else label)
        raise InputError(where, text) from None
    _show(e, bn_explanation(e, source=label, stats_source=stats_file))
