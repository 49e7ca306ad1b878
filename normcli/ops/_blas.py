"""Keep OpenBLAS to one thread while normcli's own threads run band products.

normcli runs its blocks on its own worker threads; a BLAS that also starts a
thread per core inside each of them puts several busy threads on every core
(the band-product window sums slowed down by up to 10x on a 2-core machine).
Like threadpoolctl, this finds the OpenBLAS that numpy loaded and sets its
thread count through ctypes, restoring it when the last user leaves.  Where no
OpenBLAS can be found (another BLAS, another OS) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from functools import lru_cache

_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)
_lock = threading.Lock()
_users = 0
_saved: int | None = None


@lru_cache(maxsize=1)
def _library() -> object | None:
    """The OpenBLAS library loaded in this process (by numpy), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if any(hasattr(lib, get) for get, _ in _SYMBOLS):
            return lib
    return None


@lru_cache(maxsize=1)
def _openblas() -> tuple[object, object] | None:
    """(get, set) of the OpenBLAS loaded in this process, or None."""
    lib = _library()
    for get, set_ in _SYMBOLS if lib is not None else ():
        if hasattr(lib, get) and hasattr(lib, set_):
            return getattr(lib, get), getattr(lib, set_)
    return None


_CONFIG = ("scipy_openblas_get_config64_", "scipy_openblas_get_config",
           "openblas_get_config64_", "openblas_get_config")


@lru_cache(maxsize=1)
def arithmetic() -> str:
    """What decides the last bits of a band product (LRN's window sums) here: numpy's
    version and its BLAS, with the kernels OpenBLAS chose for this CPU.

    OpenBLAS picks its kernels per CPU at start-up (``DYNAMIC_ARCH``), and they
    sum a product's terms in different orders: LRN outputs that a band product
    gives differed in the last bit between its Haswell and Sandybridge kernels
    (``OPENBLAS_CORETYPE``) on the same machine.  Batch norm and the statistics
    call no BLAS.  Read by the cluster engine on each worker, to say where a
    worker's LRN may differ from a local run's.
    """
    import numpy as np

    config = None
    lib = _library()
    for name in _CONFIG if lib is not None else ():
        if hasattr(lib, name):
            func = getattr(lib, name)
            func.restype = ctypes.c_char_p
            try:
                config = func().decode("ascii", "replace").strip()
            except Exception:  # noqa: BLE001 (a foreign library: say nothing of it)
                config = None
            break
    return f"numpy {np.__version__}, {' '.join((config or 'a BLAS other than OpenBLAS').split())}"


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within the block (and any overlapping ones, from any thread), BLAS uses one thread."""
    global _users, _saved
    funcs = _openblas()
    if funcs is None:
        yield
        return
    get, set_ = funcs
    with _lock:
        if _users == 0:
            _saved = int(get())
            if _saved != 1:
                set_(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved not in (None, 1):
                set_(_saved)
