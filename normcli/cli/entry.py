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
    _standard_streams()
    try:
        from normcli.runs import signals

        signals.install()
        from normcli.cli.main import main as run

        run(argv)  # (it turns every interrupt into its exit status, once its handlers are in)
    except KeyboardInterrupt:  # (before they are: while importing, or setting them up)
        sys.stderr.write("normcli: interrupted\n")
        sys.exit(130)


def _standard_streams() -> None:
    """A standard input or output that was closed (``<&-``, ``>&-``; Python then
    leaves ``sys.stdin`` or ``sys.stdout`` None) is replaced by a stream that
    fails only when used, with one line that names it: a run whose inputs and
    outputs are files does not need them.  An open standard output's failed
    writes name it (:func:`normcli.cli._streams.named_output`)."""
    from normcli.cli._streams import closed_input, closed_output, named_output

    if sys.stdin is None:
        sys.stdin = closed_input()
    sys.stdout = closed_output() if sys.stdout is None else named_output(sys.stdout)
