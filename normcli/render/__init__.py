"""Everything normcli draws for people: tables, sparklines, progress bars.

The only package that imports rich; it never imports click.  Functions build
renderables and return them; the command prints them on its own consoles.
"""

from normcli.render.console import make_consoles
from normcli.render.progress import progress
from normcli.render.tables import sparkline, stats_json, stats_table

__all__ = ["make_consoles", "progress", "sparkline", "stats_json", "stats_table"]
