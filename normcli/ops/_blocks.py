"""Shared machinery for the kernels: cache-sized blocks and threads.

The kernels cut an array into independent blocks that fit in the L2 cache,
do every elementwise step of one block while it is there (``out=`` into
per-thread scratch buffers), and hand the blocks to a small thread pool:
numpy releases the GIL inside its loops, so two blocks really run at once.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from normcli.ops._blas import single_threaded_blas

__all__ = [
    "run_blocks",
    "Scratch",
    "BLOCK_ELEMENTS",
    "default_threads",
]

#: Elements per block: 64 Ki float32 values are 256 KiB, so the two or three
#: scratch buffers of one block stay in a 1 MiB L2 cache.
BLOCK_ELEMENTS = 1 << 16

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

    def trim(self, limit: int) -> None:
        """Drop the buffers larger than ``limit`` bytes (kept ones are reused)."""
        for key in [k for k, b in self._buffers.items() if b.nbytes > limit]:
            del self._buffers[key]

    def get(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self._buffers.get((key, dtype))
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype)
            self._buffers[(key, dtype)] = buf
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
) -> None:
    """Call ``work(i, scratch)`` for every block ``i < count``.

    Blocks are dealt to ``threads`` workers (default :func:`default_threads`),
    each with its own :class:`Scratch`.  Small jobs run in the calling thread.
    The first exception raised by a block is re-raised here.
    """
    threads = default_threads() if threads is None else max(1, int(threads))
    threads = min(threads, count)
    if threads <= 1 or elements < _MIN_PARALLEL:
        # BLAS on one thread here too: the bits must not depend on ``threads``
        # (a threaded BLAS may split a product, and its rounding, differently).
        with _thread_scratch() as scratch, np.errstate(all="ignore"), single_threaded_blas():
            for i in range(count):
                work(i, scratch)
        return

    def worker(indices: Sequence[int]) -> None:
        with _thread_scratch() as scratch, np.errstate(all="ignore"):  # errstate: per thread
            for i in indices:
                work(i, scratch)

    # Contiguous runs of blocks per worker keep each worker's memory traffic local.
    # The calling thread takes the first run itself.  BLAS stays single-threaded
    # meanwhile: the workers already use the cores, and the bits stay the same.
    bounds = np.linspace(0, count, threads + 1).astype(int)
    pool = _pool(threads - 1)
    with single_threaded_blas():
        futures = [pool.submit(worker, range(bounds[t], bounds[t + 1]))
                   for t in range(1, threads)]
        try:
            worker(range(bounds[0], bounds[1]))
        finally:
            for future in futures:
                future.result()


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
