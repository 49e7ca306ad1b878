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

Statistics (pass 1) are a reduction in the fixed shape of
:mod:`normcli.runs.reduce`: each task reduces a shard of groups of inputs
(a subtree of the fixed tree) on its worker, merge tasks combine the shards'
partials by the same tree on the cluster, and only the root travels to the
client.  A local run computes the same tree, so the results are the local
run's, bit for bit, whatever the workers or shards.

dask and distributed are imported only when a run asks for ``scheduler``.
"""

from __future__ import annotations

import math
import os
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from normcli import _gather
from normcli.errors import InputError, NormcliError, OutputError, UsageError
from normcli.runs.engine import Done, Engine

__all__ = ["ClusterEngine", "ClusterError", "SHARD", "connect", "check_supported"]

#: Inputs per task at most.  A task costs ~1.6-2.8 ms of the client's and the
#: scheduler's time (measured by benchmarks/bench_cluster.py), an image 1-40 ms
#: of a worker's: shards of 256 keep the tasks' share under 1 % (and 5,000 tasks
#: for ImageNet).  Shards shrink as a pass nears its end (see :func:`shard_bounds`),
#: so that the workers finish together.
SHARD = 256
#: Shards per worker thread at least, while inputs last.
PER_THREAD = 4
#: Groups (of :data:`normcli.runs.reduce.GROUP` inputs) a reduction's shards shrink
#: to at the end of a pass, at least.
MIN_GROUPS = 4
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
            _check_address(address, None)
            client = distributed.Client(address, timeout=10, set_as_default=False)
        elif os.path.isfile(address):
            client = distributed.Client(_scheduler_file(address), timeout=10,
                                        set_as_default=False)
        else:
            raise UsageError(f"--scheduler {address!r}: give local, tcp://HOST:PORT or a "
                             "scheduler file (JSON)", param="scheduler", value=address)
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise ClusterError(address, f"cannot reach the scheduler: {e}".rstrip(": ")) from None
    return client, cluster


#: A scheduler file (``dask scheduler --scheduler-file``) is a few hundred bytes.
_SCHEDULER_FILE_BYTES = 1 << 20


def _scheduler_file(path: str) -> str:
    """The address in a scheduler file, checked (a file that is not one was a
    traceback after Dask's 20 s wait)."""
    import json

    from normcli.files.npy import read_bounded

    raw = read_bounded(path, _SCHEDULER_FILE_BYTES, what="a scheduler file")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ClusterError(path, f"not a scheduler file (JSON): {e}") from None
    address = doc.get("address") if isinstance(doc, dict) else None
    if not isinstance(address, str):
        raise ClusterError(path, 'not a scheduler file: no "address" string in it')
    _check_address(address, path)
    return address


def _check_address(address: str, source: str | None) -> None:
    """Refuse an address Dask cannot parse (an unknown scheme, no port) before a
    client is made: a usage error for ``--scheduler URL``, the file's for an
    address read from ``source``.  Host names are not looked up here."""
    from distributed.comm import parse_address, registry
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, location = parse_address(address, strict=True)
        registry.get_backend(scheme)
        if scheme in ("tcp", "tls", "ws", "wss"):
            port = parse_host_port(location)[1]
            if not 0 < int(port) < 65536:
                raise ValueError(f"port {port} is not in 1..65535")
    except ValueError as e:
        problem = f"{address!r} is not a scheduler address: {e}"
        if source is not None:
            raise ClusterError(source, problem) from None
        raise UsageError(f"--scheduler {problem}", param="scheduler", value=address) from None


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # noqa: BLE001 (not on a worker)
        return "?"


class _Watch:
    """On a worker: raises :class:`_Stopped` when the run was stopped (its Dask
    ``Event`` set, asked every :data:`CHECK_EVERY` seconds) or this task cancelled."""

    def __init__(self, event: str | None) -> None:
        self.event = None
        if event is not None:
            from distributed import Event

            self.event = Event(event)
        self.cancelled = _cancelled()
        self.checked = time.monotonic()
        if self.event is not None and self.event.is_set():
            raise _Stopped

    def check(self) -> None:
        if self.cancelled():
            raise _Stopped
        if self.event is not None and time.monotonic() - self.checked > CHECK_EVERY:
            self.checked = time.monotonic()
            if self.event.is_set():
                raise _Stopped

    def stopped(self) -> bool:
        return self.cancelled() or self.event is not None and self.event.is_set()


class _Heap:
    """While shards run on this worker: freed memory kept for the next input.

    A worker started by a Dask nanny has ``MALLOC_TRIM_THRESHOLD_=65536`` in
    its environment (``distributed.nanny.pre-spawn-environ``), which also
    fixes glibc's mmap threshold at 128 KiB: every array of an image is then
    mapped, faulted in page by page and unmapped again, input after input
    (measured: 17 % more CPU per input than the same work in a plain
    process).  While a shard runs, the thresholds are glibc's own dynamic
    maximum (32 MiB); when the last one ends they are put back as the
    environment set them and the heap is trimmed, as Dask wants between
    tasks.  Nothing happens without glibc or without the variable.
    """

    KEEP = 32 << 20
    _M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.libc = None
        trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
        if trim is None or not trim.isdigit():
            return
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            self.mallopt, self.malloc_trim = libc.mallopt, libc.malloc_trim
        except (OSError, AttributeError):
            return
        self.trim = int(trim)
        self.mmap = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072") or 131072)
        self.libc = libc

    def __enter__(self) -> None:
        if self.libc is None:
            return
        with self.lock:
            self.running += 1
            if self.running == 1:
                self.mallopt(self._M_MMAP_THRESHOLD, self.KEEP)
                self.mallopt(self._M_TRIM_THRESHOLD, 2 * self.KEEP)

    def __exit__(self, *exc) -> None:
        if self.libc is None:
            return
        with self.lock:
            self.running -= 1
            if self.running == 0:
                self.mallopt(self._M_MMAP_THRESHOLD, self.mmap)
                self.mallopt(self._M_TRIM_THRESHOLD, self.trim)
                self.malloc_trim(0)


_heap: _Heap | None = None
_heap_lock = threading.Lock()


def _kept_heap() -> _Heap:
    global _heap
    with _heap_lock:
        if _heap is None:
            _heap = _Heap()
        return _heap


def _run_shard(blob: bytes, start: int, stop: int, event: str | None):
    """On a worker: ``fn(start) ... fn(stop - 1)`` (``fn`` pickled for the shard); returns
    ``(results, records, error)`` where ``error`` is ``(index, exception)``
    (the shard's records undone) or ``("stopped", None)`` if the run was stopped."""
    results = []
    i = start
    try:
        with _kept_heap(), _gather.shard() as records:
            fn = pickle.loads(blob)
            watch = _Watch(event)
            for i in range(start, stop):
                results.append(fn(i))
                watch.check()
            if records and watch.stopped():
                raise _Stopped  # (its files removed: the client may have swept already)
    except _Stopped:
        return results, {}, ("stopped", None)
    except Exception as e:  # noqa: BLE001 (sent to the client, which raises it)
        return results, {}, (i, _portable(e, _worker_name()))
    return results, records, None


class _Part:
    """A reduction's partial on the cluster, with the records of its inputs."""

    __slots__ = ("partial", "records")

    def __init__(self, partial: Any, records: dict) -> None:
        self.partial, self.records = partial, records

    def __reduce__(self):
        return (_Part, (self.partial, self.records))


class _ShardFailed(Exception):
    """A reduction's shard failed: ``args`` are ``(index, error)``."""


def _reduce_shard(blob: bytes, g_lo: int, g_hi: int, count: int, event: str | None) -> _Part:
    """On a worker: the partial of groups ``g_lo ... g_hi - 1`` (a subtree of the
    fixed tree of :mod:`normcli.runs.reduce`).  Raises :class:`_ShardFailed`
    (or :class:`_Stopped`): a reduction's failure stops its merges too."""
    from normcli.runs.reduce import GROUP, Stack

    i = g_lo * GROUP
    try:
        with _kept_heap(), _gather.shard() as records:
            leaf, absorb, combine, empty = pickle.loads(blob)
            stack = Stack(combine)
            watch = _Watch(event)
            for g in range(g_lo, g_hi):
                part = empty()
                for i in range(g * GROUP, min((g + 1) * GROUP, count)):
                    part = absorb(part, i, leaf(i))
                    watch.check()
                stack.push(part)
    except _Stopped:
        raise
    except Exception as e:  # noqa: BLE001 (raised by the client)
        raise _ShardFailed(i, _portable(e, _worker_name())) from None
    return _Part(stack.result(), records)


def _combine_parts(blob: bytes, a: _Part, b: _Part) -> _Part:
    """On a worker: two neighbouring subtrees' partials merged (neither changed)."""
    return _Part(pickle.loads(blob)(a.partial, b.partial), _gather.merged(a.records, b.records))


def shard_bounds(count: int, jobs: int, shard: int | None = None) -> list[int]:
    """``[0, b1, ..., count]``: the shards of a pass over ``count`` inputs.  A given
    ``shard`` size, or *guided*: each shard a :data:`PER_THREAD` ``* jobs``-th of
    the inputs left, at most :data:`SHARD`, so that the last ones are short and
    the workers finish together.

    >>> shard_bounds(10, 1, shard=4)
    [0, 4, 8, 10]
    >>> shard_bounds(40, 2)
    [0, 5, 10, 14, 18, 21, 24, 26, 28, 30, 32, 33, 34, 35, 36, 37, 38, 39, 40]
    """
    if shard is not None:
        return [*range(0, count, shard), count] if count else [0]
    bounds, at = [0], 0
    while at < count:
        at += max(1, min(SHARD, math.ceil((count - at) / (PER_THREAD * jobs))))
        bounds.append(min(at, count))
    return bounds


def reduce_shards(groups: int, jobs: int, shard: int | None = None) -> list[tuple[int, int]]:
    """``[(g_lo, g_hi), ...]``: the shards of a reduction over ``groups`` groups,
    each a subtree of the fixed tree (an aligned block of ``2**j`` groups, or the
    last groups), guided as :func:`shard_bounds`: the sizes never grow, so each
    block stays aligned, nor shrink below :data:`MIN_GROUPS`.

    >>> reduce_shards(10, 1)
    [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    >>> [hi - lo for lo, hi in reduce_shards(100, 2)]
    [8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    """
    from normcli.runs.reduce import GROUP

    out: list[tuple[int, int]] = []
    lo, size = 0, None
    while lo < groups:
        want = (shard if shard is not None else
                min(SHARD, math.ceil((groups - lo) * GROUP / (PER_THREAD * jobs))))
        p = 1 << (max(1, want // GROUP).bit_length() - 1)  # (a power of two of groups)
        size = p if size is None else max(min(p, size), min(size, MIN_GROUPS))
        out.append((lo, min(lo + size, groups)))
        lo += size
    return out


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

    ``address``: see :func:`connect`; ``shard``: inputs per task (default:
    guided, see :func:`shard_bounds`; a reduction's tasks hold whole groups).
    """

    def __init__(self, address: str, *, shard: int | None = None) -> None:
        self.address, self.shard = address, shard
        self.client = self.cluster = None
        self.jobs = 1
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

    def unlike_here(self) -> list[str]:
        """The workers (connected now) whose numpy or BLAS kernels are not this
        process's, with theirs: one round trip to every worker."""
        from normcli.ops._blas import arithmetic

        here = arithmetic()
        try:
            there = self.client.run(arithmetic, on_error="return")
        except Exception:  # noqa: BLE001 (the run itself will say what is wrong)
            return []
        return [f"{worker}: {what}" for worker, what in sorted(there.items())
                if isinstance(what, str) and what != here]

    def _bounds(self, count: int) -> list[int]:
        return shard_bounds(count, self.jobs, self.shard)

    def map(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None) -> list:
        return self.start(fn, count, on_done)()

    @staticmethod
    def _pickled(obj, lo: int | None = None, hi: int | None = None) -> bytes:
        """``obj`` pickled for a task; with ``lo, hi``, for a shard of those inputs:
        the run's per-input lists (:class:`normcli._gather.Sliced`) carry only theirs."""
        import cloudpickle

        if lo is None:
            return cloudpickle.dumps(obj)
        with _gather.slicing(lo, hi):
            return cloudpickle.dumps(obj)

    def reduce(self, leaf: Callable[[int], Any], count: int,
               absorb: Callable[[Any, int, Any], Any], combine: Callable[[Any, Any], Any],
               empty: Callable[[], Any], *, window: int = 0,
               on_done: Done | None = None) -> Any:
        """The reduction of :mod:`normcli.runs.reduce` on the cluster: one task per
        shard of groups (a subtree) gives its partial, merge tasks combine them by
        the same tree, and only the root comes back to the client (with the
        records of every input).  ``on_done(i, None)`` as shards finish."""
        if count == 0:
            return empty()
        from normcli.runs.reduce import GROUP, split

        distributed = _import_distributed()
        client = self.client
        groups = math.ceil(count / GROUP)
        shards = reduce_shards(groups, self.jobs, self.shard)
        run = os.urandom(6).hex()
        event_name = f"normcli-stop-{run}"
        work = (leaf, absorb, combine, empty)
        leaves = client.map(_reduce_shard,
                            [self._pickled(work, lo * GROUP, min(hi * GROUP, count))
                             for lo, hi in shards],
                            [lo for lo, _ in shards], [hi for _, hi in shards],
                            [count] * len(shards), [event_name] * len(shards),
                            key=[f"normcli-shard-{run}-{k}" for k in range(len(shards))])
        merge = self._pickled(combine)
        by_range = dict(zip(shards, leaves, strict=True))
        merges: list = []

        def tree(lo: int, hi: int):
            if (lo, hi) in by_range:
                return by_range[(lo, hi)]
            p = split(hi - lo)
            merges.append(client.submit(_combine_parts, merge, tree(lo, lo + p),
                                        tree(lo + p, hi), key=f"normcli-merge-{run}-{lo}-{hi}"))
            return merges[-1]

        root = tree(0, groups)
        self._active[run] = [*leaves, *merges]
        index = {f.key: k for k, f in enumerate(leaves)}
        errors: list[tuple[int, BaseException]] = []
        try:
            for future in distributed.as_completed(leaves, loop=client.loop):
                lo, hi = shards[index[future.key]]
                if future.status == "cancelled":
                    continue
                if future.status == "error":
                    error = future.exception()
                    if isinstance(error, _ShardFailed):
                        errors.append(error.args)
                    elif not isinstance(error, _Stopped):  # (KilledWorker and the like)
                        errors.append((lo * GROUP, _lost(error)))
                    _stop(client, event_name)
                    continue
                if on_done is not None:
                    for i in range(lo * GROUP, min(hi * GROUP, count)):
                        on_done(i, None)
            if errors:
                raise min(errors, key=lambda e: e[0])[1]
            part = root.result()
        except BaseException:
            _stop(client, event_name)
            _settle(client, set(self._active.get(run, ())), f"normcli-shard-{run}-")
            raise
        finally:
            self._active.pop(run, None)
        _gather.absorb(part.records)
        return part.partial

    def start(self, fn: Callable[[int], Any], count: int, on_done: Done | None = None, *,
              offset: int = 0) -> Callable[[], list]:
        """Submit every shard now; the function returned gathers them (the records
        absorbed, ``on_done`` called on the client as shards come back)."""
        if count == 0:
            return list
        distributed = _import_distributed()
        client = self.client
        bounds = self._bounds(count)
        starts, stops = bounds[:-1], bounds[1:]
        run = os.urandom(6).hex()
        event_name = f"normcli-stop-{run}"
        futures = client.map(_run_shard,
                             [self._pickled(fn, offset + a, offset + b)
                              for a, b in zip(starts, stops, strict=True)],
                             [offset + s for s in starts], [offset + s for s in stops],
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
