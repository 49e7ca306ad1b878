"""The dataset's per-channel statistics, and what a run gathers about its inputs.

:func:`channel_statistics` is the dataset's per-channel count, mean,
variance, min and max (:class:`normcli.ops.dataset.DatasetStats`) over
inputs of any height and width, every pixel weighing the same.  Images
Pillow holds in 8 bits are counted by Pillow's histogram, without an array
of pixels: the cost is the decoding.  Each input's moments are merged in
the fixed shape of :mod:`normcli.runs.reduce` (the same tree on threads or
on a cluster), into a :class:`Keyed` partial: the inputs must all have the
channels of the first, and which one is first is known only at the root.
The integer counts of 8- and 16-bit images merge exactly, in any order.

:class:`Failures` and :class:`Notes` gather what the report says about the
inputs (from worker threads, or from workers of a cluster).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
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

__all__ = ["Failure", "Failures", "Notes", "Keyed", "channel_statistics", "input_moments",
           "WINDOW"]

#: Inputs started at once by a local reduction (two windows are in flight).  The
#: next window is queued before the current one is merged, so workers never wait;
#: small, because a 16-bit RGB image's exact counts are 1.5 MB until merged.
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
            self.add_counted(note, labels, other.total(note))

    def total(self, note: str) -> int:
        """How many inputs ``note`` applies to."""
        return self._totals.get(note, len(self.get(note, ())))

    def add_counted(self, note: str, labels: Sequence[str], total: int) -> None:
        """``note`` for ``labels`` (the first of ``total`` inputs it applies to)."""
        for label in labels:
            self.add(note, label)
        with self._lock:
            self._totals[note] += total - len(labels)


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


@dataclass
class Kind:
    """The inputs of one kind in a :class:`Keyed` partial: the first one's index
    and what is said of it, their merged ``total``, and their indices (ranges)."""

    first: int
    about: str
    total: Any
    ranges: list = field(default_factory=list)  # [start, stop) pairs, in order

    def indices(self) -> Iterator[int]:
        for start, stop in self.ranges:
            yield from range(start, stop)


def _extend(ranges: list, start: int, stop: int) -> None:
    """``[start, stop)`` after ``ranges`` (in order), joined to the last if they touch."""
    if ranges and ranges[-1][1] == start:
        ranges[-1][1] = stop
    else:
        ranges.append([start, stop])


@dataclass
class Keyed:
    """A partial of a reduction (:mod:`normcli.runs.reduce`) whose inputs must
    all be of one kind (channels, a sample's shape): the first input decides,
    the others are refused.  Which input is first is known only at the root,
    so every kind is kept, merged in input order; besides, the notes (the first
    :attr:`Notes.KEEP` indices of each, and how many), the inputs' states as
    read (for a second pass to check), inputs refused on their own, and bytes.
    """

    kinds: dict = field(default_factory=dict)  # key -> Kind
    notes: dict = field(default_factory=dict)  # note -> ([indices], total)
    states: dict = field(default_factory=dict)  # index -> Source.state()
    refused: list = field(default_factory=list)  # (index, NormcliError)
    nbytes: int = 0

    def add(self, i: int, key, about: str, value, start: Callable[[Any], Any],
            merge_into: Callable[[Any, Any], Any]) -> None:
        """Input ``i`` of kind ``key``: ``start(value)`` begins a kind's total (a
        copy of its own), ``merge_into(total, value)`` adds to it, in place."""
        kind = self.kinds.get(key)
        if kind is None:
            self.kinds[key] = Kind(i, about, start(value), [[i, i + 1]])
            return
        kind.total = merge_into(kind.total, value)
        _extend(kind.ranges, i, i + 1)

    def note(self, i: int, note: str) -> None:
        indices, total = self.notes.get(note, ([], 0))
        if len(indices) < Notes.KEEP:
            indices.append(i)
        self.notes[note] = (indices, total + 1)

    @staticmethod
    def combined(a: Keyed, b: Keyed, merge: Callable[[Any, Any], Any]) -> Keyed:
        """``a`` then ``b`` (inputs all before ``b``'s), neither changed;
        ``merge(x, y)``: a new total of both."""
        kinds = dict(a.kinds)
        for key, kb in b.kinds.items():
            ka = kinds.get(key)
            if ka is None:
                kinds[key] = kb
                continue
            ranges = [list(r) for r in ka.ranges]
            for start, stop in kb.ranges:
                _extend(ranges, start, stop)
            kinds[key] = Kind(ka.first, ka.about, merge(ka.total, kb.total), ranges)
        notes = dict(a.notes)
        for note, (indices, total) in b.notes.items():
            mine, count = notes.get(note, ([], 0))
            notes[note] = ([*mine, *indices][:Notes.KEEP], count + total)
        return Keyed(kinds, notes, {**a.states, **b.states}, [*a.refused, *b.refused],
                     a.nbytes + b.nbytes)

    def first_kind(self) -> tuple[Any, Kind] | None:
        """``(key, kind)`` of the first input, None when no input was added."""
        if not self.kinds:
            return None
        return min(self.kinds.items(), key=lambda kv: kv[1].first)

    def others(self) -> list[tuple[int, Any, Kind]]:
        """``(index, key, kind)`` of every input not of the first one's kind, in order."""
        first = self.first_kind()
        found = [(i, key, kind) for key, kind in self.kinds.items() if kind is not first[1]
                 for i in kind.indices()] if first else []
        return sorted(found, key=lambda t: t[0])

    def apply(self, sources: Sequence[Source], failures: Failures, notes: Notes | None,
              states: list | None, refuse: Callable[[int, Any, Kind], NormcliError]) -> None:
        """On the client: the notes and the states into the run's, and every
        refused input (its own error, or ``refuse(i, key, kind)`` for an input of
        another kind than the first) to ``failures``, in input order (without
        ``keep_going``, the first is raised)."""
        if notes is not None:
            for note, (indices, total) in self.notes.items():
                notes.add_counted(note, [sources[i].label for i in indices], total)
        if states is not None:
            for i, state in self.states.items():
                states[i] = state
        errors = [*self.refused, *((i, refuse(i, key, kind)) for i, key, kind in self.others())]
        for i, error in sorted(errors, key=lambda t: t[0]):
            failures.add(i, sources[i].label, error)


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
    keep_states = states is not None

    def one(i: int):
        result = input_moments(sources[i], options)
        if keep_states:  # (taken where the input is read: the call may run elsewhere)
            result.state = sources[i].state()
        m = result.moments
        bad = int(m.nan.sum() + m.posinf.sum() + m.neginf.sum())
        if refuse_nonfinite and bad:
            raise InputError(sources[i].label, f"holds {bad:,} NaN/Inf value"
                             f"{'s' if bad > 1 else ''} (pass --allow-nonfinite to process it "
                             "anyway)")
        return result

    def absorb(part: Keyed, i: int, result) -> Keyed:
        if isinstance(result, Failure):
            return part
        if keep_states:
            part.states[i] = result.state
        for note in result.notes:
            part.note(i, note)
        part.nbytes += result.nbytes
        part.add(i, result.moments.channels, result.mode, result.moments,
                 lambda m: ChannelMoments(m.channels).absorb(m), _absorbed)
        return part

    def combine(a: Keyed, b: Keyed) -> Keyed:
        return Keyed.combined(a, b, ChannelMoments.merge)

    def refuse(i: int, channels: int, kind: Kind) -> InputError:
        key, first = part.first_kind()
        return InputError(sources[i].label, _channels_problem(
            channels, kind.about, sources[first.first].label, key, first.about))

    guarded = failures.guard(one, lambda i: sources[i].label)
    part = engine.reduce(guarded, len(sources), absorb, combine, Keyed,
                         on_done=lambda i, r: progress_stage.advance(getattr(r, "nbytes", 0)))
    notes = Notes()
    part.apply(sources, failures, notes, states, refuse)
    found = part.first_kind()
    if found is None:
        raise InputError(sources[0].label if len(sources) == 1 else "inputs",
                         "no input could be read" if failures.found else "no values")
    total = found[1].total
    return dataclasses.replace(total.finish(), mode=found[1].about), notes


def _absorbed(total: ChannelMoments, m: ChannelMoments) -> ChannelMoments:
    return total.absorb(m)


def _channels_problem(c: int, mode: str, other: str, other_c: int, other_mode: str) -> str:
    def said(n, m):
        return f"{n} channel{'s' if n != 1 else ''}" + (f" ({m})" if m else "")

    return (f"has {said(c, mode)} but {other} has {said(other_c, other_mode)}; give --color rgb "
            "or --color gray to convert every image first")
