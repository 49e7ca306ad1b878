"""A run's per-input work on a Dask cluster: :class:`ClusterEngine`.

The engine keeps the contract of :mod:`normcli.runs.engine`: ``fn(i)`` for
every index, results in input order, the failure of the lowest index raised,
an interrupt raised at once.  The calls go to the cluster in **shards** of
consecutive indices (one task per shard: a task costs milliseconds, an image
about as much), each shard run on one worker thread, input after input.

The function is pickled (cloudpickle) with what it refers to: the run's
objects that record something (staged writes, failures, notes, hints) pickle
as worker copies whose records come back with the shard's results and are
absorbed on the client (:mod:`normcli._gather`).  Workers stage their
outputs as tagged temporary files beside the targets (a file system that
every worker and the client see at the same paths); the client puts them in
place only when every shard succeeded.  A shard that fails removes its own
files; a stopped run (a failure, Ctrl-C, SIGTERM) sets a Dask ``Event`` that
running shards check between inputs, waits a bounded time for them, and
sweeps the tagged files of work lost with its worker.

Statistics are folded on the client in input order from the per-input
moments the shards return, exactly as the local engine folds them: the
results are the local run's, bit for bit, whatever the workers or shards.

dask and distributed are imported only when a run asks for ``scheduler``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

from normcli import _gather
from normcli.errors import InputError, NormcliError, OutputError, UsageError
from normcli.runs.engine import Done, Engine

__all__ = ["ClusterEngine", "ClusterError", "SHARD", "connect", "check_supported"]

#: Inputs per task at most.  A task costs ~7 ms on the client and scheduler
#: (measured by benchmarks/bench_cluster.py); 32 small images take ~100-300 ms,
#: so the overhead stays a few per cent while shards stay short enough to
#: balance the workers (at least 4 shards per worker thread when there are inputs).
SHARD = 32
#: Inputs a fold (pass 1) starts at once at most: their moments wait on the client
#: until the window is folded in order (6 KB each for 8-bit RGB, 1.5 MB for 16-bit).
MAX_WINDOW = 2048
#: Seconds a stopped run waits for the shards still running to notice.
STOP_WAIT = 10.0
#: How often (seconds) a running shard asks whether the run was stopped.
CHECK_EVERY = 0.2

INSTALL_HINT = 'pip install "normcli[dask]"'


class ClusterError(NormcliError):
    """The cluster cannot be reached or used, or lost the work (a worker killed)."""


#: Errors made of ``(source, problem)``: those from a worker name it.
_NAMED = (NormcliError, InputError, OutputError, ClusterError)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError("--scheduler", f"needs dask.distributed: {INSTALL_HINT}") from None
    return distributed


def connect(address: str):
    """``(client, cluster)`` for ``address``: ``local`` (a ``LocalCluster`` of one
    worker process per core, dashboard on 127.0.0.1 at a free port),
    ``tcp://HOST:PORT``, or the path of a scheduler file (JSON)."""
    distributed = _import_distributed()
    cluster = None
    try:
        if address == "local":
            cluster = distributed.LocalCluster(
                n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=50)
            client = distributed.Client(cluster, set_as_default=False)
        elif "://" in address:
            client = distributed.Client(address, timeout=10, set_as_default=False)
        elif os.path.isfile(address):
            client = distributed.Client(scheduler_file=address, timeout=10,
                                        set_as_default=False)
        else:
            raise UsageError(f"--scheduler {address!r}: give local, tcp://HOST:PORT or a "
                             "scheduler file (JSON)", param="scheduler", value=address)
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise ClusterError(address, f"cannot reach the scheduler: {e}".rstrip(": ")) from None
    return client, cluster


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # noqa: BLE001 (not on a worker)
        return "?"


