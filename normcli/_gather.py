"""Objects whose copies on cluster workers send back what they gathered.

A run's per-input work is a closure over objects of the run (staged writes,
failures, notes).  On a cluster the closure is pickled and each worker
works on copies: what a copy records would be lost.  A :class:`Gathered`
object pickles as a *worker copy* tagged with a token; while a shard of work
runs (:func:`shard`), whatever the copies record goes into that shard's
record, which is returned to the client with the shard's results, and
:func:`absorb` hands each part to the object it came from.  A shard that
fails or is stopped undoes its own record (:meth:`Gathered.undo_gathered`:
staged files removed) instead.

Nothing here imports dask: the engine (:mod:`normcli.runs.cluster`) drives it.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from collections.abc import Iterator

__all__ = ["Gathered", "GatheredSet", "Sliced", "shard", "slicing", "absorb", "merged", "record"]

_client_objects: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_tokens_lock = threading.Lock()
_local = threading.local()


class Gathered:
    """Mixin: pickled, an object becomes a worker copy whose records come back.

    Subclasses give :meth:`worker_state` (what a copy starts from),
    :meth:`from_worker_state` (build the copy), :meth:`absorb_gathered` (on
    the client: take in a list of records) and optionally
    :meth:`undo_gathered` (on the worker: undo the records of a failed shard).
    A worker copy has ``gather_token`` set; it calls :func:`record`.
    """

    gather_token: str | None = None  # set on worker copies
    _client_token: str | None = None

    def client_token(self) -> str:
        """This object's token (made on first use; the object is then found by it)."""
        with _tokens_lock:
            if self._client_token is None:
                self._client_token = uuid.uuid4().hex[:12]
                _client_objects[self._client_token] = self
            return self._client_token

    def __reduce__(self):
        token = self.gather_token or self.client_token()
        return (_worker_copy, (type(self), token, self.worker_state()))

    def worker_state(self):
        raise NotImplementedError

    @classmethod
    def from_worker_state(cls, state):
        raise NotImplementedError

    def absorb_gathered(self, items: list) -> None:
        raise NotImplementedError

    @classmethod
    def undo_gathered(cls, items: list) -> None:
        return None


def _worker_copy(cls, token: str, state):
    obj = cls.from_worker_state(state)
    obj.gather_token = token
    return obj


def record(obj: Gathered, item) -> None:
    """Record ``item`` for the client (called by a worker copy, in a shard)."""
    records = getattr(_local, "records", None)
    if records is None:
        raise RuntimeError("a worker copy of a normcli object was used outside a shard")
    records.setdefault(obj.gather_token, (type(obj), []))[1].append(item)


@contextlib.contextmanager
def shard() -> Iterator[dict]:
    """The records of the work done in this block (this thread): ``{token: (cls, items)}``.
    If the block raises, the records are undone."""
    outer = getattr(_local, "records", None)
    _local.records = records = {}
    try:
        yield records
    except BaseException:
        undo(records)
        raise
    finally:
        _local.records = outer


def undo(records: dict) -> None:
    """Undo a shard's records (its staged files removed)."""
    for cls, items in records.values():
        with contextlib.suppress(Exception):
            cls.undo_gathered(items)
    records.clear()


def merged(first: dict, then: dict) -> dict:
    """The records of two shards, ``first``'s items before ``then``'s (a new dict)."""
    out = {token: (cls, list(items)) for token, (cls, items) in first.items()}
    for token, (cls, items) in then.items():
        out.setdefault(token, (cls, []))[1].extend(items)
    return out


def absorb(records: dict) -> None:
    """On the client: hand each part of a shard's records to its object."""
    for token, (cls, items) in records.items():
        obj = _client_objects.get(token)
        if obj is None:  # (the run is gone)
            cls.undo_gathered(items)
            continue
        obj.absorb_gathered(items)


class GatheredSet(set, Gathered):
    """A set whose worker copies' additions come back to it."""

    __reduce__ = Gathered.__reduce__  # (not set's)

    def worker_state(self):
        return set(self)

    @classmethod
    def from_worker_state(cls, state) -> GatheredSet:
        return cls(state)

    def add(self, item) -> None:
        if self.gather_token is not None and item not in self:
            record(self, item)
        super().add(item)

    def absorb_gathered(self, items: list) -> None:
        self.update(items)


class Sliced(list):
    """A list of a run's per-input values (its sources, their states, their
    targets).  Pickled for a shard of inputs (within :func:`slicing`), only the
    shard's items travel: a worker holds what its task reads, not the whole
    run (a million inputs would be ~100 MB per worker and per pass)."""

    def __reduce__(self):
        bounds = getattr(_local, "slice", None)
        if bounds is None:
            return (Sliced, (list(self),))
        lo, hi = bounds
        return (ShardItems, (lo, len(self), list.__getitem__(self, slice(lo, hi))))


class ShardItems:
    """A worker's part of a :class:`Sliced` list: indices ``lo ... lo + len(items) - 1``
    of a list of ``count`` (its length); any other index is an error."""

    __slots__ = ("lo", "count", "items")

    def __init__(self, lo: int, count: int, items: list) -> None:
        self.lo, self.count, self.items = lo, count, items

    def __len__(self) -> int:
        return self.count

    def _at(self, i: int) -> int:
        j = (i + self.count if i < 0 else i) - self.lo
        if not 0 <= j < len(self.items):
            raise IndexError(f"input {i} is not in this shard (inputs {self.lo} to "
                             f"{self.lo + len(self.items) - 1})")
        return j

    def __getitem__(self, i: int):
        return self.items[self._at(i)]

    def __setitem__(self, i: int, value) -> None:
        self.items[self._at(i)] = value

    def __iter__(self):
        raise TypeError("a shard's worker holds only its own inputs")


@contextlib.contextmanager
def slicing(lo: int, hi: int) -> Iterator[None]:
    """While pickling in this block (this thread), :class:`Sliced` lists carry
    only items ``lo ... hi - 1``."""
    outer = getattr(_local, "slice", None)
    _local.slice = (lo, hi)
    try:
        yield
    finally:
        _local.slice = outer
