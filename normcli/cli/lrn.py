"""``normcli lrn``: local response normalization of each input."""

from __future__ import annotations

import click

from normcli.cli.options import IOOptions, conventions_text, io_options, lrn_options
from normcli.cli.preview import preview_option
from normcli.ops.conventions import resolve_lrn

EXAMPLES = """\b
Examples:
  normcli lrn --mode inter x.npy -o y.npy
  normcli lrn --mode intra --n 2 map.npy -o out.png
  normcli lrn --convention pytorch --n 4 features/ -o normed/
  normcli lrn sample_data/seed_inter.npy --k 0 --alpha 1 --beta 1 --n 2
  normcli lrn features/ -o - | normcli batchnorm - --per channel -o b.npy"""

HELP = f"""Local response normalization of each INPUT (.npy, .npz, PNG, DIR, -).

Inter-channel LRN divides each value by (k + alpha' * sum of squares of the
neighbouring channels) ** beta; intra-channel LRN sums over a square window
within the value's own channel. What n means, where an even window's extra
element goes and how alpha is divided follow --convention:

{conventions_text()}
"""


@click.command(
    epilog=EXAMPLES, help=HELP,
    short_help="Local response normalization (inter- or intra-channel, six conventions).",
)
@lrn_options
@io_options()
@preview_option
def lrn(mode, convention, n, k, alpha, beta, preview, **kwargs) -> None:
    io = IOOptions.pop(kwargs)
    try:
        params = resolve_lrn(mode=mode, convention=convention, n=n, k=k, alpha=alpha, beta=beta)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    from normcli.cli.pipeline import process_each
    from normcli.cli.preview import finish_preview, start_preview
    from normcli.ops.lrn import lrn as lrn_op

    title, _, subtitle = params.describe().partition(": ")
    recorder = start_preview(preview, io, title=title, subtitle=subtitle, others=(io.output,))

    def transform(x, threads):
        return lrn_op(x, mode=params.mode, convention=convention, n=params.n, k=params.k,
                      alpha=params.alpha, beta=params.beta, channels_last=io.channels_last,
                      threads=threads)

    process_each(
        io,
        transform,
        title=params.describe(),
        params={"normalization": "lrn", "mode": params.mode, "convention": convention,
                "n": params.n, "k": params.k, "alpha": params.alpha, "beta": params.beta,
                "window": params.window_text(), "alpha_effective": params.alpha_eff,
                "k_effective": params.k_eff, "channels_last": io.channels_last},
        description="lrn",
        preview=recorder,
    )
    finish_preview(recorder, quiet=io.quiet or io.as_json)

