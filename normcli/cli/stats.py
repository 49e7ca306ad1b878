"""``normcli stats``: the statistics of the inputs alone."""

from __future__ import annotations

import click

from normcli.cli.main import NormcliCommand
from normcli.cli.options import Display, io_options, run_options
from normcli.cli.report import display_options, progress_bar, show

EXAMPLES = """\b
Examples:
  normcli stats x.npy
  normcli stats sample_data/features/ --json"""


@click.command(cls=NormcliCommand, epilog=EXAMPLES, short_help="Statistics of the inputs alone.")
@io_options(writes=False)
def stats(inputs, **kwargs) -> None:
    """Shape, dtype, min, max, mean, std, zeros, NaN/Inf and a histogram of
    each INPUT (.npy, .npz, PNG, DIR, -), and their total."""
    from normcli import runs

    display = Display.pop(kwargs)
    with progress_bar(display) as bar:
        report = runs.stats(inputs, progress=bar, **run_options(kwargs),
                            **display_options(display))
    show(report, display)
