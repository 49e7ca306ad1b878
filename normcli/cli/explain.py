"""``normcli explain lrn|batchnorm``: the arithmetic of one output value."""

from __future__ import annotations

import click

from normcli.cli.command import NormcliCommand
from normcli.cli.conventions import conventions_text
from normcli.cli.options import CHANNELS_LAST, RAW_PNG, bn_options, given, stack
from normcli.cli.options import lrn_options as lrn_flags
from normcli.cli.types import PATH, FloatOrFile

AT_HELP = ("Comma-separated indices into the array as stored, e.g. 0,0,0 for (C, H, W); "
           "for batchnorm the batch index first [default: the first value].")


def parse_position(ctx, param, value: str | None) -> tuple[int, ...] | None:
    """``--at 0,1,2`` → ``(0, 1, 2)``; anything else is a usage error."""
    if value is None:
        return None
    out = []
    for part in (p.strip() for p in value.split(",")):
        try:
            out.append(int(part))
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: {part or '(empty)'!r} is not an integer; give comma-separated "
                "indices such as 0,0,0", ctx, param) from None
    return tuple(out)


def reading_options(f):
    """[INPUT]..., --at, --channels-last, --raw-png, --json."""
    return stack(
        click.argument("inputs", nargs=-1, metavar="[INPUT]...", type=PATH),
        click.option("--at", "position", metavar="POSITION", callback=parse_position,
                     help=AT_HELP),
        CHANNELS_LAST, RAW_PNG,
        click.option("--json", "as_json", is_flag=True,
                     help="Print the numbers as JSON instead of the explanation."),
    )(f)


def show(explain, view, *, as_json: bool, position) -> None:
    """Run ``explain()``; print its explanation as ``view(explained)`` or JSON."""
    from normcli.errors import ParameterError

    try:
        explained = explain()
    except ParameterError as e:
        if e.param != "position":
            raise
        shown = ",".join(map(str, e.value if position is None else position))
        raise click.BadParameter(f"{shown} {e.problem}", param_hint="'--at'") from None
    if as_json:
        import json

        doc = {**explained.explanation.to_dict(), "notes": list(explained.notes)}
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
        return
    from normcli.render import make_consoles

    make_consoles()[1].print(view(explained))


class ExplainGroup(click.Group):
    command_class = NormcliCommand


@click.group(cls=ExplainGroup, short_help="Show the arithmetic of one output value, step by step.")
def explain() -> None:
    """Show, for one position, how LRN or batch norm computes its output value:
    the neighbourhood or the batch's values, each intermediate number and the
    whole computation as an equation.  Without INPUT, the seed's worked
    examples (sample_data/seed_inter.npy, seed_intra.npy, seed_batch/) are used."""


LRN_EXAMPLES = """\b
Examples:
  normcli explain lrn --n 2 --k 0 --alpha 1 --beta 1   # the seed's example: b = 1 / (1² + 1²)
  normcli explain lrn sample_data/seed_inter.npy --mode inter --k 0 --alpha 1 --beta 1 \\
      --n 2 --at 0,0,0
  normcli explain lrn --mode intra --at 4,4
  normcli explain lrn x.npy --convention pytorch --n 4 --at 2,10,10"""


LRN_HELP = f"""Explain one value of `normcli lrn` with the same flags: n, k, alpha and
beta not given take the convention's defaults, as for `normcli lrn`.
Several INPUTs (or a directory) are stacked along a new first axis.  Without
INPUT: the data of the seed's example (seed_inter.npy, or seed_intra.npy with
--mode intra).  What n means, the window and how alpha is divided follow
--convention:

{conventions_text()}
"""


@explain.command("lrn", epilog=LRN_EXAMPLES, help=LRN_HELP,
                 short_help="Explain one LRN value: neighbours, sum of squares, power.")
@reading_options
@lrn_flags
def explain_lrn(inputs, position, channels_last, raw_png, as_json, **settings) -> None:
    from normcli.cli.frameworks import lrn_words
    from normcli.render.explain import lrn_explanation
    from normcli.runs.explain import explain_lrn as run

    show(lambda: run(inputs, position=position, channels_last=channels_last, raw_png=raw_png,
                     **lrn_words(settings)),
         lambda e: lrn_explanation(e.explanation, source=e.source, notes=e.notes),
         as_json=as_json,
         position=position)


BN_EXAMPLES = """\b
Examples:
  normcli explain batchnorm                  # the seed's mini-batch, position 0,0,0,0
  normcli explain batchnorm sample_data/seed_batch/ --at 1,1,2,3
  normcli explain batchnorm sample_data/features/ --per channel --at 0,5,10,10"""


@explain.command("batchnorm", epilog=BN_EXAMPLES,
                 short_help="Explain one batch-norm value: batch values, mean, variance.")
@reading_options
@bn_options()
@click.option("--gamma", type=FloatOrFile(), default=1.0, show_default=True,
              help="Scale: a number, or a .npy of the statistics' shape (as for batchnorm).")
@click.option("--beta", type=FloatOrFile(), default=0.0, show_default=True,
              help="Shift: a number, or a .npy of the statistics' shape.")
@click.option("--stats", metavar="FILE.npz", type=PATH,
              help="Saved statistics (batchnorm --save-stats) instead of the batch's: "
              "inference, as batchnorm --stats.")
def explain_batchnorm(inputs, position, channels_last, raw_png, as_json, per, stats,
                      **settings) -> None:
    """Explain one value of `normcli batchnorm` with batch statistics (or saved
    ones, --stats).  The batch is the stack of the INPUTs (a directory's arrays
    in name order) or, for a single input, its first axis; POSITION starts with
    the batch index.  Without INPUT: the seed's mini-batch of three (4, 4, 4)
    activations."""
    from normcli.render.explain import bn_explanation
    from normcli.runs.explain import explain_batchnorm as run

    per = given("per") if stats else per  # saved statistics say which, unless --per does
    show(lambda: run(inputs, position=position, per=per, stats=stats,
                     channels_last=channels_last, raw_png=raw_png, **settings),
         lambda e: bn_explanation(e.explanation, source=e.source, stats_source=e.stats_file,
                                  notes=e.notes),
         as_json=as_json, position=position)
