"""Per-input work folded in input order, and the dataset's per-channel statistics.

:func:`fold` runs ``fn(i)`` for every input on an engine and merges the
results in input order, with at most two windows of results in memory: the
shape of every reduction of a run (pass 1 of a streamed batch norm, the
statistics of ``stats --per channel``).  Per-input work is a function of the
input's index alone, and the merge is a fold of moment objects in a fixed
order, so that an engine running the calls elsewhere (processes, machines)
gives the same results; the integer counts of 8- and 16-bit images merge
exactly, in any order.

:func:`channel_statistics` is the dataset's per-channel count, mean,
variance, min and max (:class:`normcli.ops.dataset.DatasetStats`) over
inputs of any height and width, every pixel weighing the same.  Images
Pillow holds in 8 bits are counted by Pillow's histogram, without an array
of pixels: the cost is the decoding.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcli._gather import Gathered, record
from normcli.errors import InputError, NormcliError, ParameterError
from normcli.files import Source
from normcli.ops.dataset import ChannelMoments, DatasetStats, channel_rows
from normcli.runs.engine import Engine
from normcli.runs.options import Progress, RunOptions
from normcli.runs.progress import Stage

__all__ = ["Failure", "Failures", "Notes", "fold", "channel_statistics", "input_moments",
           "WINDOW"]

#: Inputs started at once by :func:`fold` (two windows are in flight).  The next
#: window is queued before the current one is merged, so workers never wait; small,
#: because a 16-bit RGB image's exact counts are 1.5 MB until merged.
WINDOW = 32


class Notes(dict, Gathered):
    """Facts about some inputs: note -> the first :attr:`KEEP` labels it applies to
    (memory stays flat over a million photos with the same note); :meth:`total`
    counts them all.  Safe to add to from worker threads; worker copies on a
    cluster send theirs back (:mod:`normcli._gather`)."""

    KEEP = 3
    __reduce__ = Gathered.__reduce__  # (not dict's)

    def __init__(self) -> None:
        super().__init__()
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()

    def worker_state(self):
        return None

    @classmethod
    def from_worker_state(cls, state) -> Notes:
        return cls()

    def absorb_gathered(self, items: list) -> None:
        for note, label in items:
            self.add(note, label)

    def add(self, note: str, label: str) -> None:
        if self.gather_token is not None:
            record(self, (note, label))
            return
        with self._lock:
            labels = self.setdefault(note, [])
            if len(labels) < self.KEEP:
                labels.append(label)
            self._totals[note] = self._totals.get(note, 0) + 1

    def update_from(self, other: Notes) -> None:
        """Add another run's (or pass's) notes."""
        for note, labels in other.items():
            for label in labels:
                self.add(note, label)
            with self._lock:
                self._totals[note] += other.total(note) - len(labels)

    def total(self, note: str) -> int:
        """How many inputs ``note`` applies to."""
        return self._totals.get(note, len(self.get(note, ())))


@dataclass(frozen=True)
class Failure:
    """An input that failed under ``keep_going``: its index, name and problem."""

    index: int
    label: str
    problem: str

    @property
    def message(self) -> str:
        return f"{self.label}: {self.problem}"


@dataclass
class Failures(Gathered):
    """The failures of a run, in input order; ``guard`` wraps per-input work.
    Worker copies on a cluster send theirs back (:mod:`normcli._gather`)."""

    keep_going: bool
    found: dict[int, Failure] = field(default_factory=dict)

    def worker_state(self):
        return (self.keep_going, dict(self.found))

    @classmethod
    def from_worker_state(cls, state) -> Failures:
        return cls(*state)

    def absorb_gathered(self, items: list) -> None:
        for failure in items:
            self.found.setdefault(failure.index, failure)

    def guard(self, fn: Callable[[int], Any], label: Callable[[int], str]
              ) -> Callable[[int], Any]:
        """``fn`` that, under ``keep_going``, returns a :class:`Failure` for an input
        whose data or file is bad instead of raising."""
        if not self.keep_going:
            return fn

        def guarded(i: int):
            try:
                return fn(i)
            except NormcliError as e:
                failure = Failure(i, label(i), e.problem)
                self.found[i] = failure
                if self.gather_token is not None:
                    record(self, failure)
                return failure

        return guarded

    def add(self, i: int, label: str, error: NormcliError) -> None:
        if not self.keep_going:
            raise error
        self.found.setdefault(i, Failure(i, label, error.problem))

    def __contains__(self, i: int) -> bool:
        return i in self.found

    def sorted(self) -> list[Failure]:
        return [self.found[i] for i in sorted(self.found)]


def fold(engine: Engine, fn: Callable[[int], Any], count: int,
         merge: Callable[[Any, int, Any], Any], initial: Any = None, *,
         window: int = WINDOW, on_done: Callable[[int, Any], None] | None = None) -> Any:
    """``merge(... merge(merge(initial, 0, fn(0)), 1, fn(1)) ..., count - 1, fn(count - 1))``.

    The calls run on ``engine`` a window at a time, the next window queued
    while the current one runs (so workers never wait for the merge);
    results are merged in input order in the calling thread; a failure of the
    lowest index in a window is raised, as :meth:`Engine.map` would.
    """
    acc = initial
    window = max(window, engine.fold_window())
    starts = list(range(0, count, window))

    def start(s: int):
        done = None if on_done is None else (lambda j, result: on_done(s + j, result))
        return engine.start(fn, min(window, count - s), done, offset=s)

    # Two windows in flight: the next is queued while the current one runs, so the
    # workers go on with it while the current results are merged.
    pending = [start(s) for s in starts[:2]]
    for w, s in enumerate(starts):
        results = pending.pop(0)()
        if w + 2 < len(starts):
            pending.append(start(starts[w + 2]))
        for j, result in enumerate(results):
            acc = merge(acc, s + j, result)
        del results
    return acc


@dataclass
class Moments:
    """One input's moments, with what the report says about it."""

    moments: ChannelMoments
    mode: str
    notes: tuple[str, ...]
    nbytes: int
    state: tuple | None = None  # Source.state() as read (for a second pass to check)