def _run_shard(fn: Callable[[int], Any], start: int, stop: int, event: str | None):
    """On a worker: ``fn(start) ... fn(stop - 1)``; returns
    ``(results, records, error)`` where ``error`` is ``(index, exception)``
    (the shard's records undone) or ``("stopped", None)`` if the run was stopped."""
    stop_event = None
    if event is not None:
        from distributed import Event

        stop_event = Event(event)
    results = []
    checked = time.monotonic()
    i = start
    cancelled = _cancelled()
    try:
        with _gather.shard() as records:
            if stop_event is not None and stop_event.is_set():
                raise _Stopped
            for i in range(start, stop):
                results.append(fn(i))
                if cancelled():
                    raise _Stopped
                if stop_event is not None and time.monotonic() - checked > CHECK_EVERY:
                    checked = time.monotonic()
                    if stop_event.is_set():
                        raise _Stopped
            if records and (cancelled() or stop_event is not None and stop_event.is_set()):
                raise _Stopped  # (its files removed: the client may have swept already)
    except _Stopped:
        return results, {}, ("stopped", None)
    except Exception as e:  # noqa: BLE001 (sent to the client, which raises it)
        return results, {}, (i, _portable(e, _worker_name()))
    return results, records, None


class _Stopped(Exception):
    pass


def _cancelled() -> Callable[[], bool]:
    """Whether the task running in this thread was cancelled or released (its client
    gone): asked of the worker's own state, without a message to the scheduler."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker, key = get_worker(), thread_state.key
    except Exception:  # noqa: BLE001 (not on a worker)
        return lambda: False

    def cancelled() -> bool:
        task = worker.state.tasks.get(key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    return cancelled


def _executing(prefix: str, dask_worker=None) -> int:
    """On a worker (``client.run``): how many of the run's shards are executing."""
    return sum(1 for t in dask_worker.state.tasks.values()
               if str(t.key).startswith(prefix) and t.state in ("executing", "cancelled",
                                                               "long-running"))


def _portable(error: Exception, worker: str) -> Exception:
    """The error as the client should raise it: naming the worker, and picklable."""
    import pickle

    if type(error) in _NAMED:  # the same class, the worker named
        return type(error)(error.source, f"{error.problem} (on worker {worker})")
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error} (on worker {worker})")


def check_supported(options, sources, plan=None, preview=None) -> None:
    """Refuse, before any work, what a run on a cluster cannot do (a usage error)."""
    if getattr(options, "scheduler", None) is None:
        return

    def refuse(what: str, param: str, value) -> None:
        raise UsageError(f"--scheduler: {what}", param=param, value=value)

    if options.resume:
        refuse("--resume is for local runs", "resume", True)
    if preview is not None:
        refuse("--preview is for local runs", "preview", preview.path)
    if any(s.path is None or s.kind == "array" for s in sources):
        refuse("standard input cannot be read by the workers; give files", "inputs", "-")
    if plan is not None and plan.collects():
        refuse("the workers write one output per input: give -o DIR/ (or one input's "
               "-o FILE)", "output", options.output)


