"""Where the per-input work of a run is executed: the engine interface.

A run hands an engine one function and a count; the engine calls
``fn(0) ... fn(count - 1)``, however it likes, and gives the results back in
input order.  Every engine keeps the same contract, so the run logic never
depends on how the work is scheduled:

* results come back in input order, whatever order the calls ran in;
* when calls fail, the failure of the **lowest index** is raised (as a
  one-job run would), once the calls in flight have ended;
* an interrupt (Ctrl-C, or a termination signal's ``SystemExit``) in the
  calling thread is raised at once, and no further calls start;
* ``on_done(i, result)`` (if given) is called once per successful call, from
  whichever thread ran it, for progress reporting.

:class:`ThreadEngine` runs the calls on worker threads of this process (numpy
releases the GIL in its loops); a process pool or a cluster is one more
subclass of :class:`Engine`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from normcli.ops._blas import single_threaded_blas
from normcli.ops._blocks import default_threads

__all__ = ["Engine", "ThreadEngine", "engine_for"]

Done = Callable[[int, Any], None]


class Engine:
    """The interface of an engine; use as a context manager around its calls."""

    #: How many calls may run at once.
    jobs: int = 1

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, kind, value, tb) -> None:
        return None

    def map(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None) -> list:
        """``[fn(0), ..., fn(count - 1)]`` under the contract of this module."""
        raise NotImplementedError

    def start(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None, *,
              offset: int = 0) -> Callable[[], list]:
        """Start ``fn(offset) ... fn(offset + count - 1)`` now; return a function that
        waits for their results, in order (for reading ahead while other work goes
        on).  ``on_done(j, result)`` is called with ``j`` counted from 0."""
        raise NotImplementedError

    def reduce(self, leaf: Callable[[int], Any], count: int,
               absorb: Callable[[Any, int, Any], Any], combine: Callable[[Any, Any], Any],
               empty: Callable[[], Any], *, window: int = 32,
               on_done: Done | None = None) -> Any:
        """``leaf(0) ... leaf(count - 1)`` reduced in the fixed shape of
        :mod:`normcli.runs.reduce` (groups folded by ``absorb``, a tree of
        ``combine``); the root partial.  Failures as for :meth:`map`.  Here: the
        calls started ``window`` inputs at a time, merged in this process."""
        from normcli.runs.reduce import reduce_local

        return reduce_local(self, leaf, count, absorb, combine, empty, window=window,
                            on_done=on_done)

    def kernel_threads(self, count: int) -> int | None:
        """Threads one kernel call may use when ``count`` inputs are worked on:
        all of the engine's for a single input, one each for many (so that
        the bits never depend on the number of jobs)."""
        return self.jobs if count == 1 else 1

    def unlike_here(self) -> list[str]:
        """Where the engine's calls run with other BLAS kernels than this process's
        (``"WHERE: WHAT"``, see :func:`normcli.ops._blas.arithmetic`): there LRN's
        band products may round differently.  Here: nowhere."""
        return []


class ThreadEngine(Engine):
    """Worker threads of this process (``jobs`` of them, the caller included).

    Leaving the ``with`` block by an error or an interrupt drops the queued
    calls and does not wait for the running ones (their outputs are refused
    once the run is discarded).  BLAS stays on one thread while the pool
    exists: the pool already uses the cores, and the bits stay the same.
    """

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = max(1, jobs if jobs is not None else default_threads())
        self._pool: ThreadPoolExecutor | None = None
        self._blas = single_threaded_blas()

    def __enter__(self) -> ThreadEngine:
        if self.jobs > 1:
            self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                            thread_name_prefix="normcli-file")
            self._blas.__enter__()
        return self

    def __exit__(self, kind, value, tb) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        self._blas.__exit__(kind, value, tb)
        pool.shutdown(wait=False, cancel_futures=kind is not None)

    def map(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None) -> list:
        """The calling thread works alongside the pool's (it would only wait
        otherwise: a wake-up per result).  Each thread takes the next index
        until none is left or a call fails."""
        if self._pool is None or count < 2:
            results = []
            for i in range(count):
                results.append(fn(i))
                if on_done is not None:
                    on_done(i, results[-1])
            return results
        results: list = [None] * count
        indices = iter(range(count))
        take = threading.Lock()
        failed: list[tuple[int, BaseException]] = []

        def work(caller: bool = False) -> None:
            while not failed:
                with take:
                    i = next(indices, None)
                if i is None:
                    return
                try:
                    results[i] = fn(i)
                    if on_done is not None:
                        on_done(i, results[i])
                except BaseException as e:  # noqa: BLE001 (raised by the caller)
                    failed.append((i, e))
                    if caller and not isinstance(e, Exception):
                        raise  # an interrupt: now, not after the other threads
                    return

        helpers = [self._pool.submit(work) for _ in range(min(self.jobs, count) - 1)]
        try:
            work(caller=True)
            for helper in helpers:
                helper.result()
        except BaseException as e:
            failed.append((-1, e))  # (stops the helpers taking more)
            raise
        if failed:
            raise min(failed, key=lambda f: f[0])[1]
        return results

    def start(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None, *,
              offset: int = 0) -> Callable[[], list]:
        """With one job, the calls run in the function returned."""
        if offset:
            fn = _shifted(fn, offset)
        if on_done is not None:
            fn = _reporting(fn, on_done)
        if self._pool is None:
            return lambda: [fn(i) for i in range(count)]
        futures = [self._pool.submit(fn, i) for i in range(count)]

        def results() -> list:
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

        return results


def _shifted(fn: Callable[[int], Any], offset: int) -> Callable[[int], Any]:
    return lambda j: fn(offset + j)


def _reporting(fn: Callable[[int], Any], on_done: Done) -> Callable[[int], Any]:
    def call(i: int):
        result = fn(i)
        on_done(i, result)
        return result

    return call


def engine_for(options) -> Engine:
    """The engine a run's options ask for: a Dask cluster with ``scheduler``
    (:class:`normcli.runs.cluster.ClusterEngine`), else ``jobs`` threads."""
    if getattr(options, "scheduler", None) is not None:
        from normcli.runs.cluster import ClusterEngine

        return ClusterEngine(options.scheduler)
    return ThreadEngine(options.jobs)
