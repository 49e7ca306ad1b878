"""Progress of one stage of a run, reported through the caller's callback."""

from __future__ import annotations

import threading

from normcli.runs.options import Progress

__all__ = ["Stage"]


def check_progress(progress: object) -> None:
    """Refuse a ``progress`` that cannot be called, before any work (it was found
    only when the first stage began)."""
    if progress is not None and not callable(progress):
        from normcli.errors import ParameterError

        raise ParameterError(f"progress={progress!r} must be a callable: progress(stage, done, "
                             "total, nbytes)", param="progress", value=progress)


class Stage:
    """Counts the inputs done and the bytes read in one stage of a run.

    The callback (see :data:`normcli.runs.options.Progress`) is called with
    ``done=0`` now and after each :meth:`advance`, one call at a time, from
    whichever thread advances.  Without a callback this costs nothing.
    """

    def __init__(self, callback: Progress | None, stage: str, total: int) -> None:
        self.callback, self.stage, self.total = callback, stage, total
        self.done = self.nbytes = 0
        self._lock = threading.Lock()
        if callback is not None:
            callback(stage, 0, total, 0)

    def advance(self, nbytes: int = 0) -> None:
        if self.callback is None:
            return
        with self._lock:
            self.done += 1
            self.nbytes += nbytes
            self.callback(self.stage, self.done, self.total, self.nbytes)
