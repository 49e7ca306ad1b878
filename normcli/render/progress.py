"""A progress bar for many inputs, shown only where a person can see it.

:func:`progress` shows files done / total, throughput in MB/s and elapsed time
on a terminal console when there is more than one input, and is a cheap no-op
otherwise (pipes, files, test consoles, ``--quiet``).  :class:`ProgressBar`
draws the stages of a :mod:`normcli.runs` run from its ``progress`` callback,
one bar per stage.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported only when a bar is drawn: start-up time
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["progress", "ProgressBar", "Tracker", "NullTracker"]


class NullTracker:
    """The tracker used when nothing is shown: every call does nothing."""

    __slots__ = ()

    def advance(self, n: int = 1, nbytes: int = 0) -> None:
        """Do nothing."""


class Tracker:
    """Advances a rich task; safe to call from worker threads."""

    def __init__(self, bar: Progress, task_id) -> None:
        self._bar = bar
        self._task_id = task_id
        self._lock = threading.Lock()
        self._nbytes = 0

    def advance(self, n: int = 1, nbytes: int = 0) -> None:
        """Count ``n`` more inputs done and ``nbytes`` more bytes processed."""
        with self._lock:
            self._nbytes += nbytes
            self._bar.update(self._task_id, advance=n, nbytes=self._nbytes)


@contextmanager
def progress(console: Console | None, total: int,
             description: str) -> Iterator[Tracker | NullTracker]:
    """Show a progress bar while the block runs, if it helps anyone.

    Parameters
    ----------
    console : rich.console.Console or None
        Where to draw; normally the stderr console.  None: nowhere.
    total : int
        Number of inputs.
    description : str
        Shown before the bar (markup is not interpreted).

    Yields
    ------
    Tracker or NullTracker
        Call ``.advance(n=1, nbytes=0)`` as inputs finish, from any thread.
        The bar is drawn only when ``console.is_terminal`` and ``total > 1``
        (and the console is not quiet); otherwise a no-op tracker is yielded.

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> with progress(Console(file=io.StringIO()), 3, "normalizing") as bar:
    ...     bar.advance(nbytes=1024)
    >>> type(bar).__name__
    'NullTracker'
    """
    if console is None or total <= 1 or console.quiet or not console.is_terminal:
        yield NullTracker()
        return
    bar = _bar(console)
    with bar:
        task_id = bar.add_task(description, total=total, nbytes=0)
        yield Tracker(bar, task_id)


class ProgressBar:
    """The ``progress`` callback of a run, drawn with :func:`progress`: a bar per
    stage (``"batch statistics"``, then ``"normalizing"``).

    Use as a context manager around the run, so that the last bar is removed
    even when the run fails.

    >>> import io
    >>> from rich.console import Console
    >>> with ProgressBar(Console(file=io.StringIO())) as bar:
    ...     bar("lrn", 0, 2, 0); bar("lrn", 1, 2, 100); bar("lrn", 2, 2, 200)
    """

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self._stage: str | None = None
        self._context = None
        self._tracker: Tracker | NullTracker = NullTracker()
        self._done = self._nbytes = 0

    def __call__(self, stage: str, done: int, total: int, nbytes: int) -> None:
        if stage != self._stage:
            self.close()
            self._stage, self._done, self._nbytes = stage, 0, 0
            self._context = progress(self.console, total, stage)
            self._tracker = self._context.__enter__()
        self._tracker.advance(done - self._done, nbytes - self._nbytes)
        self._done, self._nbytes = done, nbytes

    def close(self) -> None:
        """Remove the current bar."""
        context, self._context, self._tracker = self._context, None, NullTracker()
        if context is not None:
            context.__exit__(None, None, None)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.close()


def _bar(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class _ThroughputColumn(ProgressColumn):
        """Bytes per second over the elapsed time, in MB/s."""

        def render(self, task: Task) -> Text:
            elapsed = task.elapsed
            nbytes = task.fields.get("nbytes", 0)
            if not elapsed or not nbytes:
                return Text("    - MB/s", style="progress.data.speed")
            return Text(f"{nbytes / elapsed / 1e6:7.1f} MB/s", style="progress.data.speed")

    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        _ThroughputColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
