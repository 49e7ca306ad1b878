"""The console script: signals handled before anything else is imported.

Ctrl-C or SIGTERM can come while click, numpy and the rest are still being
imported (a tenth of a second on a loaded machine); with the handlers in
place first, they end the program with its exit code and one line, never a
traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """``normcli ...`` and ``python -m normcli ...``."""
    try:
        from normcli.runs import signals

        signals.install()
        from normcli.cli.main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("normcli: interrupted\n")
        sys.exit(130)
    run(argv)
