"""``normcli stats``: the statistics of the inputs alone."""

from __future__ import annotations

import click

from normcli.cli.options import IOOptions, io_options

EXAMPLES = """\b
Examples:
  normcli stats x.npy
  normcli stats sample_data/features/ --json"""


@click.command(
    epilog=EXAMPLES,
    short_help="Statistics of the inputs alone.",
)
@io_options(writes=False)
def stats(**kwargs) -> None:
    """Shape, dtype, min, max, mean, std, zeros, NaN/Inf and a histogram of
    each INPUT (.npy, .npz, PNG, DIR, -), and their total."""
    io = IOOptions.pop(kwargs)
    from normcli.cli.pipeline import process_each

    process_each(io, None, title="statistics of the inputs", params={"normalization": None},
                 description="stats")
