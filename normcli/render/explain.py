"""``normcli explain``'s views: one output value, step by step.

:func:`lrn_explanation` / :func:`bn_explanation` draw an
:class:`~normcli.ops.explain.LRNExplanation` / ``BNExplanation``: the
neighbourhood, each step of the arithmetic, and the whole computation as one
equation line (:func:`lrn_equation`, :func:`bn_equation`).  Every function
returns a renderable; the command prints it.  (``compare`` and ``conventions``
have modules of their own.)
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from normcli.ops.explain import BNExplanation, LRNExplanation
from normcli.render.text import printable

__all__ = [
    "num",
    "lrn_equation",
    "bn_equation",
    "lrn_explanation",
    "bn_explanation",
]

#: At most this many squares are written out in an equation; more are summed.
MAX_TERMS = 9
#: At most this many rows (and columns) of a neighbourhood or a batch are drawn,
#: around the value explained; the others are counted in a line of their own.
MAX_ROWS = 15


def _around(count: int, at: int, shown: int = MAX_ROWS) -> range:
    """The ``shown`` indices of ``range(count)`` centred on ``at`` (as far as they go).

    >>> _around(100, 50, 5), _around(100, 1, 5), _around(3, 1, 5)
    (range(48, 53), range(0, 5), range(0, 3))
    """
    start = min(max(0, at - shown // 2), max(0, count - shown))
    return range(start, min(count, start + shown))


def _elided(hidden: int, what: str) -> Text:
    return Text(f"  … {hidden:,} more {what} not shown (all of them are summed)", style="dim")


def num(value: float) -> str:
    """A number for people: 6 significant digits, no ``-0``.

    >>> num(0.5), num(2.0), num(-0.0), num(1e-4), num(1 / 3)
    ('0.5', '2', '0', '0.0001', '0.333333')
    """
    if value == 0:
        return "0"
    return f"{value:.6g}"


def _operand(value: float) -> str:
    """A number that follows an operator: negative ones in parentheses."""
    text = num(value)
    return f"({text})" if text.startswith("-") else text


def _square(value: float) -> str:
    return f"{_operand(value)}²"


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _range(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}..{b}"


# --------------------------------------------------------------------------- LRN


def _sum_terms(e: LRNExplanation) -> tuple[str, bool]:
    """``("1² + 1²", True)``: the squares written out, or their sum when there are many."""
    flat = e.values.reshape(-1)
    if flat.size <= MAX_TERMS:
        return " + ".join(_square(v) for v in flat), flat.size > 1
    return num(e.sum_squares), False


def lrn_equation(e: LRNExplanation) -> str:
    """The whole computation as one line, with the terms that are not 0/1 left out.

    >>> from normcli.ops.explain import explain_lrn, SEED_INTER
    >>> lrn_equation(explain_lrn(SEED_INTER, (0, 0, 0), k=0, alpha=1, beta=1, n=2))
    'b = 1 / (1² + 1²) = 0.5'
    >>> lrn_equation(explain_lrn(SEED_INTER, (0, 0, 0), n=2))
    'b = 1 / (2 + 0.0001 · (1² + 1²))^0.75 = 0.594559'
    """
    p = e.params
    terms, several = _sum_terms(e)
    scaled = terms
    if p.alpha_eff != 1:
        scaled = f"{num(p.alpha_eff)} · " + (f"({terms})" if several else terms)
    inner = f"{num(p.k_eff)} + {scaled}" if p.k_eff != 0 else scaled
    power = "" if p.beta == 1 else f"^{num(p.beta)}"
    return f"b = {num(e.value)} / ({inner}){power} = {num(e.result)}"


def _where(e: LRNExplanation) -> str:
    p = e.params
    if len(e.axes) == 2:
        place = f"row y={e.row}, column x={e.col} of the single channel"
    else:
        place = f"channel c={e.channel}, row y={e.row}, column x={e.col}"
        lead = e.position[:-3]
        if lead:
            place = f"sample {_shape(lead)}, " + place
    pos = ", ".join(str(i) for i in e.position)
    first = Text.assemble(("position: ", "bold"), f"({pos}) = {place}: ",
                          ("a = " + num(e.value), "bold"))
    (lo, hi) = e.nominal[0]
    if p.mode == "inter":
        want = f"channels {p.window_text()} = {_range(lo, hi)}"
        got = _range(e.channels[0], e.channels[-1])
        # the window's channels outside the array: below channel 0, beyond the last
        missing = [(a, b) for a, b in ((lo, min(hi, e.channels[0] - 1)),
                                       (max(lo, e.channels[-1] + 1), hi)) if a <= b]
        if missing:
            count = sum(b - a + 1 for a, b in missing)
            names = " and ".join(_range(a, b) for a, b in missing)
            want += (f"; channel{'s' if count > 1 else ''} {names} "
                     f"{'do' if count > 1 else 'does'} not exist, so {got}")
    else:
        (rlo, rhi), (clo, chi) = e.nominal
        want = (f"the {p.window_text()} = rows {_range(rlo, rhi)}, columns {_range(clo, chi)}")
        if e.clipped:
            want += (f"; cut at the border to rows {_range(e.rows[0], e.rows[-1])}, "
                     f"columns {_range(e.cols[0], e.cols[-1])} "
                     f"({len(e.rows)}x{len(e.cols)})")
    second = Text.assemble(("neighbourhood: ", "bold"), want)
    return first, second


def _neighbourhood_table(e: LRNExplanation) -> list[RenderableType]:
    """The window's values around the one explained (at most :data:`MAX_ROWS` rows
    and columns), and how many more it sums."""
    if e.params.mode == "inter":
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
        table.add_column("channel", justify="right")
        table.add_column("a", justify="right")
        table.add_column("a²", justify="right")
        table.add_column("")
        shown = _around(len(e.channels), e.channels.index(e.channel))
        for i in shown:
            j, v = e.channels[i], e.values[i]
            mark = "← c" if j == e.channel else ""
            style = "bold" if j == e.channel else ""
            table.add_row(str(j), num(v), num(v * v), mark, style=style)
        hidden = len(e.channels) - len(shown)
        return [table, *([_elided(hidden, "channels")] if hidden else [])]
    rows = _around(len(e.rows), e.rows.index(e.row))
    cols = _around(len(e.cols), e.cols.index(e.col))
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
    table.add_column("y \\ x", justify="right")
    for i in cols:
        table.add_column(str(e.cols[i]), justify="right")
    for i in rows:
        cells: list[Text] = []
        for j in cols:
            v = e.values[i, j]
            if (e.rows[i], e.cols[j]) == (e.row, e.col):
                cells.append(Text(f"[{num(v)}]", style="bold"))
            else:
                cells.append(Text(num(v)))
        table.add_row(str(e.rows[i]), *cells)
    hidden = len(e.rows) * len(e.cols) - len(rows) * len(cols)
    return [table, *([_elided(hidden, "values of the window")] if hidden else [])]


def _steps_table() -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
    table.add_column("step")
    table.add_column("formula")
    table.add_column("value", justify="right")
    return table


def _notes(notes: Sequence[str]) -> list[RenderableType]:
    return [Text(note, style="dim") for note in notes]


def lrn_explanation(e: LRNExplanation, *, source: str,
                    notes: Sequence[str] = ()) -> RenderableType:
    """Everything about one LRN value: where, which neighbours, each step, the equation
    (``notes``: where the settings not given came from, one line each)."""
    p = e.params
    names = ", ".join(e.axes)
    head = Text(p.describe(), style="bold")
    src = Text.assemble(("input: ", "bold"), f"{printable(source)}, shape {_shape(e.shape)} "
                        f"read as ({names}), {e.dtype}")
    where, neighbourhood = _where(e)
    terms, _ = _sum_terms(e)
    alpha = p.alpha_text()
    steps = _steps_table()
    if e.values.size > MAX_TERMS:
        terms = f"the sum of the {e.values.size:,} squares of the window"
    steps.add_row("sum of squares", f"Σ a² = {terms}", num(e.sum_squares))
    steps.add_row("scaled sum", f"α' · Σ a² = {num(p.alpha_eff)} × {num(e.sum_squares)}   "
                  f"(α' = {alpha})", num(e.scaled))
    k_note = " (k ignored: this convention uses 1)" if p.k_eff != p.k else ""
    steps.add_row("denominator", f"d = k + α' · Σ a² = {num(p.k_eff)} + {num(e.scaled)}{k_note}",
                  num(e.denominator))
    steps.add_row("power", f"d^β = {_operand(e.denominator)}^{num(p.beta)}", num(e.power))
    steps.add_row("result", f"b = a / d^β = {num(e.value)} / {_operand(e.power)}",
                  Text(num(e.result), style="bold"))
    parts: list[RenderableType] = [head, src, *_notes(notes), where, neighbourhood,
                                   *_neighbourhood_table(e)]
    if p.mode == "intra":
        parts.append(Text("  [value] marks the position; the sum runs over all of these values",
                          style="dim"))
    parts += [steps, Text.assemble(("  " + lrn_equation(e), "bold"))]
    if e.power == 0:
        parts.append(Text("  0 / 0: an all-zero window with k = 0; normcli returns 0 here, "
                          "not NaN", style="dim"))
    parts.extend(_dtype_note(e.dtype, "lrn"))
    return Group(*parts)


def _dtype_note(dtype: str, command: str) -> list[RenderableType]:
    if dtype in ("float16", "float32"):
        return [Text(f"  computed in float64; normcli {command} works in float32 for {dtype} "
                     "input (agrees to ~7 digits)", style="dim")]
    return []


# --------------------------------------------------------------------------- batch norm


def _mean_terms(e: BNExplanation) -> str:
    if e.per == "activation" and e.count <= MAX_TERMS:
        return "(" + " + ".join(_operand(v) if i else num(v)
                                for i, v in enumerate(e.values)) + f") / {e.count}"
    return f"Σ x / {e.count}"


def _var_terms(e: BNExplanation) -> str:
    if e.per == "activation" and e.count <= MAX_TERMS:
        return "(" + " + ".join(_square(v - e.mean) for v in e.values) + f") / {e.count}"
    return f"Σ (x - {_operand(e.mean)})² / {e.count}"


def bn_equation(e: BNExplanation) -> str:
    """The whole computation as one line.

    >>> from normcli.ops.explain import explain_batch_norm, SEED_BATCH
    >>> bn_equation(explain_batch_norm(SEED_BATCH, (0, 0, 0, 0)))
    'y = 1 · (-4 - (-3)) / sqrt(0.666667 + 1e-05) + 0 = -1.22474'
    """
    return (f"y = {num(e.gamma)} · ({num(e.value)} - {_operand(e.mean)}) / "
            f"sqrt({num(e.var)} + {num(e.eps)}) + {_operand(e.beta)} = {num(e.result)}")


def bn_explanation(e: BNExplanation, *, source: str, stats_source: str | None = None,
                   notes: Sequence[str] = ()) -> RenderableType:
    """Everything about one batch-normalized value (``stats_source``: the file of
    saved statistics, when ``e.saved``; ``notes`` as for :func:`lrn_explanation`)."""
    names = ", ".join(e.axes)
    kind = "saved statistics" if e.saved else "batch statistics, biased variance"
    head = Text(f"batch norm per {e.per}: eps={num(e.eps)}, gamma={num(e.gamma)}, "
                f"beta={num(e.beta)} ({kind})", style="bold")
    src = Text.assemble(("input: ", "bold"), f"{printable(source)}, batch shape "
                        f"{_shape(e.shape)} read as "
                        f"({names}), {e.dtype}")
    pos = ", ".join(str(i) for i in e.position)
    stat = ", ".join(str(i) for i in e.statistic)
    what = f"activation ({stat})" if e.per == "activation" else f"channel {stat}"
    where = Text.assemble(("position: ", "bold"), f"({pos}) = sample {e.sample}, {what}: ",
                          ("x = " + num(e.value), "bold"))
    parts: list[RenderableType] = [head, src, *_notes(notes), where]
    if e.saved:
        parts.append(Text.assemble(
            ("statistics: ", "bold"), f"saved ({printable(stats_source or 'given')}): μ and σ² "
            f"of {what}, "
            f"fitted on m = {e.count:,} values; this batch's own values do not enter"))
    elif e.per == "activation":
        parts.append(Text.assemble(("statistics: ", "bold"),
                                   f"over the batch axis: the m = {e.count} values of "
                                   f"{what}, one per sample"))
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
        for header in ("sample", "x", "x - μ", ""):
            table.add_column(header, justify="right" if header else "left")
        shown = _around(len(e.values), e.sample)
        for i in shown:
            v, mine = e.values[i], i == e.sample
            table.add_row(str(i), num(v), num(v - e.mean), "← this sample" if mine else "",
                          style="bold" if mine else "")
        parts.append(table)
        if len(e.values) > len(shown):
            parts.append(Text(f"  … {len(e.values) - len(shown):,} more samples not shown "
                              "(all of them enter μ and σ²)", style="dim"))
    else:
        first = ", ".join(num(v) for v in e.values)
        more = ", …" if e.count > len(e.values) else ""
        parts.append(Text.assemble(
            ("statistics: ", "bold"),
            f"over the batch and spatial axes: {what} holds m = {e.count:,} values; "
            f"the first {len(e.values)} in storage order: {first}{more}"))
    steps = _steps_table()
    if e.saved:
        steps.add_row("mean", "μ, saved", num(e.mean))
        steps.add_row("variance", "σ², saved (biased)", num(e.var))
    else:
        steps.add_row("mean", f"μ = Σ x / m = {_mean_terms(e)}", num(e.mean))
        steps.add_row("variance", f"σ² = Σ (x - μ)² / m = {_var_terms(e)}", num(e.var))
    steps.add_row("std", f"sqrt(σ² + ε) = sqrt({num(e.var)} + {num(e.eps)})", num(e.std))
    steps.add_row("normalized", f"x̂ = (x - μ) / sqrt(σ² + ε) = ({num(e.value)} - "
                  f"{_operand(e.mean)}) / {num(e.std)}", num(e.normalized))
    steps.add_row("result", f"y = γ · x̂ + β = {num(e.gamma)} · {_operand(e.normalized)} + "
                  f"{_operand(e.beta)}", Text(num(e.result), style="bold"))
    parts.append(steps)
    parts.append(Text("  " + bn_equation(e), style="bold"))
    parts.extend(_dtype_note(e.dtype, "batchnorm"))
    return Group(*parts)
