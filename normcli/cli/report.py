"""Showing a run's report: the table on stderr, or JSON on stdout; progress while it runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

from normcli.cli.options import Display

#: Inputs drawn in the table; the caption counts the others (--json lists them all).
TABLE_INPUTS = 20


def check_stdout(display: Display, options: dict) -> None:
    """``--json`` and ``-o -`` cannot share stdout."""
    if display.as_json and options.get("output") == "-":
        raise click.UsageError("--json and -o - both write to stdout; choose one")


def display_options(display: Display) -> dict:
    """The :class:`normcli.runs.RunOptions` fields a display needs: summaries only
    when shown, histograms only for the inputs drawn."""
    return {"summaries": not display.quiet or display.as_json,
            "histograms": None if display.as_json else TABLE_INPUTS}


@contextlib.contextmanager
def progress_bar(display: Display) -> Iterator[object | None]:
    """The ``progress`` callback to pass to a run: a bar on stderr, or None when
    nothing is drawn there (``-q``, ``--json``; rich is then not even imported)."""
    if not display.table:
        yield None
        return
    from normcli.render.console import make_consoles
    from normcli.render.progress import ProgressBar

    with ProgressBar(make_consoles()[0]) as bar:
        yield bar


def outputs_caption(report) -> str | None:
    """What was (or was not) written, under the table."""
    kind = report.output_kind
    updated = (report.params or {}).get("update_stats")
    if report.command == "stats":
        return None
    if kind == "none":
        text = "nothing written: add -o FILE, -o DIR/ or -o - to save the results"
    elif kind == "stdout":
        text = "wrote .npy to stdout"
    elif kind == "dir":
        count = len(report.written) - bool(report.saved_stats) - bool(updated)
        text = f"wrote {count} file{'s' if count != 1 else ''} to {Path(report.output)}"
    else:
        text = f"wrote {Path(report.output)}"
    if report.saved_stats:
        text += f"; statistics saved to {report.saved_stats}"
    if updated and kind == "none":
        text = f"running statistics updated in {updated}; no outputs written (add -o)"
    elif updated:
        text += f"; running statistics updated in {updated}"
    if report.pixels:
        text += f" ({'; '.join(report.pixels)})"
    if report.resumed:
        text += (f"; {report.resumed:,} output{'s' if report.resumed != 1 else ''} done by an "
                 "earlier run, not redone (--resume)")
    return text


def show_hints(hints, display: Display) -> None:
    """``hint: ...`` lines on stderr (inputs probably read the wrong way), unless ``-q``."""
    if not display.quiet and hints:
        from normcli.render.text import printable  # (the lines hold file names)

        for line in hints:
            click.echo(f"hint: {printable(line)}", err=True)


def show(report, display: Display) -> None:
    """The report's statistics: a table on stderr, or JSON on stdout with ``--json``
    (``stats``: the table is the result, on stdout); then its hints and
    :func:`epilogue`."""
    try:
        _show(report, display)
        show_hints(report.hints, display)
    finally:
        epilogue(report, display)


def epilogue(report, display: Display) -> None:
    """On stderr: what the input folders held that was skipped, the notes about
    some inputs, and the inputs that failed (``--keep-going``: then exit 1)."""
    from normcli.cli.outcome import epilogue_lines

    for line in epilogue_lines(report, quiet=display.quiet):
        click.echo(line, err=True)
    if report.failures:
        raise SystemExit(1)


def _show(report, display: Display) -> None:
    if report.command == "stats":
        from normcli.cli.outcome import show_stats

        show_stats(report, display)
        return
    if display.quiet and not display.as_json:
        return
    rows = [(r.label, r.before, r.after) for r in report.inputs]
    total = report.total
    total = (total.before, total.after) if total is not None else None
    if display.as_json:
        from normcli.render import stats_json

        click.echo(stats_json(rows, params=report.params, normalization=report.description,
                              total=total))
        return
    from rich.markup import escape

    from normcli.render import make_consoles, stats_table
    from normcli.render.text import printable

    caption = outputs_caption(report)
    err, _ = make_consoles()
    err.print(stats_table(rows, title=escape(printable(report.description)),
                          caption=None if caption is None else escape(printable(caption)),
                          show_after=any(r.after is not None for r in report.inputs),
                          total=total,
                          max_inputs=TABLE_INPUTS))
