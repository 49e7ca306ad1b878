"""``normcli conventions``: the LRN conventions, generated from the table the kernels read.

:func:`conventions_table` draws :data:`normcli.ops.conventions.CONVENTIONS`
(side by side on a wide console, one after another on a narrow one);
:func:`conventions_data` is the same as plain data for ``--json``, and
:func:`conventions_markdown` the README's table (a test keeps them equal).
"""

from __future__ import annotations

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from normcli.ops.conventions import CONVENTIONS, Convention

__all__ = ["conventions_table", "conventions_data", "conventions_markdown", "ConventionsView"]

def _alpha_scaling(div: str | None) -> str:
    if div is None:
        return "–"
    return {"1": "α", "n": "α/n", "n^2": "α/n²"}[div]


def _k_intra(c: Convention) -> str:
    if not c.has_intra:
        return "–"
    return "k" if c.k_intra is None else f"{c.k_intra:g} (k ignored)"


def _allows(c: Convention, n: int) -> bool:
    return n >= c.n_min and (c.n_max is None or n <= c.n_max) and not (c.n_odd and n % 2 == 0)


def _window(c: Convention) -> str:
    """The window rule and an example: n=4 (an even window shows where its extra
    element goes), or n=5 where n must be odd (Caffe)."""
    n = 4 if _allows(c, 4) else 5
    lo, hi = c.window.bounds(n)
    return f"{c.window.formula} (n={n}: i-{lo} .. i+{hi})"


def conventions_data() -> list[dict]:
    """Every convention as plain data (what ``normcli conventions --json`` prints)."""
    out = []
    for c in CONVENTIONS.values():
        out.append({
            "name": c.name,
            "framework": c.framework,
            "n_means": c.n_means,
            "window": {"rule": c.window.rule, "formula": c.window.formula,
                       **{f"n{n}": list(c.window.bounds(n)) if _allows(c, n) else None
                          for n in (4, 5)}},
            "alpha_inter": _alpha_scaling(c.alpha_div_inter),
            "alpha_intra": None if c.alpha_div_intra is None else _alpha_scaling(
                c.alpha_div_intra),
            "k_intra": None if not c.has_intra else ("k" if c.k_intra is None else c.k_intra),
            "modes": list(c.modes),
            "defaults": {"n": c.default_n, "k": c.default_k, "alpha": c.default_alpha,
                         "beta": c.default_beta},
            "restrictions": c.restrictions(),
            "note": c.note,
        })
    return out


_CONVENTIONS_TITLE = "LRN conventions (normcli lrn --convention NAME)"
_CONVENTIONS_CAPTION = (
    "window: [i-lo, i+hi] around channel i (the same on each spatial axis within a channel), "
    "clipped at the borders, with n//2 = floor(n/2); α' inter and α'' intra: what alpha "
    "becomes; –: no within-channel LRN.")
#: The widest a column of the side-by-side table may be (unless one word is wider).
_COLUMN_WIDTH = 26


def _convention_rows(convs) -> list[tuple[str, list[str]]]:
    return [
        ("framework", [c.framework for c in convs]),
        ("n means", [c.n_means for c in convs]),
        ("window", [_window(c) for c in convs]),
        ("α' inter", [_alpha_scaling(c.alpha_div_inter) for c in convs]),
        ("α'' intra", [_alpha_scaling(c.alpha_div_intra) for c in convs]),
        ("k intra", [_k_intra(c) for c in convs]),
        ("defaults\nn, k, α, β", [f"{c.default_n}, {c.default_k:g}, {c.default_alpha:g}, "
                                  f"{c.default_beta:g}" for c in convs]),
        ("restrictions", [c.restrictions() for c in convs]),
        ("note", [c.note for c in convs]),
    ]


