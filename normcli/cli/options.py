"""Flags shared by the commands, declared once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class IOOptions:
    """What every command does with its inputs and outputs."""

    inputs: tuple[str, ...]
    output: str | None = None
    force: bool = False
    as_json: bool = False
    quiet: bool = False
    channels_last: bool = False
    allow_nonfinite: bool = False
    raw_png: bool = False
    png_bits: int = 8
    jobs: int | None = None
    sync: bool = True
    out_format: str | None = None

    @classmethod
    def pop(cls, kwargs: dict) -> IOOptions:
        """Take this dataclass's fields out of a command's keyword arguments."""
        names = [f for f in cls.__dataclass_fields__ if f in kwargs]
        return cls(**{name: kwargs.pop(name) for name in names})


def _stack(*decorators: Callable) -> Callable:
    def apply(f: Callable) -> Callable:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def io_options(*, writes: bool = True) -> Callable:
    """INPUT... plus the reading, output and display flags."""
    reading = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option(
            "--channels-last", is_flag=True,
            help="Arrays are (..., H, W, C) instead of (..., C, H, W).",
        ),
        click.option(
            "--allow-nonfinite", is_flag=True,
            help="Process inputs holding NaN or Inf (refused by default).",
        ),
        click.option(
            "--raw-png", is_flag=True,
            help="Read PNG pixels as stored integers instead of scaled to [0, 1].",
        ),
        click.option(
            "-j", "--jobs", type=click.IntRange(min=1), default=None,
            help="Worker threads for reading, computing and writing [default: cores; 1 "
            "for many small .npy inputs].",
        ),
    ]
    writing = [
        click.option(
            "-o", "--output", metavar="OUT",
            help="FILE.npy, FILE.npz, FILE.png, DIR/ (one file per input), "
            "or - for .npy on stdout. Without -o nothing is written.",
        ),
        click.option("--force", is_flag=True, help="Replace existing output files."),
        click.option(
            "--format", "out_format", type=click.Choice(["npy", "png"]), default=None,
            help="File type of the outputs of -o DIR/ [default: each input's own; "
            "PNG outputs rescale each channel to the full range, so keep the values "
            "with npy].",
        ),
        click.option(
            "--sync/--no-sync", default=True, show_default=True,
            help="Flush outputs to disk before they replace anything. --no-sync is faster "
            "for scratch outputs: still never half-written, but a power cut soon after "
            "may lose them.",
        ),
        click.option(
            "--png-bits", type=click.Choice(["8", "16"]), default="8", show_default=True,
            callback=lambda ctx, param, value: int(value),
            help="Bit depth of PNG output (each channel rescaled to the full range).",
        ),
    ]
    showing = [
        click.option("--json", "as_json", is_flag=True,
                     help="Print the statistics as JSON on stdout instead of the table."),
        click.option("-q", "--quiet", is_flag=True, help="No table, no progress bar."),
    ]
    return _stack(*reading, *(writing if writes else []), *showing)


def conventions_text() -> str:
    """The conventions as a plain-text table for ``--help`` (from the same data)."""
    from normcli.ops.conventions import CONVENTIONS  # (only lrn's help needs the table)

    rows = [("name", "n means", "window", "alpha'", "k intra", "n k alpha beta")]
    for c in CONVENTIONS.values():
        alpha = "alpha/" + c.alpha_div_inter if c.alpha_div_inter != "1" else "alpha"
        if c.has_intra:
            intra = "alpha/" + c.alpha_div_intra if c.alpha_div_intra != "1" else "alpha"
            alpha += f" ({intra} intra)"
        k_intra = "-" if not c.has_intra else ("k" if c.k_intra is None else f"{c.k_intra:g}")
        defaults = f"{c.default_n} {c.default_k:g} {c.default_alpha:g} {c.default_beta:g}"
        rows.append((c.name, c.n_means, c.window.formula, alpha, k_intra, defaults))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    return "\b\n" + "\n".join(lines)


def lrn_options(f: Callable) -> Callable:
    """The LRN flags; None means the convention's default."""
    from normcli.ops.conventions import CONVENTIONS

    return _stack(
        click.option(
            "--mode", type=click.Choice(["inter", "intra"]), default="inter", show_default=True,
            help="inter: across channels (AlexNet); intra: a square window within a channel.",
        ),
        click.option(
            "--convention", type=click.Choice(list(CONVENTIONS)), default="seed",
            show_default=True, help="Which framework's LRN to reproduce (table above).",
        ),
        click.option("--n", "n", type=int, help="Window parameter (its meaning follows "
                     "--convention) [default: the convention's]."),
        click.option("--k", "k", type=float, help="Additive constant [default: the convention's]."),
        click.option("--alpha", type=float, help="Scale of the sum of squares "
                     "[default: the convention's]."),
        click.option("--beta", "beta", type=float, help="Exponent [default: the convention's]."),
    )(f)


class FloatOrFile(click.ParamType):
    """A number, or the path of a .npy holding an array of them."""

    name = "F|FILE.npy"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isfinite(number):
                self.fail(f"{value!r} must be a finite number", param, ctx)
            return number
        if not value.lower().endswith(".npy"):
            self.fail(f"{value!r} is neither a number nor a .npy file", param, ctx)
        return value
