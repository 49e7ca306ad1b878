"""``--preview FILE.png``, shared by ``lrn``, ``batchnorm`` and ``compare``.

:func:`preview_option` declares it, :func:`make_preview` builds the recorder
the run fills (the run checks its path with its other outputs, before any
work), :func:`finish_preview` says where it went.
"""

from __future__ import annotations

import click

PREVIEW_HELP = ("Also draw FILE.png: the first 4 channels of the first 3 samples before and "
                "after, each panel on its own blue-white-red scale symmetric about 0.")


def _png_suffix(ctx, param, value):
    if value is not None and not value.lower().endswith(".png"):
        raise click.BadParameter(f"{value!r} must end in .png", ctx, param)
    return value


def preview_option(f):
    """``--preview FILE.png`` (``--force`` replaces an existing file)."""
    from normcli.cli.types import PATH

    return click.option("--preview", metavar="FILE.png", type=PATH, callback=_png_suffix,
                        help=PREVIEW_HELP)(f)


def make_preview(path: str | None, *, title: str, subtitle: str = "",
                 stages=("before", "after"), force: bool = False, channels_last: bool = False):
    """The recorder for ``--preview PATH``, or None."""
    if path is None:
        return None
    from normcli.render.preview import PreviewRecorder

    return PreviewRecorder(path, title=title, subtitle=subtitle, stages=stages,
                           channels_last=channels_last, force=force)


def finish_preview(recorder, *, quiet: bool) -> None:
    """Say on stderr where the preview went (the run wrote it with its outputs)."""
    if recorder is None or quiet:
        return
    from normcli.render import make_consoles

    width, height = recorder.size
    make_consoles()[0].print(f"preview: wrote {recorder.path} ({width}x{height} px)",
                             markup=False, highlight=False)
