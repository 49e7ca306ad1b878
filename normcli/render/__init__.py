"""Everything normcli draws for people: tables, sparklines, progress bars.

The only package that imports rich; it never imports click.  Functions build
renderables and return them; the command prints them on its own consoles.
Names are imported on first use, so that a quiet run never imports rich.
"""

from __future__ import annotations

from normcli._lazy import lazy_attributes

__all__ = ["make_consoles", "progress", "sparkline", "stats_json", "stats_table"]

__getattr__ = lazy_attributes(__name__, globals(), {
    "make_consoles": "normcli.render.console",
    "progress": "normcli.render.progress",
    "sparkline": "normcli.render.tables",
    "stats_json": "normcli.render.tables",
    "stats_table": "normcli.render.tables",
})


def __dir__() -> list[str]:
    return sorted(__all__)
