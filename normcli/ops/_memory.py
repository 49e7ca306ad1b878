"""Recycled memory for large results: a small pool of output buffers.

A fresh result of tens of megabytes is a fresh memory map: the kernel zeroes
and maps every page on first touch, which costs about as much as the
normalization's own reads and writes ((32, 96, 55, 55) float32, 37 MB: a copy
into a preallocated array took 2.5 ms, into a new one 4.3 ms).  onnxruntime
and PyTorch keep such memory in an arena.  :func:`empty` does the same for
results of at least :data:`MIN_BYTES`: it keeps the last few buffers it
handed out and hands one out again only once nothing but the pool refers to
it.

Every view of a returned array (slices, reshapes, ``memoryview``,
``torch.from_numpy``, ``np.frombuffer`` of it) keeps the array's base alive:
the buffer the pool holds.  So a buffer whose reference count is the pool's
own, with no weak references either, is unreachable from anywhere else and
free to reuse; anything still reachable is never handed out again.

The pool holds at most :func:`pool_bytes` bytes (kept buffers, in use or
not) and :data:`MAX_BUFFERS` buffers.  ``NORMCLI_OUTPUT_POOL`` sets that size
(``0`` turns the pool off: every result is a new array); by default it is 256
MiB or an eighth of ``NORMCLI_MAX_BYTES``, whichever is smaller.
:func:`release` drops the idle buffers (the runs over files call it when an
input would not fit in the memory limit with them).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import weakref

import numpy as np

__all__ = ["empty", "release", "pool_bytes", "idle_bytes", "POOL_ENV", "MIN_BYTES"]

#: Environment variable: the pool's size in bytes (``0`` turns it off).
POOL_ENV = "NORMCLI_OUTPUT_POOL"
#: Results smaller than this are plain new arrays (numpy and malloc recycle
#: small blocks well; the page faults matter for large ones).
MIN_BYTES = 1 << 20
#: Buffers the pool keeps at most.
MAX_BUFFERS = 4
#: A kept buffer serves a request of up to this fraction smaller than itself
#: (a larger one would hold idle memory for the whole life of the result).
_SLACK = 8  # 1/8

_DEFAULT_POOL = 256 << 20
_lock = threading.Lock()
_buffers: list[np.ndarray] = []  # raw uint8 buffers, oldest first


def _references(buffers: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(buffers[i])


# The count of a buffer referred to by nothing but its list, measured the way
# _free measures it (so that interpreter versions that count differently agree).
_ALONE = _references([np.empty(1, np.uint8)], 0)


def _free(i: int) -> bool:
    """Whether nothing but the pool refers to buffer ``i`` (strongly or weakly)."""
    return _references(_buffers, i) <= _ALONE and weakref.getweakrefcount(_buffers[i]) == 0


def pool_bytes() -> int:
    """The pool's size: ``NORMCLI_OUTPUT_POOL`` (``0``: off; ``64M``, ``1G``...),
    else the smaller of 256 MiB and an eighth of ``NORMCLI_MAX_BYTES``.

    Raises
    ------
    normcli.errors.InputError
        ``NORMCLI_OUTPUT_POOL`` is not a size (as a bad ``NORMCLI_MAX_BYTES`` is).
    """
    from normcli.files.limits import parse_size, resolve_max_bytes

    env = os.environ.get(POOL_ENV)
    if env is not None and env.strip():
        try:
            return parse_size(env)
        except ValueError:
            from normcli.errors import InputError

            raise InputError(POOL_ENV, f"{env!r} is not a size (0 to turn the pool off, "
                             "or e.g. 64M, 1G)") from None

    try:
        limit = resolve_max_bytes()
    except Exception:  # (a bad NORMCLI_MAX_BYTES is the readers' to report)
        return _DEFAULT_POOL
    return min(_DEFAULT_POOL, limit // 8)


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` with arbitrary contents, as
    ``np.empty``: memory the pool recycles for large ones, never memory that
    anything else can still reach."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    cap = pool_bytes()
    if nbytes > cap:
        return np.empty(shape, dtype)
    with _lock:
        best = -1
        for i in range(len(_buffers)):
            size = _buffers[i].nbytes
            if (nbytes <= size <= nbytes + nbytes // _SLACK and _free(i)
                    and (best < 0 or size < _buffers[best].nbytes)):
                best = i
        if best >= 0:
            buf = _buffers.pop(best)
            _buffers.append(buf)  # most recently used last
        else:
            # Make room first: idle buffers given up before the new one is
            # allocated, not after, so they do not add to the peak.
            while _buffers and (len(_buffers) >= MAX_BUFFERS
                                or sum(b.nbytes for b in _buffers) + nbytes > cap):
                del _buffers[0]
            buf = np.empty(nbytes, np.uint8)
            _buffers.append(buf)
        # (the view is made under the lock: from here on buf is no longer free)
        return buf[:nbytes].view(dtype).reshape(shape)


def release() -> int:
    """Drop every idle buffer (buffers in use stay with their arrays); the bytes
    given back."""
    with _lock:
        freed = 0
        for i in reversed(range(len(_buffers))):
            if _free(i):
                freed += _buffers[i].nbytes
                del _buffers[i]
        return freed


def idle_bytes() -> int:
    """Bytes the pool holds in buffers that nothing else refers to."""
    with _lock:
        return sum(_buffers[i].nbytes for i in range(len(_buffers)) if _free(i))
