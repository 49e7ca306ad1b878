"""Interrupts and termination signals unwind a run: temporary files removed, nothing committed.

Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` and SIGTERM, SIGHUP and SIGQUIT
raise ``SystemExit(128 + signum)`` in the main thread, so that every ``with``
block of the run removes its temporary files on the way out.  An exception
raised in a signal handler can be swallowed when it lands inside a ``__del__``
or weakref callback ("Exception ignored in ..."), so the handlers also set
:data:`terminated`, which a run checks (:func:`check`) before it puts any
output in place, and the command line before it exits.

The command line installs the handlers for its whole life (:func:`install`);
a library call installs them for the duration of the run when it is made from
the main thread and the signals still have their default action
(:func:`handled`), and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["terminated", "install", "handled", "deferred", "check", "exit_status", "SIGNALS"]

#: Set once an interrupt or a termination signal arrived during the run (cleared
#: when a library run starts); outputs are never committed after it.
terminated = threading.Event()

#: The signals that end a run cleanly (those that exist on this platform).
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                if hasattr(signal, name))

_status = [130]  # the exit status of the signal that set ``terminated``
_deferring = [0]  # depth of deferred() sections
_pending: list[int] = []  # signals that came during one


def _stop(signum, frame) -> None:
    _status[0] = 128 + signum
    terminated.set()
    if _deferring[0]:
        _pending.append(signum)
        return
    _raise(signum)


def _raise(signum: int) -> None:
    raise _stopping(signum)


def _stopping(signum: int) -> BaseException:
    """The exception a signal raises: ``KeyboardInterrupt`` for Ctrl-C, else
    ``SystemExit(128 + signum)``."""
    return KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)


@contextlib.contextmanager
def deferred(done: str | None = None) -> Iterator[None]:
    """A section the signals do not break: one that comes meanwhile is raised
    when the section ends (putting the staged outputs in place: all of them,
    rather than some), saying ``done`` (what the section did, when it ended
    normally: the last line must not read as if nothing was written).  Python
    runs signal handlers in the main thread only, so this holds whichever
    thread the signal was delivered to."""
    _deferring[0] += 1
    finished = False
    try:
        yield
        finished = True
    finally:
        _deferring[0] -= 1
        if not _deferring[0] and _pending:
            signum = _pending[0]
            _pending.clear()
            error = _stopping(signum)
            raise with_hint(error, done) if done is not None and finished else error


def _default(signum: int) -> bool:
    handler = signal.getsignal(signum)
    return handler is signal.SIG_DFL or handler is signal.default_int_handler


def install() -> None:
    """Handle the signals from now on (the command line's entry point).  An
    interrupt swallowed as "Exception ignored in ..." is not printed either:
    :data:`terminated` remembers it."""
    for signum in SIGNALS:
        signal.signal(signum, _stop)
    previous = sys.unraisablehook

    def quiet(unraisable) -> None:
        if not isinstance(unraisable.exc_value, (KeyboardInterrupt, SystemExit)):
            previous(unraisable)

    sys.unraisablehook = quiet


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Handle the signals left at their default action while the block runs.

    Signals with a handler of the caller's own are left alone, as is
    everything when called from another thread than the main one (where
    Python cannot install handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(SIGNALS[0]) is not _stop:  # (the command line keeps its flag)
        terminated.clear()
    saved = {signum: signal.signal(signum, _stop) for signum in SIGNALS if _default(signum)}
    try:
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


def check() -> None:
    """Raise the pending interrupt or termination, if its exception was swallowed."""
    if terminated.is_set():
        _raise(_status[0] - 128)


def exit_status() -> int:
    """``128 + signum`` of the signal received (130 if none)."""
    return _status[0]


def with_hint(error: BaseException, hint: str) -> BaseException:
    """The same interruption, saying ``hint`` (how far a resumable run got): a
    ``KeyboardInterrupt`` carries it as its message, a termination's ``SystemExit``
    as ``.hint`` (its code stays the exit status)."""
    if isinstance(error, KeyboardInterrupt):
        return KeyboardInterrupt(hint)
    stopped = SystemExit(error.code)
    stopped.hint = hint
    return stopped
