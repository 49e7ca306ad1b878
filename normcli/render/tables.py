"""The before/after statistics table, its JSON twin, and the sparkline.

``rows`` everywhere is a list of ``(label, before, after)`` with ``before`` a
:class:`~normcli.ops.summary.Summary` and ``after`` a Summary or ``None``.

:func:`stats_table` returns a :class:`rich.table.Table` that the caller prints.
When the console is wide enough (about 100 columns for typical data) it is a
plain table with one line per input and stage; on a narrower console the same
object draws a compact layout instead, each input's name on a line of its own
over its "before" and "after" lines, so that the numbers are never squeezed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from normcli.ops.summary import Summary, merge
from normcli.render.text import printable

__all__ = ["stats_table", "stats_json", "sparkline", "format_number", "BLOCKS"]

#: Sparkline levels, from an empty bin to the fullest.
BLOCKS = " ▁▂▃▄▅▆▇█"

Row = tuple[str, Summary, "Summary | None"]

_MISSING = "–"
_NUMBER_HEADERS = ("min", "max", "mean", "std")
_HIST_MIN = 8  # narrowest histogram drawn before switching layout


# --------------------------------------------------------------------------- cells


def format_number(value: float | None) -> str:
    """Four significant digits, ``–`` for a missing value.

    >>> format_number(0.000123456), format_number(1234567.0), format_number(None)
    ('0.0001235', '1.235e+06', '–')
    """
    return _MISSING if value is None else f"{value:.4g}"


def _count(n: int) -> str:
    return f"{n:,}"


def _nonfinite(n: int) -> Text:
    return Text(_count(n), style="bold red" if n else "")


def _shape(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape) if shape else "scalar"


def _resample(hist: Sequence[int], width: int) -> list[int]:
    """Sum groups of ``ceil(len(hist) / width)`` adjacent bins (at most ``width`` groups).

    Equal groups keep a flat histogram flat: 16 bins draw in 16, 8, 6, 4, ... characters.
    """
    n = len(hist)
    if width >= n or width < 1:
        return list(hist)
    step = -(-n // width)
    return [sum(hist[i : i + step]) for i in range(0, n, step)]


def sparkline(hist: Sequence[int] | None, width: int | None = None) -> str:
    """Draw histogram counts as block characters, one per bin.

    The fullest bin is ``█``; every other non-empty bin is at least ``▁``; empty
    bins are spaces.  With ``width`` smaller than the number of bins, groups of
    ``ceil(bins / width)`` adjacent bins are summed first.  ``None`` (no histogram) draws as ``""``.

    Examples
    --------
    >>> sparkline([0, 1, 4, 8, 2, 0])
    ' ▁▄█▂ '
    >>> sparkline([1, 1, 2, 2], width=3)
    '▄█'
    >>> sparkline([0, 0])
    '  '
    """
    if hist is None:
        return ""
    counts = _resample(list(hist), width) if width is not None else list(hist)
    top = max(counts, default=0)
    if top <= 0:
        return " " * len(counts)
    last = len(BLOCKS) - 1
    return "".join(
        " " if c <= 0 else BLOCKS[min(last, max(1, math.ceil(c * last / top - 1e-9)))]
        for c in counts
    )


class _Sparkline:
    """A sparkline cell that uses as many characters as its column gives it."""

    def __init__(self, hist: Sequence[int] | None) -> None:
        self.hist = hist

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        n = len(self.hist) if self.hist else 0
        return Measurement(min(n, _HIST_MIN), n).with_maximum(options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(sparkline(self.hist, width=options.max_width), no_wrap=True)


# --------------------------------------------------------------------------- table


def _stat_cells(s: Summary) -> list[str | Text]:
    return [
        *(format_number(v) for v in (s.min, s.max, s.mean, s.std)),
        _count(s.zeros),
        _nonfinite(s.nonfinite),
    ]


def _lines(rows: Sequence[Row], show_after: bool, total: tuple | None, inputs: int):
    """Yield ``(label, shape, is_after, summary)`` for every line of the table."""
    for label, before, after in rows:
        yield label, _shape(before.shape), False, before
        if show_after and after is not None:
            yield "", "", True, after
    if total is not None:
        t_before, t_after = total
        yield "total", f"{inputs} inputs", False, t_before
        if show_after and t_after is not None:
            yield "", "", True, t_after


def _total(rows: Sequence[Row], show_after: bool) -> tuple[Summary, Summary | None]:
    before = merge([b for _, b, _ in rows])
    afters = [a for _, _, a in rows]
    after = merge(afters) if show_after and all(a is not None for a in afters) else None
    return before, after


class StatsTable(Table):
    """A :class:`~rich.table.Table` that draws a compact layout when narrow.

    The table itself is the wide layout, one line per input and stage.  When
    the console is narrower than :attr:`min_wide_width` (the width at which
    only the label and histogram columns have given way), the same data is
    drawn as a heading line per input (name, shape, dtype) over indented
    "before" and "after" lines, the numbers still aligned in columns.
    """

    min_wide_width: int = 0
    _compact_lines: list
    _compact_header: tuple

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width < self.min_wide_width:
            yield from self._render_compact(options.max_width)
            return
        # Title and caption span the console, not just the table (a long
        # title would otherwise wrap at the table's width).
        title, caption = self.title, self.caption
        if title:
            yield _as_text(title, "table.title")
        self.title = self.caption = None
        try:
            yield from super().__rich_console__(console, options)
        finally:
            self.title, self.caption = title, caption
        if caption:
            yield _as_text(caption, "table.caption")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        if options.max_width < self.min_wide_width:
            return Measurement(options.max_width, options.max_width)
        return super().__rich_measure__(console, options)

    def _render_compact(self, width: int) -> RenderResult:
        """Hand-aligned lines: the headings span the width, which a Table cannot."""
        stage_w = len("  before")
        cells = [[str(c) for c in _stat_cells(s)] for _, _, _, s in self._compact_lines]
        headers = [*_NUMBER_HEADERS, "zeros", "nan/inf"]
        widths = [max([len(h)] + [len(row[j]) for row in cells]) for j, h in enumerate(headers)]
        used = stage_w + sum(w + 2 for w in widths) + 2
        hist_w = max(1, min(16, width - used))

        def line(first: Text, values: list, hist: str) -> Text:
            out = Text(no_wrap=True, overflow="ellipsis")
            out.append_text(first)
            out.append(" " * (stage_w - len(first)))
            for value, w in zip(values, widths, strict=True):
                out.append("  ")
                text = value if isinstance(value, Text) else Text(value)
                out.append(" " * (w - len(text)))
                out.append_text(text)
            out.append("  ")
            out.append(hist)
            out.truncate(width, overflow="ellipsis")
            return out

        if self.title:
            yield _as_text(self.title, "table.title")
        header = line(Text(""), [Text(h, style="bold") for h in headers], "")
        header.append("histogram"[:hist_w], style="bold")
        yield header
        yield Text("─" * min(width, used + hist_w), style="table.header")
        has_after = any(line[2] for line in self._compact_lines)
        for i, (label, shape, is_after, s) in enumerate(self._compact_lines):
            if not is_after:
                if label == "total" and shape.endswith("inputs") and i:
                    yield Text("─" * min(width, used + hist_w), style="dim")
                tail = f"  {shape}  {s.dtype}"
                nxt = self._compact_lines[i + 1] if i + 1 < len(self._compact_lines) else None
                if nxt is not None and nxt[2] and nxt[3].dtype != s.dtype:
                    tail += f" → {nxt[3].dtype}"
                heading = Text(_keep_end(label, width - len(tail)), style="bold",
                               no_wrap=True, overflow="ellipsis")
                heading.append(tail)
                heading.truncate(width, overflow="ellipsis")
                yield heading
            first = "  before" if has_after else "  values"  # stats: no normalization
            stage = Text("  after" if is_after else first, style="dim")
            yield line(stage, _stat_cells(s), sparkline(s.hist, width=hist_w))
        if self.caption:
            yield _as_text(self.caption, "table.caption")


def _keep_end(label: str, width: int) -> str:
    """``label`` cut at the front to ``width`` characters (``…/features/a.npy``): the
    end of a path names the file, and the shape after it stays whole.

    >>> _keep_end("/home/me/data/features/img03_conv1.npy", 26)
    '…/features/img03_conv1.npy'
    >>> _keep_end("a.npy", 24)
    'a.npy'
    """
    if len(label) <= width or width < 8:
        return label
    return "…" + label[len(label) - width + 1:]


def _as_text(text, style: str) -> Text:
    if isinstance(text, Text):
        return text
    return Text.from_markup(str(text), style=style)


def _numeric_columns(table: Table) -> None:
    for header in _NUMBER_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("zeros", justify="right", no_wrap=True)
    table.add_column("nan/inf", justify="right", no_wrap=True)


def stats_table(
    rows: Sequence[Row],
    *,
    title: str,
    caption: str | None = None,
    show_after: bool = True,
    total: tuple[Summary, Summary | None] | None = None,
    max_inputs: int | None = None,
) -> Table:
    """Build the before/after statistics table of one normalization run.

    Parameters
    ----------
    rows : sequence of (str, Summary, Summary or None)
        ``(label, before, after)`` per input.  Labels are shown literally
        (rich markup in a file name is not interpreted, control characters
        are shown as escapes: see :func:`normcli.render.text.printable`).
    title : str
        The normalization and its effective parameters, shown above the table.
        It is the caller's text and may use rich markup.
    caption : str, optional
        A hint shown under the table, e.g. ``"nothing written: add -o FILE to
        save the result"`` (may use rich markup).
    show_after : bool, optional
        Draw the "after" lines.  ``False`` for a plain description of inputs.
    total : (Summary, Summary or None), optional
        The "total" line for more than one input; by default
        ``merge(befores), merge(afters)``, whose histogram is blank when the
        inputs' ranges differ.  Pass ``merge(..., arrays=...)`` results for
        an exact total histogram.  Ignored for a single input.
    max_inputs : int, optional
        Draw at most this many inputs' lines (the first ones); the caption
        then says how many more there are, and the total covers them all.

    Returns
    -------
    rich.table.Table
        Columns: input, shape, dtype, min, max, mean, std, zeros, nan/inf
        (red when non-zero), histogram.  On a console narrower than the wide
        layout needs, a compact layout is drawn instead (see :class:`StatsTable`).

    Examples
    --------
    >>> import io, numpy as np
    >>> from rich.console import Console
    >>> from normcli.ops.summary import summarize
    >>> rows = [("x.npy", summarize(np.arange(4.0)), summarize(np.arange(4.0) / 3))]
    >>> console = Console(file=io.StringIO(), width=100, color_system=None)
    >>> console.print(stats_table(rows, title="demo"))
    >>> "x.npy" in console.file.getvalue()
    True
    """
    rows = [(printable(label), before, after) for label, before, after in rows]
    if len(rows) <= 1:
        total = None
    elif total is None:
        total = _total(rows, show_after)
    shown = rows if max_inputs is None or len(rows) <= max_inputs else rows[:max_inputs]
    if len(shown) < len(rows):
        more = (f"{len(rows) - len(shown)} more inputs not shown (--json lists every one); "
                "the total covers all")
        caption = more if caption is None else f"{more}\n{caption}"
    lines = list(_lines(shown, show_after, total, len(rows)))

    table = StatsTable(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        pad_edge=False,
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("input", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("dtype", no_wrap=True)
    _numeric_columns(table)
    table.add_column("histogram", no_wrap=False)
    n_inputs_lines = len(lines) - (0 if total is None else (2 if lines[-1][2] else 1))
    for i, (label, shape, is_after, s) in enumerate(lines):
        if i == n_inputs_lines:
            table.add_section()
        table.add_row(
            Text("  ↳ after", style="dim") if is_after else Text(label, style="bold"),
            shape,
            s.dtype,
            *_stat_cells(s),
            _Sparkline(s.hist),
        )

    # The wide layout is used down to the width at which the histogram has
    # shrunk to _HIST_MIN characters; below that, the compact one.  Labels are
    # never cut: a long one switches to the compact layout, where it has a line.
    headers = ["shape", "dtype", *_NUMBER_HEADERS, "zeros", "nan/inf"]
    fixed = [
        max([len(h)] + [len(str(([shp, s.dtype] + _stat_cells(s))[j])) for _, shp, _, s in lines])
        for j, h in enumerate(headers)
    ]
    label_w = max([len("  ↳ after")] + [len(lab) for lab, *_ in lines])
    table.min_wide_width = label_w + sum(fixed) + _HIST_MIN + 2 * (len(fixed) + 1)
    table._compact_lines = lines
    return table


# --------------------------------------------------------------------------- JSON


def stats_json(
    rows: Sequence[Row],
    *,
    params: dict,
    normalization: str | None = None,
    total: tuple[Summary, Summary | None] | None = None,
) -> str:
    """The numbers of :func:`stats_table` as one JSON object.

    Parameters
    ----------
    rows : sequence of (str, Summary, Summary or None)
        As for :func:`stats_table`.
    params : dict
        The effective parameters (JSON-serializable).  ``params["normalization"]``,
        if present, names the normalization unless ``normalization`` is given.
    normalization : str, optional
        E.g. ``"lrn"`` or ``"batchnorm"``.
    total : (Summary, Summary or None), optional
        As for :func:`stats_table`; computed with :func:`merge` by default.

    Returns
    -------
    str
        ``{"normalization": ..., "params": {...}, "inputs": [{"label": ...,
        "before": {...}, "after": {...} or null}, ...], "total": {"before":
        {...}, "after": {...} or null} or null}``; ``total`` is ``null`` for a
        single input.  Missing numbers are ``null`` (never ``NaN``).

    Examples
    --------
    >>> import json, numpy as np
    >>> from normcli.ops.summary import summarize
    >>> doc = json.loads(stats_json([("a", summarize(np.ones(3)), None)], params={"k": 1}))
    >>> doc["inputs"][0]["before"]["mean"], doc["total"]
    (1.0, None)
    """
    rows = list(rows)
    if normalization is None:
        normalization = params.get("normalization")
    if len(rows) > 1:
        t_before, t_after = total if total is not None else _total(rows, True)
        total_doc = {
            "before": t_before.to_dict(),
            "after": None if t_after is None else t_after.to_dict(),
        }
    else:
        total_doc = None
    doc = {
        "normalization": normalization,
        "params": params,
        "inputs": [
            {
                "label": label,
                "before": before.to_dict(),
                "after": None if after is None else after.to_dict(),
            }
            for label, before, after in rows
        ],
        "total": total_doc,
    }
    return json.dumps(doc, indent=2, allow_nan=False)
