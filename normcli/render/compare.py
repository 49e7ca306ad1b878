"""``normcli compare``'s views: normalizations of one input side by side, LRN versus BN.

:func:`compare_table` puts the statistics after several normalizations of the
same input side by side (:func:`compare_json` is its JSON);
:func:`lrn_vs_bn_table` is the "LRN and BN side by side" table of
``docs/normalization.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from normcli.ops.summary import Summary
from normcli.render.tables import format_number, sparkline

__all__ = ["compare_table", "compare_json", "lrn_vs_bn_table", "LRN_VS_BN"]

_STATS = ("min", "max", "mean", "std")


def compare_table(
    columns: Sequence[tuple[str, Summary | None]], *, title: str, caption: str | None = None
) -> RenderableType:
    """Statistics of the same input under several normalizations, one column each.

    ``columns`` is ``[(heading, summary or None)]``; ``None`` draws ``–`` (not available).
    Rows: min, max, mean, std, zeros and a histogram over each column's own [min, max].
    The title and caption (rich markup) are lines of their own above and below the table.
    """
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("statistic", no_wrap=True, min_width=9)
    for heading, _ in columns:
        table.add_column(heading, justify="right", no_wrap=True)
    for name in _STATS:
        table.add_row(name, *(format_number(getattr(s, name)) if s else "–" for _, s in columns))
    table.add_row("zeros", *(f"{s.zeros:,}" if s else "–" for _, s in columns))
    if any(s is not None and s.nonfinite for _, s in columns):
        table.add_row("nan/inf", *(f"{s.nonfinite:,}" if s else "–" for _, s in columns))
    table.add_row("histogram", *(Text(sparkline(s.hist, width=16), no_wrap=True) if s else "–"
                                 for _, s in columns))
    parts: list[RenderableType] = [Text.from_markup(title, style="bold"), table]
    if caption:
        parts.append(Text.from_markup(caption, style="dim"))
    return Group(*parts)


def compare_json(columns: Sequence[tuple[str, str, Summary | None]], *, params: dict) -> str:
    """``{"params": {...}, "columns": {key: {"label":..., "stats": {...} or null}}}``."""
    doc = {
        "params": params,
        "columns": {
            key: {"label": label, "stats": None if s is None else s.to_dict()}
            for key, label, s in columns
        },
    }
    return json.dumps(doc, indent=2, allow_nan=False)


#: The "LRN and BN side by side" table of docs/normalization.md.
LRN_VS_BN: tuple[tuple[str, str, str], ...] = (
    ("trainable", "no", "yes (γ, β)"),
    ("neighbourhood",
     "n adjacent channels (inter) or an n-wide square in one channel (intra), same sample",
     "the same position (per activation) or channel (per channel) across the whole mini-batch"),
    ("depends on other samples", "no", "yes"),
    ("hyperparameters", "k, α, β, n", "ε (and momentum for running statistics)"),
    ("purpose", "lateral inhibition, local contrast for unbounded activations (ReLU)",
     "reduce internal covariate shift, faster training"),
    ("used in", "AlexNet, GoogLeNet (2012-2014)", "almost every CNN since 2015"),
)


def lrn_vs_bn_table() -> Table:
    """LRN and BN side by side (the table of docs/normalization.md)."""
    table = Table(title="LRN and BN side by side", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, show_lines=False)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("LRN", max_width=38)
    table.add_column("BN", max_width=38)
    for row in LRN_VS_BN:
        table.add_row(*row)
    return table
