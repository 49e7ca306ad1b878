"""The batch-norm run: every input a sample of one batch, streamed in two passes.

A single input is its own batch (its first axis) and is normalized in memory.
Several inputs are the samples of one batch, which is never held in memory:

1. **statistics** (skipped with saved ``stats``): samples are read on the
   engine's workers straight into a buffer holding a group of about
   :data:`GROUP_BYTES`; each group's float64 moments are merged in order into a
   :class:`~normcli.ops.moments.RunningStats`, so the result does not depend on
   the number of jobs and memory stays bounded.  The group's NaN/Inf check
   rides on its moments: they are finite if and only if its values are.
2. **normalizing**: each sample is read again (into its worker's buffer),
   checked to be the file pass 1 saw, normalized in place and staged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from normcli.errors import InputError, ParameterError, UsageError
from normcli.files import Source, StagedWrites, count_nonfinite, stage_array
from normcli.ops.arrays import compute_dtype
from normcli.ops.batchnorm import BatchNormalizer, BNParams, batch_norm
from normcli.ops.bn_conventions import DEFAULT_MOMENTUM
from normcli.ops.moments import (
    BatchStats,
    RunningStats,
    batch_axes,
    batch_stats,
    overflow_message,
    stats_shape,
)
from normcli.ops.summary import Summary, summarize
from normcli.runs import signals
from normcli.runs.dataset import Failures, Notes
from normcli.runs.engine import Engine, engine_for
from normcli.runs.hints import Hints
from normcli.runs.inputs import (
    check_finite,
    check_memory,
    choose_jobs,
    data_error,
    load_checked,
    open_inputs,
    read_unchecked,
)
from normcli.runs.layout import channel_axis_of, from_channels_last, to_channels_last
from normcli.runs.options import Progress, RunOptions, checked_path
from normcli.runs.outputs import OutputPlan, ResultWriter, parameter_source
from normcli.runs.parameters import (
    batchnorm_settings,
    blame,
    describe,
    is_path,
    with_saved_stats,
)
from normcli.runs.porting import bn_model, from_model
from normcli.runs.progress import Stage, check_progress
from normcli.runs.report import InputReport, Report
from normcli.runs.running import RunningUpdate, bn_defaults, named_convention

__all__ = ["batchnorm", "GROUP_BYTES"]

#: Samples are gathered into groups of about this many bytes for the statistics pass.
GROUP_BYTES = 8 << 20


def batchnorm(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str] | None = None,
    per: str | None = None,
    eps: float | None = None,
    convention: str | None = None,
    gamma: float | np.ndarray | str | os.PathLike[str] = 1.0,
    beta: float | np.ndarray | str | os.PathLike[str] = 0.0,
    params: BNParams | None = None,
    stats: BatchStats | str | os.PathLike[str] | None = None,
    save_stats: str | os.PathLike[str] | None = None,
    update_stats: str | os.PathLike[str] | None = None,
    momentum: float | None | str = DEFAULT_MOMENTUM,
    from_onnx: str | os.PathLike[str] | None = None,
    from_caffe: str | os.PathLike[str] | None = None,
    layer: str | None = None,
    progress: Progress | None = None,
    preview=None,
    **options,
) -> Report:
    """Batch normalization of the inputs taken as one batch.

    ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` with the batch's mean
    and biased variance, or saved statistics (``stats``).

    Parameters
    ----------
    inputs : sequence of str or path-like
        As for :func:`normcli.runs.lrn`.  Several inputs are the samples of the
        batch (all of one shape); a single input's first axis is the batch.
    output : str or path-like, optional
        Where results go (see :class:`~normcli.runs.options.RunOptions`).
    per : {"activation", "channel"}, optional
        Statistics per activation (default) or per channel; with ``stats``,
        default the saved statistics' own.
    eps, gamma, beta, params
        As for :func:`normcli.ops.batchnorm.batch_norm`; ``gamma`` and
        ``beta`` may also name a ``.npy`` file (an error about its values then
        names the file).  ``eps`` left out: the convention's (1e-5 without one).
    convention : str, optional
        A framework's batch norm (``pytorch``, ``tensorflow``, ``keras``,
        ``onnx``, ``caffe``, ``mxnet``; any case, aliases ``torch``, ``tf``):
        its default ``eps``, and its stored form of running statistics for
        ``stats`` and ``update_stats`` (:mod:`normcli.ops.bn_conventions`).
        Left out, the one a file of ``update_stats`` or ``stats`` that normcli
        wrote names, if any.
    stats : BatchStats, or the path of a ``.npz``, optional
        Normalize with these statistics instead of the batch's (inference):
        a ``save_stats`` file, or with ``convention`` that framework's stored
        running statistics (PyTorch ``running_mean``/``running_var``, Keras
        ``moving_mean``/``moving_variance``, Caffe ``mean_sum``/``var_sum``/
        ``scale_factor``...), as the framework normalizes with them.
    save_stats : str or path-like, optional
        Save the batch's statistics (``mean``, ``var``, ``var_unbiased``,
        ``count``, ``per``) to this ``.npz``, with the outputs.
    update_stats : str or path-like, optional
        A ``.npz`` of running statistics (the framework's stored form) to
        update with this batch's statistics the convention's way
        (:func:`~normcli.ops.bn_conventions.update_running`) and write with
        the outputs; a file that does not exist starts from the framework's
        initial state.  The batch itself is normalized with its own
        statistics, as in training.  Needs ``convention`` (unless the file
        names it).
    momentum : float or None, optional
        For ``update_stats``, in the framework's meaning (PyTorch's weight of
        the batch, Keras's of the old value...); None: PyTorch's cumulative
        average.  Default: the convention's.
    from_onnx, from_caffe, layer
        Take the settings of the batch-norm node or layer ``layer`` of an
        ONNX model or a Caffe prototxt (:func:`normcli.runs.porting.bn_model`):
        eps, per channel, gamma and beta, and its stored statistics (ONNX
        initializers) or the batch's (``training_mode=1``,
        ``use_global_stats: false``).  A Caffe deploy prototxt holds no
        statistics: give them with ``stats`` (Caffe's form).
    progress, preview, **options
        As for :func:`normcli.runs.lrn`.

    Returns
    -------
    Report
        With ``stats``: the statistics used; ``saved_stats``: where they went.
    """
    opts = RunOptions(output=output, **options)
    check_progress(progress)
    for name, value in (("stats", stats), ("update_stats", update_stats)):
        if value is not None and not (is_path(value) or (name == "stats"
                                                         and isinstance(value, BatchStats))):
            raise ParameterError(f"{name}={value!r} must be "
                                 + ("BatchStats or " if name == "stats" else "")
                                 + "the path of a .npz file", param=name, value=value)
    model = bn_model(from_onnx=from_onnx, from_caffe=from_caffe, layer=layer)
    given_stats = "(given)"
    if model is not None:
        given_stats = (f"of {model.convention} layer {layer!r} in "
                       f"{os.fspath(from_onnx if from_onnx is not None else from_caffe)}")
        per, eps, convention, gamma, beta, params, stats, momentum = from_model(
            model, from_onnx if from_onnx is not None else from_caffe, layer, per=per, eps=eps,
            convention=convention, gamma=gamma, beta=beta, params=params, stats=stats,
            momentum=momentum, updating=update_stats is not None)
    if convention is None:  # a file normcli wrote says whose statistics it holds
        convention = named_convention(update_stats) or named_convention(stats)
    conv, eps = bn_defaults(convention, eps)
    settings, files = batchnorm_settings(per="activation" if per is None else per, eps=eps,
                                         gamma=gamma, beta=beta, params=params)
    update = None
    if update_stats is not None:
        update = RunningUpdate.check(update_stats, conv, momentum, per=settings.per)
        if model is not None and model.has_stats:
            update.start = (model.mean, model.var)
        if stats is not None:
            raise UsageError("--update-stats and --stats exclude each other: running "
                             "statistics are updated from the batch's own",
                             param="update_stats", value=update_stats)
    elif not (isinstance(momentum, str) and momentum == DEFAULT_MOMENTUM):
        raise UsageError("--momentum goes with --update-stats", param="momentum",
                         value=momentum)
    for name, value in (("save_stats", save_stats), ("stats", stats)):
        if is_path(value) and not os.fspath(value).lower().endswith(".npz"):
            problem = f"{os.fspath(value)!r} must be a .npz file"
            raise ParameterError(f"{name}={problem}", param=name, value=value, problem=problem)
    if save_stats is not None and stats is not None:
        raise UsageError("--save-stats and --stats exclude each other: fit statistics on one "
                         "run, apply them on another", param="save_stats", value=save_stats)
    with signals.handled(), _blamed_on_files(model, from_onnx, layer, stats):
        if opts.resume and stats is None:
            raise UsageError("--resume needs work done input by input: lrn, or batchnorm "
                             "--stats FILE (batch statistics need every input again)",
                             param="resume", value=True)
        found = open_inputs(inputs, opts)
        sources = found.sources
        opts = dataclasses.replace(opts, jobs=choose_jobs(opts.jobs, sources))
        if opts.scheduler is not None:
            from normcli.runs.cluster import check_supported

            check_supported(opts, sources, preview=preview)  # (before any journal)
        journal = None
        if opts.resume:
            from normcli.runs.resume import Journal, fingerprint

            journal = Journal(opts, sources, fingerprint(
                "batchnorm", {"per": per, "eps": eps, "gamma": describe(gamma),
                              "beta": describe(beta), "stats": _digest(stats)}, opts))
        read_too = [*files.values(), *([os.fspath(stats)] if is_path(stats) else [])]
        plan = OutputPlan(opts, sources, [parameter_source(p) for p in read_too],
                          existing_ok=journal and journal.existing_ok())
        if preview is not None:
            plan.reserve(preview.path, "preview")
        if save_stats is not None:
            save_stats = checked_path(save_stats, "save_stats")
            plan.reserve(save_stats, "save_stats")
        if update is not None:
            plan.reserve(update.path, "update_stats", replace=True)
        if opts.scheduler is not None:
            from normcli.runs.cluster import check_supported

            check_supported(opts, sources, plan, preview)
        settings, saved, stats_file = with_saved_stats(
            settings, files, stats, per, conv.name if conv is not None else None)
        job = _Batch(opts, settings, files, saved, stats_file, preview, Hints(opts.channels_last))
        failures = Failures(opts.keep_going)
        notes = Notes()
        with StagedWrites(sync=opts.sync) as staged, engine_for(opts) as engine:
            if journal is not None:
                from normcli.runs.resume import ResumeWriter

                writer = ResumeWriter(plan, journal, image_pixels="centred")
            else:
                writer = ResultWriter(plan, staged, image_pixels="centred")
            if journal is None and len(sources) == 1 and not sources[0].is_image:
                rows, used = _in_memory(job, engine, sources[0], writer,
                                        save_stats is not None or update is not None)
            elif (opts.keep_going or journal is not None or opts.scheduler is not None
                  or any(s.is_image for s in sources)):  # (a cluster: input by input)
                from normcli.runs.images import per_input

                images = [s for s in sources if s.is_image]
                if opts.channel_axis is not None and images:
                    from normcli.runs.layout import refuse_image

                    raise refuse_image(images[0].label)

                try:
                    rows, used = per_input(job, engine, sources, writer, progress, failures,
                                           notes, skip=journal.done if journal else ())
                except (KeyboardInterrupt, SystemExit) as e:
                    if journal is None:
                        raise
                    from normcli.runs.each import resume_hint

                    raise signals.with_hint(e, resume_hint(journal, writer, len(sources))
                                            ) from None
                finally:
                    if journal is not None:
                        journal.close(opts.sync)
            else:
                rows, used = _streamed(job, engine, sources, writer, progress)
            if save_stats is not None:
                stage_array(staged, save_stats, used.to_dict(), force=opts.force)
            running = None
            if update is not None:
                running = update.updated(used)
                stage_array(staged, update.path, running.to_mapping(), force=True)
            if preview is not None:
                preview.stage(staged)
            writer.commit()
    fit = (f"saved statistics {stats_file or given_stats}" if saved is not None
           else "batch statistics")
    gamma_text = describe(files.get("gamma", settings.gamma))
    beta_text = describe(files.get("beta", settings.beta))
    description = (f"batch norm per {settings.per} ({fit}): eps={settings.eps:g}, "
                   f"gamma={gamma_text}, beta={beta_text}")
    params_doc = {"normalization": "batchnorm", "per": settings.per, "eps": settings.eps,
                  "gamma": gamma_text, "beta": beta_text, "stats": stats_file,
                  "convention": conv.name if conv is not None else None,
                  "channels_last": opts.channels_last,
                  **({"channel_axis": opts.channel_axis} if opts.channel_axis is not None
                     else {})}
    if update is not None:
        how = ("cumulative average" if update.momentum is None
               else f"{update.convention.momentum_name} {update.momentum:g}")
        description += f"; {update.convention.name} running statistics updated ({how})"
        params_doc["update_stats"] = update.path
        params_doc["momentum"] = update.momentum
    done_before = journal.done if journal is not None else set()
    outputs = ([os.fspath(t) for i, t in enumerate(plan.targets)
                if i not in done_before and i not in failures]
               if journal is not None else plan.written_of(failures))
    written = [*outputs, *([save_stats] if save_stats else []),
               *([update.path] if update is not None else []),
               *([os.fspath(preview.path)] if preview is not None else [])]
    return Report("batchnorm", description, params_doc, rows, output_kind=plan.kind,
                  output=opts.output, written=written, stats=used, saved_stats=save_stats,
                  hints=job.hints.lines(),
                  failures=failures.sorted(), skipped=dict(found.skipped), notes=notes,
                  pixels=sorted(writer.mappings), resumed=len(done_before))


def _digest(stats) -> str | None:
    """What identifies saved statistics: their numbers."""
    if stats is None:
        return None
    import hashlib

    if is_path(stats):
        from normcli.runs.parameters import read_stats_file

        stats = read_stats_file(stats)
    return hashlib.sha256(stats.mean.tobytes() + stats.var.tobytes()).hexdigest()


@dataclass
class _Batch:
    """One batchnorm run's settings, shared by the in-memory and streamed routes."""

    options: RunOptions
    settings: BNParams
    files: dict[str, str]  # the parameters read from files (gamma, beta): their paths
    stats: BatchStats | None  # saved statistics, or None
    stats_file: str | None
    preview: object | None
    hints: Hints

    @property
    def moves(self) -> bool:
        """Whether inputs are seen with their ``channel_axis`` moved last (per
        channel; per activation the channels' axis makes no difference)."""
        return self.options.channel_axis is not None and self.settings.per == "channel"

    @property
    def channels_last(self) -> bool:
        """The layout the kernels see."""
        return self.options.channels_last or self.moves

    def axis(self, source: Source, shape: tuple[int, ...], *, batch: bool) -> int | None:
        """The checked ``channel_axis`` of an input of ``shape`` (its first axes
        are the batch's when ``batch``), or None when nothing moves."""
        if self.options.channel_axis is None:
            return None
        try:
            axis = channel_axis_of(shape, self.options.channel_axis,
                                   first=batch_axes(len(shape)) if batch else 0)
        except ParameterError as e:
            raise data_error(source.label, e) from None
        return axis if self.moves else None

    def to_sample(self, source: Source, x: np.ndarray) -> np.ndarray:
        """One input as a sample of the batch, in the kernels' layout."""
        axis = self.axis(source, x.shape, batch=False)
        return as_sample(x, self.channels_last) if axis is None else to_channels_last(x, axis)

    def from_sample(self, source: Source, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """A sample's result in its input's layout."""
        axis = self.axis(source, x.shape, batch=False)
        return y.reshape(x.shape) if axis is None else from_channels_last(y, axis)

    def check_stats_shape(self, source: Source, shape: tuple[int, ...]) -> None:
        want = stats_shape(shape, self.settings.per, self.channels_last)
        if self.stats.mean.shape != want:
            raise InputError(source.label, f"needs statistics of shape {want} per "
                             f"{self.settings.per}, but {self.stats_file or 'the statistics'} "
                             f"holds shape {self.stats.mean.shape}")

    def summary(self, x: np.ndarray, i: int = 0) -> Summary | None:
        if not self.options.summaries:
            return None
        return summarize(x, histogram=self.options.with_histogram(i))

    def observe(self, i: int, source: Source, x: np.ndarray, y: np.ndarray) -> None:
        if self.preview is not None:
            self.preview.observe(i, source.label, x, y)


def _in_memory(job: _Batch, engine: Engine, source: Source, writer: ResultWriter,
               need_stats: bool) -> tuple[list[InputReport], BatchStats | None]:
    """One input whose first axis is the batch."""
    x = load_checked(source, job.options)
    axis = job.axis(source, x.shape, batch=True)
    if job.options.channel_axis is None:
        job.hints.layout(0, source, x.shape)
    job.hints.single_batch(source, x.shape)
    check_memory(source.label, x)
    stats, channels_last, threads = job.stats, job.channels_last, engine.kernel_threads(1)
    xk = x if axis is None else to_channels_last(x, axis)  # (a view)
    if stats is not None:
        job.check_stats_shape(source, xk.shape)
    try:
        with blame(job.files):
            y = batch_norm(xk, params=job.settings, channels_last=channels_last, threads=threads,
                           mean=None if stats is None else stats.mean,
                           var=None if stats is None else stats.var)
        y = job.options.as_output(y, x)
        if axis is not None:
            y = from_channels_last(y, axis)
        if stats is None and need_stats:
            stats = batch_stats(xk, per=job.settings.per, channels_last=channels_last,
                                threads=threads)
    except ParameterError as e:
        raise data_error(source.label, e) from None
    writer.add(0, source, y)
    job.observe(0, source, x, y)
    return [InputReport(source.label, job.summary(x), job.summary(y))], stats


def _streamed(job: _Batch, engine: Engine, sources: Sequence[Source], writer: ResultWriter,
              progress: Progress | None) -> tuple[list[InputReport], BatchStats]:
    """Several inputs, the samples of one batch."""
    options = job.options
    if job.stats is None:
        stats, pass1 = _statistics(options, engine, sources, job.settings.per, progress, job=job)
    else:
        stats, pass1 = job.stats, None
    try:  # one normalizer: scale and shift computed once for every file
        with blame(job.files):
            normalizer = BatchNormalizer(stats.mean, stats.var, params=job.settings,
                                         channels_last=job.channels_last,
                                         finite_stats=pass1 is None or not options.allow_nonfinite)
    except ParameterError as e:
        raise data_error(sources[0].label, e) from None
    # Each worker thread reads into, and normalizes into, buffers of its own,
    # unless the arrays must outlive the call (stacked outputs, previews).
    buffers = _ThreadBuffers() if job.preview is None and not writer.plan.collects() else None

    def one(i: int) -> tuple[InputReport, int]:
        source, xbuf = sources[i], None
        if pass1 is None:  # saved statistics: each sample must fit them
            x = load_checked(source, options, mmap=True)
            job.check_stats_shape(source, (1, *job.to_sample(source, x).shape))
            before = job.summary(x, i)
        else:  # read, checked for NaN/Inf and counted in pass 1: unless it changed since
            if buffers is not None and not job.moves:
                xbuf = buffers.get("x", pass1.sample_shape, pass1.dtype)
            x, state = read_unchecked(source, options, xbuf)
            pass1.check_unchanged(i, source, x, state)
            before = pass1.befores[i]
        if options.channel_axis is None:
            job.hints.layout(i, source, x.shape)
        sample, ct = job.to_sample(source, x), compute_dtype(x.dtype)
        out = None
        if xbuf is not None and x.dtype == ct and np.may_share_memory(x, xbuf):
            out = sample[None]  # in place: the buffer is ours (and half the cache)
        elif buffers is not None:
            out = buffers.get("y", (1, *sample.shape), ct)
        try:
            with blame(job.files):  # (coefficients out of range name gamma's file)
                y = normalizer(sample[None], threads=1, out=out)[0]
            y = job.from_sample(source, options.as_output(y, x), x)
        except ParameterError as e:
            raise data_error(source.label, e) from None
        writer.add(i, source, y)
        job.observe(i, source, x, y)
        return InputReport(source.label, before, job.summary(y, i)), x.nbytes

    stage = Stage(progress, "normalizing", len(sources))
    done = engine.map(one, len(sources), on_done=lambda i, r: stage.advance(r[1]))
    return [row for row, _ in done], stats


class _ThreadBuffers(threading.local):
    """Arrays reused by one worker thread from file to file (no allocation, no
    page faults per file); each thread has its own."""

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        arr = self.__dict__.get(name)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = self.__dict__[name] = np.empty(shape, dtype)
        return arr


@dataclass
class _Pass1:
    """What the statistics pass learnt about each input, for the second pass."""

    shape: tuple[int, ...]  # every input's shape
    sample_shape: tuple[int, ...]
    dtype: np.dtype  # the first input's
    first: Source
    befores: list[Summary | None]
    states: list[tuple | None]  # Source.state() after reading

    def check_unchanged(self, i: int, source: Source, x: np.ndarray, state) -> None:
        _same_shape(source, x, self.shape, self.first)
        if state != self.states[i]:
            raise InputError(source.label, "changed after the statistics were computed "
                             "from it; run again")


def _statistics(options: RunOptions, engine: Engine, sources: Sequence[Source], per: str,
                progress: Progress | None, *, job: _Batch | None = None
                ) -> tuple[BatchStats, _Pass1]:
    """Pass 1 over many inputs: their merged batch statistics, and a :class:`_Pass1`.

    Groups are read ahead on the engine (the next while the current one is
    reduced, into the other of two buffers); their moments are merged in input
    order (files are scanned one by one only to name one holding NaN/Inf).
    """
    if job is not None:  # (its channel_axis)
        to_sample, moves, channels_last = job.to_sample, job.moves, job.channels_last
    else:
        moves, channels_last = False, options.channels_last

        def to_sample(source: Source, x: np.ndarray) -> np.ndarray:
            return as_sample(x, channels_last)
    running = RunningStats(per=per, channels_last=channels_last, threads=options.jobs)
    first = read_unchecked(sources[0], options, None)[0]
    sample_shape = to_sample(sources[0], first).shape
    info = _Pass1(first.shape, sample_shape, first.dtype, sources[0], [None] * len(sources),
                  [None] * len(sources))
    size = max(1, GROUP_BYTES // max(1, first.nbytes))
    # two buffers: the next group is read into one while the other is reduced
    buffers = [np.empty((min(size, len(sources)), *sample_shape), first.dtype)
               for _ in range(2 if len(sources) > size else 1)]
    del first
    groups = [range(start, min(start + size, len(sources)))
              for start in range(0, len(sources), size)]
    stage = Stage(progress, "batch statistics", len(sources))

    def reader(group: range, buffer: np.ndarray) -> Callable[[int], np.ndarray | None]:
        def read(i: int) -> np.ndarray | None:
            """Input ``group[i]`` into ``buffer[i]``; a sample of another dtype is
            returned as it is (memory-mapped) and promotes the group."""
            source = sources[group[i]]
            x, info.states[group[i]] = read_unchecked(source, options,
                                                      None if moves else buffer[i])
            if x.shape != info.shape:  # the file's own problem first, if it has one
                check_finite(source, options, x)
                _same_shape(source, x, info.shape, info.first)
            if options.summaries:
                info.befores[group[i]] = summarize(
                    x, histogram=options.with_histogram(group[i]))
            stage.advance(x.nbytes)
            if np.may_share_memory(x, buffer):
                return None
            if x.dtype == buffer.dtype:
                buffer[i] = to_sample(source, x)
                return None
            return x

        return read

    def read_group(g: int) -> Callable[[], list]:
        return engine.start(reader(groups[g], buffers[g % len(buffers)]), len(groups[g]))

    pending = read_group(0)
    for g, group in enumerate(groups):
        buffer, loaded = buffers[g % len(buffers)], pending()
        ahead = g + 1 < len(groups) and len(buffers) > 1
        if ahead:
            pending = read_group(g + 1)
        if all(x is None for x in loaded):
            batch = buffer[:len(group)]
        else:
            batch = np.stack([buffer[i] if x is None else to_sample(sources[group[i]], x)
                              for i, x in enumerate(loaded)])
        try:
            running.add(batch)
        except ParameterError as e:
            raise data_error(sources[group[0]].label, e) from None
        if not running.finite():  # NaN or Inf in this group (or float64 overflow)
            for i, sample in zip(group, batch, strict=True):
                check_finite(sources[i], options, sample)
        del loaded, batch
        if not ahead and g + 1 < len(groups):
            pending = read_group(g + 1)
    # The group buffers go before the statistics are made: with both, the end of
    # pass 1 was the run's peak (per activation, (32, 128, 128) samples: 16 MiB
    # of buffers beside 12 of running moments and the 8 of the statistics).
    buffers.clear()
    del buffer, pending
    stats = running.stats()
    if not np.isfinite(stats.var).all():
        _refuse_overflow(options, sources)
    if per == "activation" and stats.count < 2:
        raise InputError(sources[0].label, "a batch of one sample has no variance "
                         "per activation; give more inputs or --stats")
    return stats, info


def _refuse_overflow(options: RunOptions, sources: Sequence[Source]) -> None:
    """Statistics that are not finite come from NaN/Inf in the data (allowed with
    allow_nonfinite: they propagate, as in memory) or from finite values too
    large for float64 sums of squares: then name the file holding the largest."""
    largest, where = -1.0, sources[0]
    for source in sources:  # (a rare path: read again, memory-mapped)
        x = read_unchecked(source, options, None)[0]
        if count_nonfinite(x):
            return
        top = float(np.max(np.abs(x)))
        if top > largest:
            largest, where = top, source
    raise InputError(where.label, overflow_message(largest))


def as_sample(x: np.ndarray, channels_last: bool) -> np.ndarray:
    """One input as a sample of a batch: an (H, W) map is one channel, (1, H, W)."""
    if x.ndim != 2:
        return x
    return x[:, :, None] if channels_last else x[None]


def _same_shape(source: Source, x: np.ndarray, shape: tuple[int, ...], first: Source) -> None:
    if x.shape != shape:
        raise InputError(source.label, f"has shape {x.shape} but {first.label} has {shape}; "
                         "the samples of a batch need one shape")


@contextlib.contextmanager
def _blamed_on_files(model, from_onnx, layer: str | None, stats):
    """Statistics or an ONNX layer's scale or B beyond the data's range (refused
    once the data's type is known) are the error of the file they came from (the
    ``--stats`` file, the model), not of a ``--gamma`` flag's."""
    try:
        yield
    except ParameterError as e:
        if e.param in ("mean", "var") and is_path(stats):
            raise InputError(os.fspath(stats), f"its {e.param} {e.problem}") from None
        if model is None or from_onnx is None or e.param not in ("gamma", "beta", "mean",
                                                                   "var"):
            raise
        name = {"gamma": "scale", "beta": "B"}.get(e.param, e.param)
        raise InputError(os.fspath(from_onnx), f"layer {layer!r}: its {name} "
                         f"{e.problem}") from None
