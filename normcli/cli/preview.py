"""``--preview FILE.png``, shared by ``lrn``, ``batchnorm`` and ``compare``.

:func:`preview_option` declares it, :func:`start_preview` checks the path
before any work and returns the recorder, :func:`finish_preview` writes it.
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
    return click.option("--preview", metavar="FILE.png", callback=_png_suffix,
                        help=PREVIEW_HELP)(f)


def start_preview(path: str | None, io, *, title: str, subtitle: str = "",
                  stages=("before", "after"), others: tuple = ()):
    """The recorder for ``--preview PATH``, or ``None``; refuses bad paths before any work.

    ``others`` are the other files the command writes (``-o``, ``--save-stats``).
    """
    if path is None:
        return None
    from normcli.files import expand_inputs, same_file
    from normcli.render.preview import PreviewRecorder, check_preview_path

    for other in others:
        if other and other != "-" and same_file(path, other):
            raise click.BadParameter(f"{path!r} is also an output of this command",
                                     param_hint="'--preview'")
    sources = expand_inputs(list(io.inputs))
    check_preview_path(path, sources, force=io.force)
    return PreviewRecorder(path, title=title, subtitle=subtitle, stages=stages,
                           channels_last=io.channels_last, force=io.force,
                           order=[s.label for s in sources])


def finish_preview(recorder, *, quiet: bool) -> None:
    """Write the preview (atomically), unless the run staged it already; say so on stderr."""
    if recorder is None:
        return
    size = getattr(recorder, "size", None)
    width, height = size if size is not None else recorder.write()
    if not quiet:
        from normcli.render import make_consoles

        err, _ = make_consoles()
        err.print(f"preview: wrote {recorder.path} ({width}x{height} px)", markup=False,
                  highlight=False)
