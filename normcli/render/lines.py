"""The statistics table as plain lines: one line per input, for a pipe or a file.

A table on a terminal fits its width (rich, :mod:`normcli.render.tables`);
the same numbers sent to a pipe are plain aligned text, one line per input
(every input, whatever the count), never wrapped or cut, without colours,
so that ``grep``, ``sort`` and ``less`` work on them.
"""

from __future__ import annotations

from collections.abc import Sequence

from normcli.ops.summary import merge
from normcli.render.tables import format_number, sparkline
from normcli.render.text import printable

__all__ = ["stats_lines"]

HEADERS = ("input", "shape", "dtype", "min", "max", "mean", "std", "zeros", "nan/inf",
           "histogram")


def _cells(label: str, s) -> list[str]:
    shape = "×".join(map(str, s.shape)) if s.shape else "scalar"
    return [printable(label), shape, s.dtype,
            *(format_number(v) for v in (s.min, s.max, s.mean, s.std)),
            f"{s.zeros:,}", f"{s.nonfinite:,}", sparkline(s.hist).rstrip() or "-"]


def stats_lines(rows: Sequence[tuple], *, title: str, total: bool = True) -> str:
    """``rows`` of ``(label, before, after)`` as text: ``# title``, a header line,
    a line per input (its ``before``), and a ``total`` line for several."""
    cells = [list(HEADERS)] + [_cells(label, before) for label, before, _ in rows]
    if total and len(rows) > 1:
        cells.append(_cells("total", merge([b for _, b, _ in rows])))
        cells[-1][1] = f"{len(rows)}-inputs"
    widths = [max(len(r[j]) for r in cells) for j in range(len(HEADERS))]
    left = (0, 1, 2, len(HEADERS) - 1)
    out = [f"# {title}"]
    for r in cells:
        out.append("  ".join(c.ljust(w) if j in left else c.rjust(w)
                             for j, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    return "\n".join(out)
