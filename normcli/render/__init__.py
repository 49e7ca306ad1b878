"""Everything normcli draws for people: tables, sparklines, progress bars.

The only package that imports rich; it never imports click.  Functions build
renderables and return them; the command prints them on its own consoles.
Names are imported on first use, so that a quiet run never imports rich.
"""

from __future__ import annotations

import importlib

__all__ = ["make_consoles", "progress", "sparkline", "stats_json", "stats_table"]

_WHERE = {
    "make_consoles": "normcli.render.console",
    "progress": "normcli.render.progress",
    "sparkline": "normcli.render.tables",
    "stats_json": "normcli.render.tables",
    "stats_table": "normcli.render.tables",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