def _side_by_side(convs, rows, width: int) -> Table | None:
    """One column per convention in ``width`` columns, or None when some word would
    not fit whole: each column gets its longest word, and what is left is shared
    in proportion to how much more each could use (up to :data:`_COLUMN_WIDTH`)."""
    label_w = max(len(line) for label, _ in rows for line in label.split("\n"))
    columns = [[c.name, *(cells[k] for _, cells in rows)] for k, c in enumerate(convs)]
    least = [max(len(w) for text in texts for w in text.split()) for texts in columns]
    most = [max(lo, min(_COLUMN_WIDTH, max(map(len, texts)))) for lo, texts in
            zip(least, columns, strict=True)]
    room = width - label_w - (3 * (len(convs) + 1) - 1)  # (padding and separators)
    if sum(least) > room:
        return None
    spare, want = room - sum(least), sum(most) - sum(least)
    widths = [lo + (hi - lo) * min(spare, want) // max(want, 1)
              for lo, hi in zip(least, most, strict=True)]
    table = Table(title=_CONVENTIONS_TITLE, title_justify="left",
                  caption=escape(_CONVENTIONS_CAPTION), caption_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, show_lines=True)
    table.add_column("", style="bold", no_wrap=True, width=label_w)
    for c, w in zip(convs, widths, strict=True):
        table.add_column(c.name, width=w)
    for label, cells in rows:
        table.add_row(label, *(escape(cell) for cell in cells))
    return table


class ConventionsView:
    """The conventions from :data:`CONVENTIONS`: side by side, one column each, when
    the console is wide enough for every word of every column to stay whole; one
    after another (a name, then its fields) otherwise."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        convs = list(CONVENTIONS.values())
        rows = _convention_rows(convs)
        table = _side_by_side(convs, rows, options.max_width)
        if table is not None:
            yield table
            return
        yield Text(_CONVENTIONS_TITLE)
        for k, c in enumerate(convs):
            table = Table(box=None, show_header=False, padding=(0, 1), show_edge=False)
            table.add_column(style="bold", no_wrap=True)
            table.add_column(overflow="fold")
            for label, cells in rows[1:]:
                table.add_row(label.replace("\n", " "), escape(cells[k]))
            yield Text("")
            yield Text.assemble((c.name, "bold underline"), f"  {c.framework}")
            yield table
        yield Text("")
        yield Text(_CONVENTIONS_CAPTION)


def conventions_table() -> ConventionsView:
    """The LRN conventions, from :data:`CONVENTIONS` (see :class:`ConventionsView`)."""
    return ConventionsView()


def _short(value: float) -> str:
    """``1e-4`` rather than ``0.0001``: numbers as people write them in tables."""
    if value and abs(value) < 1e-3:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:g}"


def _restrictions(c: Convention) -> str:
    if c.n_max is not None:
        parts = [f"{c.n_min} ≤ n ≤ {c.n_max}"]
    else:
        parts = ["n odd" if c.n_odd else f"n ≥ {c.n_min}"]
    if c.k_min:
        parts.append(f"k ≥ {_short(c.k_min)}")
    if c.beta_min:
        parts.append(f"β ≥ {_short(c.beta_min)}")
    return ", ".join(parts)


def conventions_markdown(default: str = "seed") -> str:
    """The conventions as the Markdown table of the README, from :data:`CONVENTIONS`."""
    lines = ["| convention | n means | window around i | α' inter (intra) | k intra "
             "| defaults n, k, α, β | restrictions |", "|---|---|---|---|---|---|---|"]
    for c in CONVENTIONS.values():
        alpha = _alpha_scaling(c.alpha_div_inter)
        if c.has_intra:
            alpha += f" ({_alpha_scaling(c.alpha_div_intra)})"
        k = "–" if not c.has_intra else ("k" if c.k_intra is None else f"{c.k_intra:g}")
        defaults = ", ".join(_short(v) for v in (c.default_n, c.default_k, c.default_alpha,
                                                   c.default_beta))
        name = f"`{c.name}`" + (" (default)" if c.name == default else "")
        lines.append(f"| {name} | {c.n_means} | {c.window.math} | {alpha} | {k} | {defaults} "
                     f"| {_restrictions(c)} |")
    return "\n".join(lines)
