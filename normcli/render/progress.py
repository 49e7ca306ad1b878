"""A progress bar for many inputs, shown only where a person can see it.

:func:`progress` shows files done / total, throughput in MB/s and elapsed time
on a terminal console when there is more than one input, and is a cheap no-op
otherwise (pipes, files, test consoles, ``--quiet``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported only when a bar is drawn: start-up time
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["progress", "Tracker", "NullTracker"]


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
