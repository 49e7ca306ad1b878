"""``normcli stats``: the statistics of the inputs alone, or of the dataset per channel."""

from __future__ import annotations

import click

from normcli.cli.command import NormcliCommand
from normcli.cli.options import Display, io_options, run_options
from normcli.cli.report import display_options, progress_bar, show

EXAMPLES = """\b
Examples:
  normcli stats x.npy
  normcli stats sample_data/features/ --json
  normcli stats photos/ -r --per channel              # mean and std for Normalize
  normcli stats photos/ -r --per channel --save-stats photos.npz
  find data -name '*.jpg' -print0 | normcli stats --files-from - -0 --per channel

\b
The table (or JSON) is the result: it goes to stdout, one line per input
when stdout is not a terminal. NaN and Inf are counted, never refused."""


@click.command(cls=NormcliCommand, epilog=EXAMPLES,
               short_help="Statistics of the inputs alone, or of a dataset per channel.")
@io_options(writes=False)
@click.option("--per", type=click.Choice(["channel"]), default=None,
              help="The dataset's per-channel count, mean, std (biased and n-1), min and "
              "max over every pixel of every input, any sizes.")
@click.option("--save-stats", metavar="FILE.npz", help="With --per channel: save the "
              "statistics (what batchnorm --stats reads).")
@click.option("--force", is_flag=True, help="Replace an existing --save-stats file.")
def stats(inputs, per, save_stats, force, **kwargs) -> None:
    """Shape, dtype, min, max, mean, std, zeros, NaN/Inf and a histogram of
    each INPUT (.npy, .npz, image, DIR, -), and their total; with --per
    channel, the dataset's per-channel statistics."""
    from normcli import runs

    display = Display.pop(kwargs)
    with progress_bar(display) as bar:
        report = runs.stats(inputs, per=per, save_stats=save_stats, force=force, progress=bar,
                            **run_options(kwargs), **display_options(display))
    show(report, display)
