"""The flags that choose and read the inputs: folders, lists, images, keep going."""

from __future__ import annotations

import click


def input_flags() -> list:
    """-r, --files-from, -0, --color, --include-alpha, --keep-going."""
    return [
        click.option("-r", "--recursive", is_flag=True,
                     help="Walk the subfolders of folder INPUTs (outputs mirror the tree)."),
        click.option("--files-from", metavar="FILE", help="Read input paths from FILE "
                     "(- for stdin), one per line."),
        click.option("-0", "--null", is_flag=True,
                     help="--files-from paths are NUL-separated (find -print0)."),
        click.option("--color", type=click.Choice(["rgb", "gray"]), default=None,
                     help="Convert every image to RGB or gray first (a folder mixing gray "
                     "and colour images needs it)."),
        click.option("--include-alpha", is_flag=True, help="Treat an image's alpha as an "
                     "ordinary channel [default: left out, and put back in image outputs]."),
        click.option("--keep-going", is_flag=True, help="Report and skip bad inputs, "
                     "process every good one; exit 1 if any failed [default: all or nothing]."),
    ]


RESUME = click.option("--resume", is_flag=True, help="With -o DIR/: put each output in place "
                      "when done and record it, so that the same command run again with "
                      "--resume skips what is done (lrn, batchnorm --stats).")
