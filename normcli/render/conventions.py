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


def _window(c: Convention) -> str:
    lo, hi = c.window.bounds(4)
    return f"{c.window.formula} (n=4: i-{lo} .. i+{hi})"


def conventions_data() -> list[dict]:
    """Every convention as plain data (what ``normcli conventions --json`` prints)."""
    out = []
    for c in CONVENTIONS.values():
        out.append({
            "name": c.name,
            "framework": c.framework,
            "n_means": c.n_means,
            "window": {"rule": c.window.rule, "formula": c.window.formula,
                       "n4": list(c.window.bounds(4)), "n5": list(c.window.bounds(5))},
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
#: Below this console width the conventions are drawn one after another: side by
#: side, six columns of ~20 characters would break words in the middle.
_CONVENTIONS_WIDE = 150


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


class ConventionsView:
    """The conventions from :data:`CONVENTIONS`: side by side, one column each, on
    a wide console; one after another (a name, then its fields) on a narrow one."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        convs = list(CONVENTIONS.values())
        rows = _convention_rows(convs)
        if options.max_width >= _CONVENTIONS_WIDE:
            table = Table(title=_CONVENTIONS_TITLE, title_justify="left",
                          caption=escape(_CONVENTIONS_CAPTION), caption_justify="left",
                          box=box.SIMPLE_HEAD, show_edge=False, show_lines=True)
            table.add_column("", style="bold", no_wrap=True)
            for c in convs:
                table.add_column(c.name, ratio=1, overflow="fold")
            for label, cells in rows:
                table.add_row(label, *(escape(cell) for cell in cells))
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
