"""Shared machinery for the kernels: cache-sized blocks and threads.

The kernels cut an array into independent blocks that stay in the cache
(L2 or the shared L3), do every elementwise step of one block while it is
there (``out=`` into per-thread scratch buffers), and hand the blocks to a
small thread pool: numpy releases the GIL inside its loops, so two blocks
really run at once, as long as each call is long enough that handing the GIL
back and forth (tens of microseconds on a virtual machine) does not dominate.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from normcli.ops._blas import single_threaded_blas

__all__ = [
    "run_blocks",
    "Scratch",
    "default_threads",
    "serial_scratch",
]

_MIN_PARALLEL = 1 << 18  # below this many elements, threads cost more than they save


def default_threads() -> int:
    """Worker threads: ``NORMCLI_THREADS`` if set, else the usable cores (at most 8)."""
    env = os.environ.get("NORMCLI_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


class Scratch:
    """Per-thread reusable buffers, so blocks allocate nothing in the hot loop."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}
        self.busy = False
        self.large = False  # holds a buffer above the kept size: trim it after use
        self._marks: dict[tuple[str, np.dtype], object] = {}  # see padded()

    def trim(self, limit: int) -> None:
        """Drop the buffers larger than ``limit`` bytes (kept ones are reused)."""
        for key in [k for k, b in self._buffers.items() if b.nbytes > limit]:
            del self._buffers[key]
            self._marks.pop(key, None)
        self.large = False

    def padded(self, key: str, shape: tuple[int, ...], pads: tuple[tuple[int, int], ...],
               dtype: np.dtype) -> np.ndarray:
        """A buffer of ``shape`` whose ``pads`` (``(before, after)`` per axis) are zero.

        The padding is zeroed when the buffer or its layout is new, and trusted
        to still be zero otherwise: the caller writes only the interior.
        """
        buf = self.get(key, shape, dtype)
        mark = (shape, pads)
        if self._marks.get((key, dtype)) != mark:
            for axis, (before, after) in enumerate(pads):
                lead = (slice(None),) * axis
                if before:
                    buf[(*lead, slice(0, before))] = 0
                if after:
                    buf[(*lead, slice(shape[axis] - after, None))] = 0
            self._marks[(key, dtype)] = mark
        return buf

    def get(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = math.prod(shape)
        buf = self._buffers.get((key, dtype))
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype)
            self._buffers[(key, dtype)] = buf
            self._marks.pop((key, dtype), None)
            if buf.nbytes > _KEPT_SCRATCH_BYTES:
                self.large = True
        return buf[:size].reshape(shape)


_local = threading.local()
#: A thread keeps scratch buffers up to this size from call to call; a larger
#: one (a whole channel of a big batch, when a block cannot be smaller) is
#: freed when the call ends.
_KEPT_SCRATCH_BYTES = 8 << 20


@contextlib.contextmanager
def _thread_scratch() -> Iterator[Scratch]:
    """This thread's scratch buffers, kept from call to call.

    A fresh buffer per call would be a fresh memory map per call for large
    blocks: page faults on every use, which cost more than the work on
    streams of small batches.  A nested call gets buffers of its own.
    """
    scratch = getattr(_local, "scratch", None)
    if scratch is None or scratch.busy:
        scratch = Scratch()
        if getattr(_local, "scratch", None) is None:
            _local.scratch = scratch
    scratch.busy = True
    try:
        yield scratch
    finally:
        scratch.busy = False
        scratch.trim(_KEPT_SCRATCH_BYTES)


def run_blocks(
    work: Callable[[int, Scratch], None],
    count: int,
    *,
    elements: int,
    threads: int | None = None,
    blas: bool = True,
) -> None:
    """Call ``work(i, scratch)`` for every block ``i < count``.

    Blocks are dealt to ``threads`` workers (default :func:`default_threads`),
    each with its own :class:`Scratch`.  Small jobs run in the calling thread.
    The first exception raised by a block is re-raised here.  ``blas=False``
    says that no block calls BLAS (no matrix product), which spares the cost
    of pinning it to one thread.
    """
    if count <= 1 or elements < _MIN_PARALLEL:
        threads = 1
    else:
        threads = default_threads() if threads is None else max(1, int(threads))
        threads = min(threads, count)
    if threads <= 1:
        _run_serial(work, count, blas)
        return

    # Blocks are handed out one at a time, in order, to whichever worker is free:
    # on a shared machine one core may be slowed down, and a fixed share per
    # worker would then wait for it.  A block's result does not depend on which
    # worker computes it, so the bits do not depend on ``threads``.
    queue = itertools.count()  # next() on a count is atomic under the GIL

    def worker() -> None:
        with _thread_scratch() as scratch, np.errstate(all="ignore"):  # errstate: per thread
            for i in queue:
                if i >= count:
                    return
                work(i, scratch)

    # The calling thread works too.  BLAS stays single-threaded meanwhile: the
    # workers already use the cores, and the bits stay the same.
    pool = _pool(threads - 1)
    with single_threaded_blas():
        futures = [pool.submit(worker) for _ in range(threads - 1)]
        try:
            worker()
        finally:
            for future in futures:
                future.result()


def serial_scratch() -> Scratch:
    """This thread's scratch buffers for a small job done right here, outside
    :func:`run_blocks` (or fresh ones, if a job in this thread holds them)."""
    scratch = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _local.scratch = Scratch()
    return scratch if not scratch.busy else Scratch()


def _run_serial(work: Callable[[int, Scratch], None], count: int, blas: bool) -> None:
    """The blocks in the calling thread, with as little fixed cost as possible:
    small inputs spend more time here than in their arithmetic."""
    scratch = getattr(_local, "scratch", None)
    if scratch is None or scratch.busy:
        with _thread_scratch() as scratch:
            _run_serial_with(work, count, blas, scratch)
        return
    scratch.busy = True
    try:
        _run_serial_with(work, count, blas, scratch)
    finally:
        scratch.busy = False
        if scratch.large:
            scratch.trim(_KEPT_SCRATCH_BYTES)


def _run_serial_with(work, count: int, blas: bool, scratch: Scratch) -> None:
    # BLAS on one thread here too: the bits must not depend on ``threads``
    # (a threaded BLAS may split a product, and its rounding, differently).
    with np.errstate(all="ignore"):
        if blas:
            with single_threaded_blas():
                for i in range(count):
                    work(i, scratch)
        else:
            for i in range(count):
                work(i, scratch)


_pool_lock = threading.Lock()
_shared_pool: ThreadPoolExecutor | None = None


def _pool(workers: int) -> ThreadPoolExecutor:
    """One long-lived pool for the kernels: starting threads per call costs ~1 ms."""
    global _shared_pool
    with _pool_lock:
        if _shared_pool is None or _shared_pool._max_workers < workers:
            # A larger pool replaces the old one, which is left to finish what other
            # threads may still be submitting to it (shutting it down would race them).
            _shared_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="normcli")
            _shut_down_at_exit(_shared_pool)
        return _shared_pool


def _shut_down_at_exit(pool: ThreadPoolExecutor) -> None:
    """Wake the pool's idle threads when the interpreter exits, before it joins them.

    An interrupt that lands in ``submit`` just after a worker thread started,
    before the executor recorded it, leaves a worker that the standard exit
    handler never wakes: the interpreter then waits for it forever.  An
    explicit ``shutdown`` wakes every worker of the pool, recorded or not.
    ``threading._register_atexit`` is what concurrent.futures itself uses to
    run before the threads are joined (``atexit`` runs after).
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(pool.shutdown, wait=False)
