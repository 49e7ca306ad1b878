"""``normcli compare``: LRN (inter, intra) and batch norm of the same input, side by side."""

from __future__ import annotations

import click

from normcli.cli.preview import finish_preview, preview_option, start_preview
from normcli.ops.conventions import CONVENTIONS

EXAMPLES = """\b
Examples:
  normcli compare sample_data/features/img00_conv1.npy
  normcli compare sample_data/seed_batch/ --n 3 --preview compare.png
  normcli compare x.npy --convention caffe --per channel --json

\b
The batch for BN is the stack of the inputs or, for one input, its first axis.
Each column's histogram spans that column's own min..max."""


@click.command(epilog=EXAMPLES,
               short_help="LRN inter, LRN intra and batch norm of the same input, side by side.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--convention", type=click.Choice(list(CONVENTIONS)), default="seed",
              show_default=True, help="LRN convention (see `normcli conventions`).")
@click.option("--n", "n", type=int, help="LRN window parameter [default: the convention's].")
@click.option("--k", "k", type=float, help="LRN additive constant [default: the convention's].")
@click.option("--alpha", type=float, help="LRN scale [default: the convention's].")
@click.option("--beta", "beta", type=float, help="LRN exponent [default: the convention's].")
@click.option("--per", type=click.Choice(["activation", "channel"]), default="activation",
              show_default=True, help="Batch-norm statistics per activation or per channel.")
@click.option("--eps", type=float, default=1e-5, show_default=True,
              help="Batch-norm epsilon (gamma 1, beta 0).")
@click.option("--channels-last", is_flag=True,
              help="Arrays are (..., H, W, C) instead of (..., C, H, W).")
@click.option("--raw-png", is_flag=True,
              help="Read PNG pixels as stored integers instead of scaled to [0, 1].")
@click.option("--allow-nonfinite", is_flag=True, help="Process inputs holding NaN or Inf.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON instead.")
@preview_option
@click.option("--force", is_flag=True, help="Replace an existing preview file.")
def compare(inputs, convention, n, k, alpha, beta, per, eps, channels_last, raw_png,
            allow_nonfinite, as_json, preview, force) -> None:
    """Normalize the same INPUT(s) (.npy, .npz, PNG, DIR, -) three ways -
    inter-channel LRN, intra-channel LRN and batch norm - and show their
    statistics side by side, then how LRN and BN differ."""
    import math

    from normcli.ops.conventions import resolve_lrn

    lrn_args = {"convention": convention, "n": n, "k": k, "alpha": alpha, "beta": beta}
    try:
        inter = resolve_lrn(mode="inter", **lrn_args)
        intra = (resolve_lrn(mode="intra", **lrn_args) if CONVENTIONS[convention].has_intra
                 else None)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not (math.isfinite(eps) and eps > 0):
        raise click.BadParameter(f"{eps} must be finite and > 0", param_hint="'--eps'")

    from normcli.cli.options import IOOptions

    io = IOOptions(inputs=inputs, channels_last=channels_last, raw_png=raw_png,
                   allow_nonfinite=allow_nonfinite, force=force, as_json=as_json)
    lrn_text = (f"{convention} convention, n={inter.n}, k={inter.k:g}, alpha={inter.alpha:g}, "
                f"beta={inter.beta:g}")
    stages = ("before", "LRN inter", "LRN intra", "BN") if intra else ("before", "LRN inter",
                                                                       "BN")
    recorder = start_preview(preview, io, title="LRN and batch norm compared",
                             subtitle=f"LRN {lrn_text}; BN per {per}, eps={eps:g}",
                             stages=stages)

    from normcli.cli.explain import _load
    from normcli.errors import InputError
    from normcli.ops.batchnorm import batch_norm
    from normcli.ops.lrn import lrn
    from normcli.ops.summary import summarize
    from normcli.render.explain import compare_json, compare_table, lrn_vs_bn_table

    x, label, stacked = _load(inputs, channels_last=channels_last, raw_png=raw_png,
                     allow_nonfinite=allow_nonfinite)
    try:
        y_inter = lrn(x, mode="inter", channels_last=channels_last, **lrn_args)
        y_intra = lrn(x, mode="intra", channels_last=channels_last, **lrn_args) if intra else None
        y_bn = batch_norm(x, per=per, eps=eps, channels_last=channels_last)
    except ValueError as e:
        raise InputError(label, str(e)) from None

    if recorder is not None:
        outputs = {"before": x, "LRN inter": y_inter, "BN": y_bn}
        if intra:
            outputs["LRN intra"] = y_intra
        if not stacked:
            recorder.add(label, outputs)
        else:  # stacked inputs: one sample each, named by its input
            from normcli.files import expand_inputs

            for i, source in enumerate(expand_inputs(list(inputs))[:3]):
                recorder.add(source.label, {key: v[i] for key, v in outputs.items()})

    columns = [("input", "input", summarize(x)),
               ("lrn_inter", "LRN inter", summarize(y_inter)),
               ("lrn_intra", "LRN intra", summarize(y_intra) if intra else None),
               ("batchnorm", "BN", summarize(y_bn))]
    params = {"inputs": label, "shape": list(x.shape), "convention": convention,
              "n": inter.n, "k": inter.k, "alpha": inter.alpha, "beta": inter.beta,
              "window_inter": inter.window_text(),
              "window_intra": intra.window_text() if intra else None,
              "per": per, "eps": eps, "channels_last": channels_last}
    if as_json:
        click.echo(compare_json(columns, params=params))
    else:
        from rich.console import Console
        from rich.markup import escape

        out = Console()
        shape = "×".join(map(str, x.shape))
        batch = "the stacked inputs" if stacked else "the input"
        note = ("" if intra else f"; LRN intra: the {convention} convention has no "
                "within-channel LRN")
        out.print(compare_table(
            [(heading, s) for _, heading, s in columns],
            title=f"{escape(label)} ({shape}): statistics after each normalization",
            caption=f"LRN {lrn_text} (inter window {inter.window_text()}"
                    + (f", intra {intra.window_text()}" if intra else "")
                    + f"); BN per {per}, batch = axis 0 of {batch}, eps={eps:g}, gamma=1, "
                    f"beta=0{note}"))
        out.print()
        out.print(lrn_vs_bn_table())
    finish_preview(recorder, quiet=as_json)
