"""The two consoles of a command: data to stdout, messages for people to stderr.

Build them inside the command (not at import time) so that flags such as
``--quiet`` and test runners that swap ``sys.stdout`` take effect.  rich decides
on colour and terminal features itself: it honours ``NO_COLOR``,
``FORCE_COLOR``, ``TERM=dumb`` and output that is not a terminal.

Width: a terminal's own, or ``COLUMNS`` when set.  Output that goes to a pipe
or a file has no width to wrap at (rich would assume 80 columns, and wrap
titles and captions there): it is drawn :data:`UNWRAPPED` columns wide, so
every line is as long as its content and every table its natural width.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

__all__ = ["make_consoles", "UNWRAPPED"]

#: The width of output to a pipe or file when ``COLUMNS`` does not give one.
UNWRAPPED = 1000


def _width(stream) -> int | None:
    """None (rich's own choice: the terminal's, or ``COLUMNS``), or :data:`UNWRAPPED`."""
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return None
    try:
        return None if stream.isatty() else UNWRAPPED
    except (AttributeError, ValueError, OSError):  # (a closed or odd stream)
        return UNWRAPPED


def make_consoles(*, quiet: bool = False) -> tuple[Console, Console]:
    """Return ``(stderr_console, stdout_console)``.

    Parameters
    ----------
    quiet : bool, optional
        Silence the stderr console (messages, progress bars); data on stdout
        is unaffected.

    Examples
    --------
    >>> err, out = make_consoles(quiet=True)
    >>> err.stderr, err.quiet, out.stderr
    (True, True, False)
    """
    return (Console(stderr=True, quiet=quiet, width=_width(sys.stderr)),
            Console(width=_width(sys.stdout)))
