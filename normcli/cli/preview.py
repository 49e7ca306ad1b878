"""``--preview FILE.png`` and its choices, shared by ``lrn``, ``batchnorm`` and ``compare``.

:func:`preview_option` declares them, :func:`make_preview` builds the recorder
the run fills (the run checks its path with its other outputs, before any
work), :func:`finish_preview` says where it went.
"""

from __future__ import annotations

import click

PREVIEW_HELP = ("Also draw FILE.png: channels of samples before and after, and the change "
                "(after - before); viridis for values >= 0, blue-white-red otherwise.")


def _png_suffix(ctx, param, value):
    if value is not None and not value.lower().endswith(".png"):
        raise click.BadParameter(f"{value!r} must end in .png", ctx, param)
    return value


def parse_indices(ctx, param, value: str | None) -> tuple[int, ...] | None:
    """``0,5,7`` or ``0-3`` (or both: ``0-3,9``) → a tuple of indices."""
    if value is None:
        return None
    out: list[int] = []
    for part in (p.strip() for p in value.split(",")):
        first, dash, last = part.partition("-")
        try:
            out.extend(range(int(first), int(last) + 1) if dash else [int(first)])
        except ValueError:
            raise click.BadParameter(f"{value!r}: {part or '(empty)'!r} is not an index or a "
                                     "range; give e.g. 0,5,7 or 0-3", ctx, param) from None
    return tuple(out)


def preview_option(f):
    """``--preview FILE.png`` (``--force`` replaces an existing file) and its choices."""
    from normcli.cli.options import stack
    from normcli.cli.types import PATH

    return stack(
        click.option("--preview", metavar="FILE.png", type=PATH, callback=_png_suffix,
                     help=PREVIEW_HELP),
        click.option("--preview-channels", metavar="LIST", callback=parse_indices,
                     help="Channels to draw, e.g. 0,5,7 or 0-3 (at most 16) [default: the "
                     "first 4]."),
        click.option("--preview-samples", metavar="LIST", callback=parse_indices,
                     help="Samples to draw, numbered over the inputs in order (at most 8) "
                     "[default: the first 3]."),
        click.option("--preview-scale", type=click.Choice(["channel", "panel"]),
                     default="channel", show_default=True,
                     help="channel: the rows of a channel share a colour scale (compare "
                     "colours); panel: each panel its own (compare patterns)."),
    )(f)


def make_preview(path: str | None, *, title: str, subtitle: str = "",
                 stages=("before", "after"), force: bool = False, channels_last: bool = False):
    """The recorder for ``--preview PATH``, or None; the choices come from the
    command's own flags (refused without ``--preview``)."""
    ctx = click.get_current_context()
    choices = {name: ctx.params.get(f"preview_{name}") for name in ("channels", "samples",
                                                                     "scale")}
    if path is None:
        for name in ("channels", "samples", "scale"):
            source = ctx.get_parameter_source(f"preview_{name}")
            if source == click.core.ParameterSource.COMMANDLINE:
                raise click.UsageError(f"--preview-{name} chooses what --preview FILE.png "
                                       "draws; give --preview too")
        return None
    from normcli.render.preview import PreviewRecorder

    return PreviewRecorder(path, title=title, subtitle=subtitle, stages=stages,
                           channels_last=channels_last, force=force, **choices)


def finish_preview(recorder, *, quiet: bool) -> None:
    """Say on stderr where the preview went (the run wrote it with its outputs)."""
    if recorder is None or quiet:
        return
    from normcli.render import make_consoles
    from normcli.render.text import printable

    width, height = recorder.size
    make_consoles()[0].print(f"preview: wrote {printable(recorder.path)} ({width}x{height} px)",
                             markup=False, highlight=False)
