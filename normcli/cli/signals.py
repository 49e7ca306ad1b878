"""SIGTERM: unwind like Ctrl-C, and never commit outputs after one.

The handler raises ``SystemExit(143)`` so that ``with`` blocks remove their
temporary files.  An exception raised in a signal handler can be swallowed
when it lands inside a ``__del__`` or weakref callback ("Exception ignored
in ..."), so the handler also sets :data:`terminated`, which the pipeline
checks before it puts any output in place.
"""

from __future__ import annotations

import signal
import threading

terminated = threading.Event()


def _terminate(signum, frame) -> None:
    terminated.set()
    raise SystemExit(128 + signum)


def install() -> None:
    """Install the SIGTERM handler (from the console entry point only)."""
    signal.signal(signal.SIGTERM, _terminate)
