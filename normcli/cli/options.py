"""Flags shared by the commands, declared once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import click

from normcli.cli.inputs import RESUME, input_flags
from normcli.cli.types import PATH

#: The flags of io_options() that are normcli.runs.RunOptions fields, by name.
RUN_OPTIONS = ("output", "force", "out_format", "png_bits", "sync", "channels_last", "channel_axis",
               "allow_nonfinite", "raw_png", "jobs", "scheduler", "dtype", "color", "include_alpha",
               "pixels", "recursive", "files_from", "null", "keep_going", "resume")


@dataclass(frozen=True)
class Display:
    """What a command shows: ``--json`` (numbers on stdout) or ``-q`` (nothing)."""

    as_json: bool = False
    quiet: bool = False

    @property
    def table(self) -> bool:
        """Whether a table (and progress bars) go to stderr."""
        return not (self.quiet or self.as_json)

    @classmethod
    def pop(cls, kwargs: dict) -> Display:
        return cls(kwargs.pop("as_json", False), kwargs.pop("quiet", False))


def run_options(kwargs: dict) -> dict:
    """Take the :class:`normcli.runs.RunOptions` fields out of a command's keywords."""
    return {name: kwargs.pop(name) for name in RUN_OPTIONS if name in kwargs}


def stack(*decorators: Callable) -> Callable:
    """Apply several click decorators in the order they are listed."""
    def apply(f: Callable) -> Callable:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


CHANNELS_LAST = click.option("--channels-last", is_flag=True,
                             help="Arrays are (..., H, W, C) instead of (..., C, H, W).")
RAW_PNG = click.option("--raw-png", is_flag=True,
                       help="Read image pixels as stored integers instead of scaled to [0, 1].")
ALLOW_NONFINITE = click.option("--allow-nonfinite", is_flag=True,
                               help="Process inputs holding NaN or Inf (refused by default).")
JSON = click.option("--json", "as_json", is_flag=True,
                    help="Print the statistics as JSON on stdout instead of the table.")
FORCE = click.option("--force", is_flag=True, help="Replace existing output files.")


def io_options(*, writes: bool = True) -> Callable:
    """INPUT... plus the reading, output and display flags."""
    reading = [
        click.argument("inputs", nargs=-1, metavar="INPUT...", type=PATH),
        *input_flags(),
        CHANNELS_LAST, ALLOW_NONFINITE, RAW_PNG,
        click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                     help="Worker threads for reading, computing and writing [default: "
                     "cores; 1 for many small .npy inputs]."),
        click.option("--scheduler", metavar="ADDRESS", default=None,
                     help="Run on a Dask cluster: tcp://HOST:PORT, a scheduler file, or "
                     "local (one worker process per core); needs pip install "
                     "\"normcli[dask]\" and files every worker sees (docs/cluster.md)."),
    ]
    writing = [
        click.option("-o", "--output", metavar="OUT", type=PATH,
                     help="FILE.npy, FILE.npz, FILE.png, DIR/ (one file per input), "
                     "or - for .npy on stdout. Without -o nothing is written."),
        FORCE, RESUME,
        click.option("--format", "out_format", type=click.Choice(["npy", "png", "tif"]),
                     default=None, help="File type of the outputs of -o DIR/ [default: each "
                     "input's own; PNG for JPEG, WebP, BMP, GIF]; npy or tif keep the values."),
        click.option("--pixels", type=click.Choice(["input", "centred", "stretch"]),
                     default=None, help="How image outputs map values to pixels: input (the "
                     "input's scale, lrn's default), centred (-3..3, batchnorm's), stretch "
                     "(each channel's min..max, for arrays)."),
        click.option("--sync/--no-sync", default=True, show_default=True,
                     help="Flush outputs to disk before they replace anything. --no-sync is "
                     "faster for scratch outputs: still never half-written, but a power cut "
                     "soon after may lose them."),
        click.option("--dtype", type=click.Choice(["float16", "float32", "float64"]),
                     help="Type of the arrays written [default: float input keeps its type; "
                     "bool, 8- and 16-bit integers give float32, wider integers float64]. "
                     "The computing type stays: float16/float32 input computes in float32."),
        click.option("--png-bits", type=click.Choice(["8", "16"]), default="8",
                     show_default=True, callback=lambda ctx, param, value: int(value),
                     help="Bit depth of PNG output."),
    ]
    showing = [JSON, click.option("-q", "--quiet", is_flag=True,
                                  help="No table, no progress bar.")]
    return stack(*reading, *(writing if writes else []), *showing)


def lrn_options(f: Callable) -> Callable:
    """The LRN flags; None means the convention's default.  ``--size``,
    ``--local-size``, ``--depth-radius`` and ``--bias`` are the frameworks' words
    for n and k (see :func:`lrn_words`)."""
    from normcli.cli.types import ConventionChoice
    from normcli.ops.conventions import CONVENTION_ALIASES, CONVENTIONS

    return stack(
        click.option("--mode", type=click.Choice(["inter", "intra"]), default="inter",
                     show_default=True, help="inter: across channels (AlexNet); intra: a "
                     "square window within a channel."),
        click.option("--convention", type=ConventionChoice(CONVENTIONS, CONVENTION_ALIASES),
                     default="seed", show_default=True,
                     help="Which framework's LRN to reproduce (see `normcli conventions`; "
                     "any case)."),
        click.option("--n", "n", type=int, help="Window parameter (its meaning follows "
                     "--convention) [default: the convention's]."),
        click.option("--size", type=int, help="n as PyTorch and ONNX say it: the window "
                     "size (pytorch, onnx, cudnn, caffe)."),
        click.option("--local-size", type=int, help="n as Caffe says it (the window size)."),
        click.option("--depth-radius", type=int, help="n as TensorFlow says it: the radius "
                     "(tensorflow)."),
        click.option("--k", "k", type=float, help="Additive constant [default: the convention's]."),
        click.option("--bias", type=float, help="k as TensorFlow and ONNX say it."),
        click.option("--alpha", type=float, help="Scale of the sum of squares "
                     "[default: the convention's]."),
        click.option("--beta", "beta", type=float, help="Exponent [default: the convention's]."),
    )(f)


def bn_options(*, eps_help: str = "Added to the variance; > 0.",
               eps_default: float | None = 1e-5) -> Callable:
    """``--per`` and ``--eps``."""
    return stack(
        click.option("--per", type=click.Choice(["activation", "channel"]), default="activation",
                     show_default=True, help="activation: a mean and variance for every "
                     "position over the batch (the seed's form, BatchNorm1d on the flattened "
                     "samples); channel: one per channel over batch and space (BatchNorm2d)."),
        click.option("--eps", type=float, default=eps_default,
                     show_default=eps_default is not None, help=eps_help),
    )


def given(name: str):
    """A flag's value if it was given on the command line, else None."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(name)
    return ctx.params[name] if source == click.core.ParameterSource.COMMANDLINE else None
