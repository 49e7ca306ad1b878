"""The per-channel statistics of a dataset (``stats --per channel``): table, lines, JSON."""

from __future__ import annotations

import json
import math

__all__ = ["dataset_table", "dataset_lines", "dataset_json", "normalize_line", "HEADERS"]

#: The columns, in order.
HEADERS = ("channel", "pixels", "mean", "std", "std (n-1)", "min", "max", "nan/inf")


def _number(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.6g}"


def _rows(stats) -> list[list[str]]:
    return [[name, f"{int(stats.count[i]):,}", _number(stats.mean[i]), _number(stats.std[i]),
             _number(stats.std_unbiased[i]), _number(stats.min[i]), _number(stats.max[i]),
             f"{int(stats.nan[i] + stats.inf[i]):,}"]
            for i, name in enumerate(stats.channel_names())]


def normalize_line(stats) -> str:
    """``Normalize(mean=[...], std=[...])``, ready to paste into torchvision code.

    The std is the biased one (of all the pixels, as a batch norm would divide by).
    """
    mean = ", ".join(f"{v:.6f}" for v in stats.mean)
    std = ", ".join(f"{v:.6f}" for v in stats.std)
    return f"transforms.Normalize(mean=[{mean}], std=[{std}])"


def dataset_table(stats, *, title: str, caption: str | None = None):
    """A rich table of the per-channel statistics, one row per channel."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False,
                  title_justify="left", caption_justify="left", pad_edge=False)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
    for row in _rows(stats):
        bad = row[-1] != "0"
        table.add_row(Text(row[0], style="bold"), *row[1:-1],
                      Text(row[-1], style="bold red" if bad else ""))
    return table


def dataset_lines(stats, *, title: str) -> str:
    """The same as plain aligned text: a title, a header, one line per channel
    (for a pipe or a file: greppable, no colours, never wrapped)."""
    rows = [list(HEADERS), *_rows(stats)]
    widths = [max(len(r[j]) for r in rows) for j in range(len(HEADERS))]
    lines = [f"# {title}"]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    return "\n".join(lines)


def _float(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def dataset_json(stats, *, params: dict, extra: dict | None = None) -> str:
    """The statistics as one JSON object: ``images``, ``channels`` (a list of
    ``{name, count, mean, var, var_unbiased, std, std_unbiased, min, max, nan,
    inf}``), and ``mean``/``std`` lists (biased std) ready for ``Normalize``."""
    channels = []
    for i, name in enumerate(stats.channel_names()):
        channels.append({"name": name, "count": int(stats.count[i]),
                         "mean": _float(stats.mean[i]), "var": _float(stats.var[i]),
                         "var_unbiased": _float(stats.var_unbiased[i]),
                         "std": _float(stats.std[i]),
                         "std_unbiased": _float(stats.std_unbiased[i]),
                         "min": _float(stats.min[i]), "max": _float(stats.max[i]),
                         "nan": int(stats.nan[i]), "inf": int(stats.inf[i])})
    doc = {"per": "channel", "params": params, "images": int(stats.images),
           "channels": channels, "mean": [c["mean"] for c in channels],
           "std": [c["std"] for c in channels], **(extra or {})}
    return json.dumps(doc, indent=2, allow_nan=False)
