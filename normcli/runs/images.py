"""Batch norm over inputs one at a time: images of any size, and ``keep_going``.

The streamed batch norm of :mod:`normcli.runs.batch` reads samples of one
shape in groups.  Images differ in size, and a run that keeps going must
leave a bad input out of the statistics, so here every input is its own
piece of work (a function of its index, run on the engine):

1. **statistics** (skipped with saved ones): per channel, each input's
   per-channel moments (:func:`normcli.runs.dataset.channel_statistics`),
   merged in input order, every pixel weighing the same whatever its image's
   size; per activation, each sample merged in input order into a
   :class:`~normcli.ops.moments.RunningStats` (all of one shape: a sample of
   another is refused, suggesting per channel);
2. **normalizing**: each input read again, checked to be the file pass 1
   saw, normalized and staged; an image output gets its alpha back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from normcli._gather import Sliced
from normcli.errors import InputError, ParameterError
from normcli.files import Source
from normcli.ops.batchnorm import BatchNormalizer
from normcli.ops.moments import BatchStats, RunningStats
from normcli.runs.dataset import Failure, Failures, Keyed, Kind, Notes, channel_statistics
from normcli.runs.engine import Engine
from normcli.runs.inputs import data_error, read_input
from normcli.runs.options import Progress, RunOptions
from normcli.runs.outputs import ResultWriter
from normcli.runs.parameters import blame
from normcli.runs.progress import Stage
from normcli.runs.report import InputReport

__all__ = ["per_input"]


def _as_sample(x: np.ndarray, channels_last: bool) -> np.ndarray:
    if x.ndim != 2:
        return x
    return x[:, :, None] if channels_last else x[None]


def per_input(job, engine: Engine, sources: Sequence[Source], writer: ResultWriter,
              progress: Progress | None, failures: Failures,
              notes: Notes, skip=()) -> tuple[list[InputReport], BatchStats]:
    """Both passes over ``sources``, each input on its own (see the module docstring);
    ``skip``: inputs not to redo (with saved statistics: done by an earlier run)."""
    options, settings = job.options, job.settings
    states: list = Sliced([None] * len(sources))  # (a shard's part travels)
    pass1 = job.stats is None
    if not pass1:
        stats = job.stats
    elif settings.per == "channel":
        dataset, found = channel_statistics(sources, options, engine, failures,
                                            progress=progress, stage="batch statistics",
                                            states=states,
                                            refuse_nonfinite=not options.allow_nonfinite)
        notes.update_from(found)
        stats = dataset.batch_stats()
    else:
        stats = _activation_stats(options, engine, sources, failures, states, progress)
    try:
        with blame(job.files):
            normalizer = BatchNormalizer(stats.mean, stats.var, params=settings,
                                         channels_last=job.channels_last,
                                         finite_stats=not pass1 or not options.allow_nonfinite)
    except ParameterError as e:
        raise data_error(sources[0].label, e) from None
    stage = Stage(progress, "normalizing", len(sources))

    def one(i: int):
        source = sources[i]
        if i in failures or i in skip:  # (failed in pass 1: already reported)
            return None
        x, decoded = read_input(source, options)
        sample = job.to_sample(source, x)  # (channel_axis moved last, if given)
        if pass1:
            if source.state() != states[i]:
                raise InputError(source.label, "changed after the statistics were computed "
                                 "from it; run again")
        else:
            job.check_stats_shape(source, (1, *sample.shape))
        try:
            y = job.from_sample(source, options.as_output(normalizer(sample[None], threads=1)[0],
                                                          x), x)
        except ParameterError as e:
            raise data_error(source.label, e) from None
        writer.add(i, source, y, decoded)
        job.observe(i, source, x, y)
        if decoded is not None and not pass1:
            for note in decoded.notes:
                notes.add(note, source.label)
        return InputReport(source.label, job.summary(x, i), job.summary(y, i)), x.nbytes

    work = failures.guard(one, lambda i: sources[i].label)
    done = engine.map(work, len(sources), on_done=lambda i, r: stage.advance(
        r[1] if isinstance(r, tuple) else 0))
    rows = [r[0] for r in done if isinstance(r, tuple)]
    if not rows and failures.found and not skip:
        raise InputError("inputs", f"all {len(sources):,} inputs failed; the first: "
                         f"{failures.sorted()[0].message}")
    return rows, stats


def _activation_stats(options: RunOptions, engine: Engine, sources: Sequence[Source],
                      failures: Failures, states: list, progress: Progress | None
                      ) -> BatchStats:
    """Per-activation statistics, sample by sample in input order (one shape)."""
    stage = Stage(progress, "batch statistics", len(sources))

    def one(i: int):
        x, _ = read_input(sources[i], options)
        return _as_sample(x, options.channels_last), sources[i].state()

    def start(sample: np.ndarray) -> RunningStats:
        running = RunningStats(per="activation", channels_last=options.channels_last)
        running.add(sample[None])
        return running

    def added(running: RunningStats, sample: np.ndarray) -> RunningStats:
        running.add(sample[None])
        return running

    def absorb(part: Keyed, i: int, result) -> Keyed:
        if isinstance(result, Failure):
            return part
        sample, part.states[i] = result  # (taken where it was read: the call may run elsewhere)
        try:
            part.add(i, sample.shape, "", sample, start, added)
        except ParameterError as e:
            part.refused.append((i, data_error(sources[i].label, e)))
        return part

    def combine(a: Keyed, b: Keyed) -> Keyed:
        return Keyed.combined(a, b, RunningStats.merged)

    def refuse(i: int, shape: tuple, kind: Kind) -> InputError:
        key, first = part.first_kind()
        return InputError(sources[i].label, f"has shape {shape} but "
                          f"{sources[first.first].label} has {key}; per-activation statistics "
                          "need one shape (use --per channel for images of different sizes)")

    part = engine.reduce(failures.guard(one, lambda i: sources[i].label), len(sources), absorb,
                         combine, Keyed, window=max(2, 4 * engine.jobs),
                         on_done=lambda i, r: stage.advance())
    part.apply(sources, failures, None, states, refuse)
    found = part.first_kind()
    if found is None:
        raise InputError("inputs", "no input could be read")
    first, running = found[1].first, found[1].total
    stats = running.stats()
    if stats.count < 2 and failures.found:
        raise InputError("inputs", f"only 1 of {len(sources):,} inputs could be used, which "
                         "has no variance per activation; the first failure: "
                         f"{failures.sorted()[0].message}")
    if stats.count < 2:
        raise InputError(sources[first].label, "a batch of one sample has no variance per "
                         "activation; give more inputs, --per channel (statistics over its "
                         "pixels), or --stats")
    return stats
