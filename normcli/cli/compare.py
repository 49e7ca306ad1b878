"""``normcli compare``: LRN (inter, intra) and batch norm of the same input, side by side."""

from __future__ import annotations

import click

from normcli.cli.command import NormcliCommand
from normcli.cli.options import (
    ALLOW_NONFINITE,
    CHANNELS_LAST,
    FORCE,
    RAW_PNG,
    Display,
    bn_options,
    stack,
)
from normcli.cli.preview import finish_preview, make_preview, preview_option
from normcli.cli.report import progress_bar, show_hints
from normcli.cli.types import PATH

EXAMPLES = """\b
Examples:
  normcli compare sample_data/features/img00_conv1.npy
  normcli compare sample_data/seed_batch/ --n 3 --preview compare.png
  normcli compare x.npy --convention caffe --per channel --json

\b
The batch for BN is the stack of the inputs or, for one input, its first axis.
Several inputs are streamed (as by batchnorm). Each column's histogram spans
that column's own min..max (over several inputs, in power-of-two bins)."""


def lrn_settings(f):
    """The LRN flags of compare (both modes use them)."""
    from normcli.ops.conventions import CONVENTIONS

    return stack(
        click.option("--convention", type=click.Choice(list(CONVENTIONS)), default="seed",
                     show_default=True, help="LRN convention (see `normcli conventions`)."),
        click.option("--n", "n", type=int, help="LRN window parameter [default: the "
                     "convention's]."),
        click.option("--k", "k", type=float, help="LRN additive constant [default: the "
                     "convention's]."),
        click.option("--alpha", type=float, help="LRN scale [default: the convention's]."),
        click.option("--beta", "beta", type=float, help="LRN exponent [default: the "
                     "convention's]."),
    )(f)


@click.command(cls=NormcliCommand, epilog=EXAMPLES,
               short_help="LRN inter, LRN intra and batch norm of the same input, side by side.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", type=PATH)
@lrn_settings
@bn_options(eps_help="Batch-norm epsilon (gamma 1, beta 0).")
@CHANNELS_LAST
@RAW_PNG
@ALLOW_NONFINITE
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON instead.")
@preview_option
@FORCE
def compare(inputs, convention, n, k, alpha, beta, preview, as_json, preview_channels,
            preview_samples, preview_scale, **settings) -> None:
    """Normalize the same INPUT(s) (.npy, .npz, image, DIR, -) three ways -
    inter-channel LRN, intra-channel LRN and batch norm - and show their
    statistics side by side, then how LRN and BN differ."""
    from normcli.ops.conventions import resolve_lrn
    from normcli.runs.explain import compare as compare_run

    inter = resolve_lrn(mode="inter", convention=convention, n=n, k=k, alpha=alpha, beta=beta)
    has_intra = inter.convention.has_intra
    stages = ("before", "LRN inter", *(("LRN intra",) if has_intra else ()), "BN")
    recorder = make_preview(preview, title="LRN and batch norm compared",
                            subtitle=f"LRN {_lrn_text(inter)}; BN per {settings['per']}, "
                            f"eps={settings['eps']:g}",
                            stages=stages, force=settings["force"],
                            channels_last=settings["channels_last"])
    with progress_bar(Display(as_json=as_json)) as bar:
        result = compare_run(inputs, lrn=inter, preview=recorder, progress=bar, **settings)
    _show(result, as_json=as_json)
    show_hints(result.hints, Display(as_json=as_json))
    finish_preview(recorder, quiet=as_json)


def _lrn_text(p) -> str:
    return (f"{p.convention.name} convention, n={p.n}, k={p.k:g}, alpha={p.alpha:g}, "
            f"beta={p.beta:g}")


def _show(result, *, as_json: bool) -> None:
    inter, intra = result.inter, result.intra
    if as_json:
        from normcli.render.compare import compare_json

        params = {"inputs": result.label, "shape": list(result.shape),
                  "convention": inter.convention.name, "n": inter.n, "k": inter.k,
                  "alpha": inter.alpha, "beta": inter.beta, "window_inter": inter.window_text(),
                  "window_intra": intra.window_text() if intra else None, "per": result.per,
                  "eps": result.eps, "batch": result.batch, "batch_size": result.batch_size,
                  "channels_last": result.channels_last}
        click.echo(compare_json(result.columns, params=params))
        return
    from rich.markup import escape

    from normcli.render import make_consoles
    from normcli.render.compare import compare_table, lrn_vs_bn_table
    from normcli.render.text import printable

    out = make_consoles()[1]
    shape = "×".join(map(str, result.shape))
    note = ("" if intra else f"; LRN intra: the {inter.convention.name} convention has no "
            "within-channel LRN")
    windows = f"inter window {inter.window_text()}" + (
        f", intra {intra.window_text()}" if intra else "")
    out.print(compare_table(
        [(heading, s) for _, heading, s in result.columns],
        title=f"{escape(printable(result.label))} ({shape}): statistics after each "
              "normalization",
        caption=f"LRN {_lrn_text(inter)} ({windows}); BN per {result.per} over a batch of "
                f"{result.batch_size}: {result.batch}, eps={result.eps:g}, gamma=1, beta=0{note}"))
    out.print()
    out.print(lrn_vs_bn_table())
