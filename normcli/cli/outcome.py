"""The end of a run on the command line: ``stats``' result on stdout, and what was
skipped, noticed or failed, on stderr."""

from __future__ import annotations

import sys
from collections import Counter

import click

#: Labels named for a note; the others are counted.
NOTE_LABELS = 3


def epilogue_lines(report, *, quiet: bool = False) -> list[str]:
    """``normcli: skipped ...``, ``normcli: note: ...``, the failures and their count."""
    from normcli.files.walk import Expansion
    from normcli.render.text import printable  # (the lines hold file names)

    lines = []
    skipped = Expansion(skipped=Counter(report.skipped)).skipped_text()
    if skipped:  # (even with -q: nothing is left out without a word)
        lines.append(f"normcli: skipped, in the input folders: {skipped}")
    if not quiet:
        for note, labels in report.notes.items():
            named = ", ".join(printable(label) for label in labels[:NOTE_LABELS])
            total = report.notes.total(note) if hasattr(report.notes, "total") else len(labels)
            more = total - min(len(labels), NOTE_LABELS)
            lines.append(f"normcli: note: {note}: {named}"
                         + (f" and {more:,} more" if more > 0 else ""))
    for failure in report.failures:
        lines.append(f"normcli: error: {printable(failure.message)}")
    if report.failures:
        lines.append(f"normcli: {report.failed_text}; the others were processed"
                     + ("" if report.command == "stats" else " and written"))
    return lines


def show_stats(report, display) -> None:
    """``stats``' result on stdout: a table on a terminal, plain lines (one per input)
    otherwise, or JSON; ``--per channel``: the per-channel table."""
    if display.quiet and not display.as_json:
        return
    out = sys.stdout
    if report.dataset is not None:
        _show_dataset(report, display, out)
        return
    rows = [(r.label, r.before, r.after) for r in report.inputs]
    if display.as_json:
        from normcli.render import stats_json

        total = report.total
        click.echo(stats_json(rows, params=report.params, normalization=report.description,
                              total=(total.before, total.after) if total else None))
        return
    if not out.isatty():
        from normcli.render.lines import stats_lines

        click.echo(stats_lines(rows, title=report.description))
        return
    from normcli.cli.report import TABLE_INPUTS
    from normcli.render import make_consoles, stats_table

    _, console = make_consoles()
    total = report.total
    console.print(stats_table(rows, title=report.description, show_after=False,
                              total=(total.before, total.after) if total else None,
                              max_inputs=TABLE_INPUTS))


def _show_dataset(report, display, out) -> None:
    stats = report.dataset
    if display.as_json:
        from normcli.render.dataset import dataset_json

        extra = {"failures": [{"label": f.label, "problem": f.problem}
                              for f in report.failures],
                 "skipped": report.skipped, "saved_stats": report.saved_stats}
        click.echo(dataset_json(stats, params=report.params, extra=extra))
        return
    from normcli.render.dataset import dataset_lines, dataset_table, normalize_line

    pixels = int(stats.count.max()) if stats.count.size else 0
    title = f"{report.description}, {pixels:,} pixels per channel"
    caption = normalize_line(stats)
    if report.saved_stats:
        caption += f"\nstatistics saved to {report.saved_stats}"
    if not out.isatty():
        click.echo(dataset_lines(stats, title=title))
        click.echo(caption)
        return
    from normcli.render import make_consoles

    _, console = make_consoles()
    console.print(dataset_table(stats, title=title, caption=caption))
