"""The two consoles of a command: data to stdout, messages for people to stderr.

Build them inside the command (not at import time) so that flags such as
``--quiet`` and test runners that swap ``sys.stdout`` take effect.  rich decides
on colour and terminal features itself: it honours ``NO_COLOR``,
``FORCE_COLOR``, ``TERM=dumb`` and output that is not a terminal.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["make_consoles"]


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
    return Console(stderr=True, quiet=quiet), Console()
