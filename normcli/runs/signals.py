"""Termination signals unwind a run like Ctrl-C: temporary files removed, nothing committed.

SIGTERM, SIGHUP and SIGQUIT raise ``SystemExit(128 + signum)`` in the main
thread, so that every ``with`` block of the run removes its temporary files on
the way out.  An exception raised in a signal handler can be swallowed when it
lands inside a ``__del__`` or weakref callback ("Exception ignored in ..."),
so the handler also sets :data:`terminated`, which a run checks before it
puts any output in place.

The command line installs the handlers for its whole life (:func:`install`);
a library call installs them for the duration of the run when it is made from
the main thread and the signals still have their default action
(:func:`handled`), and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["terminated", "install", "handled", "check", "exit_status", "SIGNALS"]

#: Set once a termination signal arrived; outputs are never committed after it.
terminated = threading.Event()

#: The signals that end a run cleanly (those that exist on this platform).
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT")
                if hasattr(signal, name))


_status = [143]  # the exit status of the signal that set ``terminated``


def _terminate(signum, frame) -> None:
    _status[0] = 128 + signum
    terminated.set()
    raise SystemExit(128 + signum)


def install() -> None:
    """Handle the termination signals from now on (the command line's entry point)."""
    for signum in SIGNALS:
        signal.signal(signum, _terminate)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Handle the termination signals left at their default action, while the block runs.

    Signals with a handler of their own (the caller's, or the command line's)
    are left alone, as is everything when called from another thread than
    the main one (where Python cannot install handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for signum in SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            saved[signum] = signal.signal(signum, _terminate)
    try:
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


def check() -> None:
    """Raise the pending termination, if a signal's exception was swallowed somewhere."""
    if terminated.is_set():
        raise SystemExit(exit_status())


def exit_status() -> int:
    """``128 + signum`` of the termination signal received (143 if none)."""
    return _status[0]