class ClusterEngine(Engine):
    """Shards of the calls as tasks of a ``distributed.Client``.

    ``address``: see :func:`connect`; ``shard``: inputs per task (default: up
    to :data:`SHARD`, at least four shards per worker thread).
    """

    def __init__(self, address: str, *, shard: int | None = None) -> None:
        self.address, self.shard = address, shard
        self.client = self.cluster = None
        self.jobs = 1
        self._sent: dict[int, tuple] = {}  # id(fn) -> (fn, its future on the workers)
        self._active: dict[str, list] = {}  # run -> futures started, not yet gathered

    def __enter__(self) -> ClusterEngine:
        self.client, self.cluster = connect(self.address)
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:  # noqa: BLE001
            threads = 0
        self.jobs = max(1, threads)
        return self

    def __exit__(self, kind, value, tb) -> None:
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        self._sent.clear()
        active, self._active = self._active, {}
        if client is not None and active:  # (started, never gathered: a fold cut short)
            for run in active:
                _stop(client, f"normcli-stop-{run}")
            _settle(client, {f for fs in active.values() for f in fs}, "normcli-shard-")
        if client is not None:
            client.close(timeout=5)
        if cluster is not None:
            cluster.close(timeout=10)

    def kernel_threads(self, count: int) -> int | None:
        """One thread per kernel call on a worker, always (bits independent of the cluster)."""
        return 1

    def fold_window(self) -> int:
        """Inputs a fold starts at once: four full shards per worker thread, at most
        :data:`MAX_WINDOW` (two windows of per-input moments wait on the client)."""
        return min(4 * self._shard_size(1 << 30) * self.jobs, MAX_WINDOW)

    def _shard_size(self, count: int) -> int:
        if self.shard is not None:
            return self.shard
        return max(1, min(SHARD, math.ceil(count / (4 * self.jobs))))

    def map(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None) -> list:
        return self.start(fn, count, on_done)()

    def _payload(self, fn: Callable[[int], Any]):
        """``fn`` on every worker, pickled and sent once (it refers to every input):
        a future that the shards take as their argument."""
        kept = self._sent.get(id(fn))
        if kept is None or kept[0] is not fn:
            kept = self._sent[id(fn)] = (fn, self.client.scatter(fn, broadcast=True,
                                                                 hash=False))
        return kept[1]

    def start(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None, *,
              offset: int = 0) -> Callable[[], list]:
        """Submit every shard now; the function returned gathers them (the records
        absorbed, ``on_done`` called on the client as shards come back)."""
        if count == 0:
            return list
        distributed = _import_distributed()
        client = self.client
        size = self._shard_size(count)
        starts = list(range(0, count, size))
        run = os.urandom(6).hex()
        event_name = f"normcli-stop-{run}"
        payload = self._payload(fn)
        futures = client.map(_run_shard, [payload] * len(starts),
                             [offset + s for s in starts],
                             [offset + min(s + size, count) for s in starts],
                             [event_name] * len(starts),
                             key=[f"normcli-shard-{run}-{k}" for k in range(len(starts))])
        index = {f.key: k for k, f in enumerate(futures)}
        self._active[run] = futures

        def results() -> list:
            out: list = [None] * len(starts)
            errors: list[tuple[int, BaseException]] = []
            pending = set(futures)
            try:
                for future in distributed.as_completed(futures, loop=client.loop):
                    pending.discard(future)
                    k = index[future.key]
                    try:
                        done, records, error = future.result()
                    except distributed.client.FutureCancelledError:
                        continue
                    except Exception as e:  # noqa: BLE001 (KilledWorker and the like)
                        errors.append((offset + starts[k], _lost(e)))
                        _stop(client, event_name)
                        continue
                    if error is not None:
                        if error[0] != "stopped":
                            errors.append(error)
                            _stop(client, event_name)
                        continue
                    _gather.absorb(records)
                    out[k] = done
                    if on_done is not None:
                        for j, r in enumerate(done):
                            on_done(starts[k] + j, r)
            except BaseException:
                _stop(client, event_name)
                _settle(client, pending, f"normcli-shard-{run}-")
                raise
            finally:
                self._active.pop(run, None)
            if errors:
                raise min(errors, key=lambda e: e[0])[1]
            return [r for shard in out for r in shard]

        return results


def _stop(client, event_name: str) -> None:
    """Stop the run's shards: each checks the event as it starts, between inputs
    and before it returns (then removing its own files)."""
    from distributed import Event

    try:
        Event(event_name, client=client).set()
    except Exception:  # noqa: BLE001 (the scheduler is gone: nothing runs)
        pass


def _settle(client, pending: set, prefix: str) -> None:
    """Cancel the run's shards, then wait (at most :data:`STOP_WAIT` seconds) until
    none is executing on any worker: each stops at its next input and removes its
    own files, and once none runs, no file of the run can appear after the sweep."""
    try:
        client.cancel(list(pending))
    except BaseException:  # noqa: BLE001 (a second Ctrl-C, the scheduler gone)
        pass
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        try:
            running = client.run(_executing, prefix, on_error="return")
            if not any(isinstance(n, int) and n for n in running.values()):
                return
        except BaseException:  # noqa: BLE001
            return
        time.sleep(0.05)


def _lost(error: Exception) -> Exception:
    """A task lost by the cluster (its worker died more often than Dask retries)."""
    name = type(error).__name__
    if name == "KilledWorker":
        return ClusterError("cluster", "a worker died running inputs (Dask retried; "
                            "it kept failing): nothing was written")
    return ClusterError("cluster", f"a task failed: {name}: {error}")
