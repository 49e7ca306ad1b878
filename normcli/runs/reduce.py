"""Reductions over many inputs in one fixed shape, whatever runs them.

A run's statistics are a reduction: every input gives a result (its
moments), and the results are merged.  Merging float moments is exact only
to rounding, so the *order* of the merges decides the last bits.  Here the
order is fixed by the number of inputs alone:

1. the inputs fall into **groups** of :data:`GROUP` consecutive inputs; each
   group's results are folded in input order into a fresh *partial*
   (``absorb(partial, i, result)``);
2. the groups' partials are merged by a fixed binary **tree** over the group
   indices: ``[0, m)`` splits at the largest power of two below ``m``
   (:func:`split`), so every aligned block of ``2**j`` groups is a subtree.

A local engine walks the tree as a binary counter (:class:`Stack`), with a
few partials in memory; a cluster gives each task an aligned block of
``2**j`` groups (a subtree) and merges the tasks' partials with the same
split rule, as tasks on the cluster (:meth:`ClusterEngine.reduce
<normcli.runs.cluster.ClusterEngine.reduce>`).  Both compute the same tree,
so the statistics are the same bits with any engine, any number of workers
and any task size.

``combine(a, b)`` must not change ``a`` or ``b`` (a cluster keeps its
inputs, and may run a merge again when a worker dies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["GROUP", "Stack", "split", "reduce_local"]

#: Inputs per group: the unit of the fixed merge order.  Small, so that a cluster
#: can cut a small run into several tasks; a group costs one merge.
GROUP = 8


def split(n: int) -> int:
    """The size of the left subtree of ``n >= 2`` leaves: the largest power of
    two below ``n``."""
    if n < 2:
        raise ValueError(f"a tree of {n} leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


class Stack:
    """The tree of :func:`split` over leaves pushed in order, as a binary counter:
    complete subtrees of equal size merge as soon as both exist; :meth:`result`
    merges what is left from the right (the smallest) to the left."""

    def __init__(self, combine: Callable[[Any, Any], Any]) -> None:
        self.combine = combine
        self.items: list[tuple[int, Any]] = []  # (leaves, partial), sizes decreasing

    def push(self, partial: Any) -> None:
        size = 1
        while self.items and self.items[-1][0] == size:
            _, left = self.items.pop()
            partial, size = self.combine(left, partial), 2 * size
        self.items.append((size, partial))

    def result(self) -> Any:
        if not self.items:
            raise ValueError("nothing was pushed")
        acc = self.items[-1][1]
        for _, left in reversed(self.items[:-1]):
            acc = self.combine(left, acc)
        return acc


def reduce_local(engine, leaf: Callable[[int], Any], count: int,
                 absorb: Callable[[Any, int, Any], Any], combine: Callable[[Any, Any], Any],
                 empty: Callable[[], Any], *, window: int = 32,
                 on_done: Callable[[int, Any], None] | None = None) -> Any:
    """The reduction of the module docstring, the calls run on ``engine`` a
    window of inputs at a time (the next window queued while the current one is
    merged, so workers never wait); ``window`` is rounded up to whole groups.
    A failure of the lowest index in a window is raised, as :meth:`Engine.map`
    would.  Returns the root partial (``empty()`` for no inputs)."""
    if count == 0:
        return empty()
    window = -(-max(window, GROUP) // GROUP) * GROUP
    starts = list(range(0, count, window))
    stack = Stack(combine)

    def start(s: int):
        done = None if on_done is None else (lambda j, result: on_done(s + j, result))
        return engine.start(leaf, min(window, count - s), done, offset=s)

    pending = [start(s) for s in starts[:2]]
    for w, s in enumerate(starts):
        results = pending.pop(0)()
        if w + 2 < len(starts):
            pending.append(start(starts[w + 2]))
        for g in range(0, len(results), GROUP):
            part = empty()
            for j, result in enumerate(results[g:g + GROUP], start=s + g):
                part = absorb(part, j, result)
            stack.push(part)
        del results
    return stack.result()