def input_moments(source: Source, options: RunOptions) -> Moments:
    """The per-channel moments of one input (see the module docstring)."""
    from normcli.files.images import (
        IMAGE_SUFFIXES,
        decode_image,
        image_histogram,
        read_file_bytes,
    )

    if source.is_image and source.decoded is None:
        data = read_file_bytes(source.path, source=source.label)
        kind = IMAGE_SUFFIXES.get(source.path.suffix.lower())
        page = int(source.member) if source.member is not None else None
        counted = None
        if page is None:
            counted = image_histogram(data, source=source.label, color=options.color,
                                      with_alpha=options.include_alpha, kind=kind)
        if counted is not None:
            counts, mode, notes = counted
            key = "uint8" if options.raw_png else "uint8/255"
            return Moments(ChannelMoments.from_counts(counts, key), mode, notes,
                           counts.sum() * 4)
        decoded = decode_image(data, raw=True, source=source.label, color=options.color,
                               with_alpha=options.include_alpha, page=page, kind=kind)
        return _stored_moments(decoded, options)
    if source.decoded is not None:
        return _stored_moments(source.decoded, options, stored=False)
    from normcli.runs.inputs import load_checked

    x = load_checked(source, options)
    if options.channel_axis is not None:  # (channels elsewhere: seen moved last)
        from normcli.runs.inputs import data_error
        from normcli.runs.layout import channel_axis_of, to_channels_last

        try:
            x = to_channels_last(x, channel_axis_of(x.shape, options.channel_axis))
        except ParameterError as e:
            raise data_error(source.label, e) from None
    rows = channel_rows(x, options.channels_last or options.channel_axis is not None)
    return Moments(ChannelMoments.from_values(rows), "", (), x.nbytes)


def _stored_moments(decoded, options: RunOptions, stored: bool = True) -> Moments:
    """Moments of an image read with its stored values (``stored``), or as read."""
    colour = decoded.colour
    if decoded.alpha is not None and options.include_alpha:  # (read apart: join again)
        colour = np.concatenate([colour, decoded.alpha[None]])
    rows = colour.reshape(colour.shape[0], -1)
    scaled = stored and not options.raw_png and rows.dtype in (np.uint8, np.uint16)
    if stored and not scaled and not options.raw_png and rows.dtype.kind in "ui":
        rows = rows.astype(np.float32 if rows.dtype.itemsize <= 2 else np.float64)
    moments = ChannelMoments.from_values(rows, scaled_from=rows.dtype if scaled else None)
    return Moments(moments, decoded.mode, decoded.notes, rows.size * 4)


def channel_statistics(sources: Sequence[Source], options: RunOptions, engine: Engine,
                       failures: Failures, *, progress: Progress | None = None,
                       stage: str = "statistics", states: list | None = None,
                       refuse_nonfinite: bool = False
                       ) -> tuple[DatasetStats, Notes]:
    """``(statistics, notes)``: the inputs' per-channel statistics, and the notes
    of the images (note -> the labels it applies to).  ``states``: filled with
    each input's :meth:`~normcli.files.Source.state` as read (for a second
    pass to check); ``refuse_nonfinite``: an input holding NaN/Inf is bad.

    Raises
    ------
    InputError
        Inputs with different numbers of channels (naming two, and suggesting
        ``--color``), a bad input (unless ``keep_going``), no good input.
    """
    progress_stage = Stage(progress, stage, len(sources))
    notes = Notes()
    first: dict = {}

    def one(i: int):
        result = input_moments(sources[i], options)
        if states is not None:  # (set on the client: the call may run elsewhere)
            result.state = sources[i].state()
        m = result.moments
        bad = int(m.nan.sum() + m.posinf.sum() + m.neginf.sum())
        if refuse_nonfinite and bad:
            raise InputError(sources[i].label, f"holds {bad:,} NaN/Inf value"
                             f"{'s' if bad > 1 else ''} (pass --allow-nonfinite to process it "
                             "anyway)")
        return result

    def merge(acc, i: int, result):
        if isinstance(result, Failure):
            return acc
        if states is not None:
            states[i] = result.state
        for note in result.notes:
            notes.add(note, sources[i].label)
        m = result.moments
        if acc is None:
            first.update(label=sources[i].label, mode=result.mode, channels=m.channels)
            return ChannelMoments(m.channels).absorb(m)  # (ours: absorbed into in place)
        if m.channels != acc.channels:
            error = InputError(sources[i].label, _channels_problem(
                m.channels, result.mode, first["label"], first["channels"], first["mode"]))
            failures.add(i, sources[i].label, error)
            return acc
        return acc.absorb(m)

    guarded = failures.guard(one, lambda i: sources[i].label)
    total = fold(engine, guarded, len(sources), merge,
                 on_done=lambda i, r: progress_stage.advance(getattr(r, "nbytes", 0)))
    if total is None:
        raise InputError(sources[0].label if len(sources) == 1 else "inputs",
                         "no input could be read" if failures.found else "no values")
    return dataclasses.replace(total.finish(), mode=first["mode"]), notes


def _channels_problem(c: int, mode: str, other: str, other_c: int, other_mode: str) -> str:
    def said(n, m):
        return f"{n} channel{'s' if n != 1 else ''}" + (f" ({m})" if m else "")

    return (f"has {said(c, mode)} but {other} has {said(other_c, other_mode)}; give --color rgb "
            "or --color gray to convert every image first")
