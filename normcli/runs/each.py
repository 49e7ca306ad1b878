"""Runs that treat every input on its own: ``lrn`` and ``stats``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from normcli.errors import ParameterError
from normcli.files import StagedWrites, stage_array
from normcli.ops.conventions import LRNParams, lrn_params
from normcli.ops.lrn import lrn as lrn_op
from normcli.ops.summary import summarize
from normcli.runs import signals
from normcli.runs.dataset import Failure, Failures, Notes, channel_statistics
from normcli.runs.engine import engine_for
from normcli.runs.hints import Hints
from normcli.runs.inputs import check_memory, choose_jobs, data_error, open_inputs, read_input
from normcli.runs.layout import channel_axis_of, from_channels_last, to_channels_last
from normcli.runs.options import Progress, RunOptions, checked_path
from normcli.runs.outputs import OutputPlan, ResultWriter
from normcli.runs.progress import Stage, check_progress
from normcli.runs.report import InputReport, Report

#: The note of a run whose workers compute band products with other BLAS kernels.
UNLIKE_NOTE = ("workers whose BLAS kernels are not this machine's (LRN's window sums by band "
               "products may differ from a local run's in the last bit)")

__all__ = ["lrn", "stats", "run_each"]

Inputs = Sequence[str | os.PathLike[str]]
#: ``transform(x, threads)``: one input's result, with ``threads`` for its kernel.
Transform = Callable[[np.ndarray, int | None], np.ndarray]


def lrn(
    inputs: Inputs,
    *,
    output: str | os.PathLike[str] | None = None,
    mode: str = "inter",
    convention: str = "seed",
    n: int | None = None,
    k: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    params: LRNParams | None = None,
    progress: Progress | None = None,
    preview=None,
    **options,
) -> Report:
    """Local response normalization of every input, each on its own.

    Parameters
    ----------
    inputs : sequence of str or path-like
        ``.npy``, ``.npz`` (each array is an input) and image files (PNG,
        JPEG, TIFF, WebP, BMP, GIF), directories of them, and ``"-"``
        (standard input: a ``.npy``, ``.npz`` or image).
    output : str or path-like, optional
        Where results go (see :class:`~normcli.runs.options.RunOptions`).
    mode, convention, n, k, alpha, beta, params
        As for :func:`normcli.ops.lrn.lrn`, checked once before any input is read.
    progress : callable, optional
        ``progress(stage, done, total, nbytes)`` (see :data:`~normcli.runs.options.Progress`).
    preview : optional
        An object with ``path``, ``observe(i, label, x, y)`` and ``stage(staged)``
        (:class:`normcli.render.preview.PreviewRecorder`): it sees every input
        and result, and its file appears with the outputs.
    **options
        The fields of :class:`~normcli.runs.options.RunOptions`.

    Returns
    -------
    Report

    Raises
    ------
    UsageError
        Bad settings or outputs (a :class:`ParameterError` naming ``.param``),
        before anything is read.
    InputError, OutputError
        A bad input or an output that cannot be written; nothing is written then.
    """
    p = lrn_params(params, mode=mode, convention=convention, n=n, k=k, alpha=alpha, beta=beta)
    opts = RunOptions(output=output, **options)
    check_progress(progress)

    def transform(x: np.ndarray, threads: int | None) -> np.ndarray:
        if opts.channel_axis is None:
            return opts.as_output(lrn_op(x, params=p, channels_last=opts.channels_last,
                                         threads=threads), x)
        axis = channel_axis_of(x.shape, opts.channel_axis, first=max(0, x.ndim - 3), least=3,
                               what="LRN inputs")  # (C, H, W), or a batch of them
        y = lrn_op(to_channels_last(x, axis), params=p, channels_last=True, threads=threads)
        return from_channels_last(opts.as_output(y, x), axis)

    params_doc = {"normalization": "lrn", "mode": p.mode, "convention": p.convention.name,
                  "n": p.n, "k": p.k, "alpha": p.alpha, "beta": p.beta,
                  "window": p.window_text(), "alpha_effective": p.alpha_eff,
                  "k_effective": p.k_eff, "channels_last": opts.channels_last,
                  **({"channel_axis": opts.channel_axis} if opts.channel_axis is not None
                     else {})}
    return run_each("lrn", inputs, transform, opts, description=p.describe(), params=params_doc,
                    progress=progress, preview=preview, image_pixels="input", band_products=True)


def stats(inputs: Inputs, *, per: str | None = None,
          save_stats: str | os.PathLike[str] | None = None, progress: Progress | None = None,
          **options) -> Report:
    """The summaries of the inputs alone (shape, dtype, min, max, mean, std, zeros,
    NaN/Inf, histogram), or with ``per="channel"`` the dataset's per-channel
    statistics (:class:`~normcli.ops.dataset.DatasetStats` in
    ``Report.dataset``: count, mean, biased and unbiased variance and std, min,
    max, NaN/Inf) over inputs of any size, every pixel weighing the same, in
    memory that does not grow with the number of inputs.  NaN and Inf are
    counted, never refused.  ``save_stats``: write the per-channel statistics
    to this ``.npz`` (what ``batchnorm(stats=...)`` reads).  ``options`` as
    for :func:`lrn`, without the output ones."""
    opts = RunOptions(**{**options, "allow_nonfinite": True})  # counted, never refused
    check_progress(progress)
    if opts.output is not None:
        raise ParameterError(f"output={opts.output!r}: stats writes nothing", param="output",
                             value=opts.output)
    if per not in (None, "channel"):
        problem = f"{per!r}: stats gives per-channel statistics (per='channel') or none"
        raise ParameterError(f"per={problem}", param="per", value=per, problem=problem)
    if save_stats is not None:
        save_stats = checked_path(save_stats, "save_stats")
        if per is None:
            raise ParameterError("save_stats needs per='channel' (--per channel)",
                                 param="save_stats", value=save_stats,
                                 problem="needs --per channel")
        if not save_stats.lower().endswith(".npz"):
            problem = f"{save_stats!r} must be a .npz file"
            raise ParameterError(f"save_stats={problem}", param="save_stats", value=save_stats,
                                 problem=problem)
    if per is not None:
        return _dataset(inputs, opts, save_stats, progress)
    return run_each("stats", inputs, None, opts, description="statistics of the inputs",
                    params={"normalization": None}, progress=progress)


def _dataset(inputs: Inputs, opts: RunOptions, save_stats: str | None,
             progress: Progress | None) -> Report:
    from normcli.runs.outputs import OutputPlan

    with signals.handled():
        found = open_inputs(inputs, opts)
        sources = found.sources
        plan = OutputPlan(opts, sources)
        if save_stats is not None:
            plan.reserve(save_stats, "save_stats")
        if opts.scheduler is not None:
            from normcli.runs.cluster import check_supported

            check_supported(opts, sources)
        failures = Failures(opts.keep_going)
        with StagedWrites(sync=opts.sync) as staged, engine_for(opts) as engine:
            dataset, notes = channel_statistics(sources, opts, engine, failures,
                                                progress=progress)
            if save_stats is not None:
                stage_array(staged, save_stats, dataset.to_dict(), force=opts.force)
                staged.sync()
                signals.check()
                staged.commit()
    description = (f"per-channel statistics of {dataset.images:,} input"
                   f"{'s' if dataset.images != 1 else ''}")
    params = {"normalization": None, "per": "channel", "color": opts.color,
              "include_alpha": opts.include_alpha, "raw": opts.raw_png}
    return Report("stats", description, params, [], given=len(sources),
                  written=[save_stats] if save_stats else [], saved_stats=save_stats,
                  dataset=dataset, failures=failures.sorted(), skipped=dict(found.skipped),
                  notes=notes)


def run_each(
    command: str,
    inputs: Inputs,
    transform: Transform | None,
    options: RunOptions,
    *,
    description: str,
    params: dict,
    progress: Progress | None = None,
    preview=None,
    image_pixels: str | None = None,
    band_products: bool = False,
) -> Report:
    """Run ``transform(x, threads)`` on every input independently; write and report.

    ``transform`` None only summarizes the inputs (``stats``).  Summaries are
    computed only when asked for (``options.summaries``).  Image inputs are
    transformed on their colour channels; image outputs get their alpha back
    and are mapped to pixels by ``options.pixels`` or ``image_pixels``.
    """
    with signals.handled():
        found = open_inputs(inputs, options)
        sources = found.sources
        options = dataclasses.replace(options, jobs=choose_jobs(options.jobs, sources))
        if options.scheduler is not None:
            from normcli.runs.cluster import check_supported

            check_supported(options, sources, preview=preview)  # (before any journal)
        journal = None
        if options.resume:
            from normcli.runs.resume import Journal, fingerprint

            journal = Journal(options, sources, fingerprint(command, params, options))
        plan = (OutputPlan(options, sources, existing_ok=journal and journal.existing_ok())
                if transform is not None else None)
        if plan is not None and preview is not None:
            plan.reserve(preview.path, "preview")
        if options.scheduler is not None:
            from normcli.runs.cluster import check_supported

            check_supported(options, sources, plan, preview)
        shown = options.summaries
        stage = Stage(progress, command, len(sources))
        hints = Hints(options.channels_last)
        failures = Failures(options.keep_going)
        with StagedWrites(sync=options.sync) as staged, engine_for(options) as engine:
            if journal is not None:
                from normcli.runs.resume import ResumeWriter

                writer = ResumeWriter(plan, journal, image_pixels=image_pixels)
            else:
                writer = (ResultWriter(plan, staged, image_pixels=image_pixels)
                          if plan is not None else None)
            todo = [i for i in range(len(sources)) if journal is None or i not in journal.done]
            threads = engine.kernel_threads(len(sources))
            # (LRN's band products are BLAS's: their last bits are its kernels')
            unlike = engine.unlike_here() if band_products else []

            def one(i: int) -> tuple[InputReport, int, tuple[str, ...]]:
                source = sources[i]
                x, decoded = read_input(source, options)
                after = None
                if transform is not None:
                    if options.channel_axis is None:
                        hints.layout(i, source, x.shape)
                    check_memory(source.label, x)
                    try:
                        y = transform(x, threads)
                    except ParameterError as e:
                        raise data_error(source.label, e) from None
                    writer.add(i, source, y, decoded)
                    if preview is not None:
                        preview.observe(i, source.label, x, y)
                    if shown:
                        after = summarize(y, histogram=options.with_histogram(i))
                before = summarize(x, histogram=options.with_histogram(i)) if shown else None
                notes = decoded.notes if decoded is not None else ()
                return InputReport(source.label, before, after), x.nbytes, notes

            work = failures.guard(one, lambda i: sources[i].label)
            try:
                done = engine.map(lambda k: work(todo[k]), len(todo),
                                  on_done=lambda k, r: stage.advance(
                                      0 if isinstance(r, Failure) else r[1]))
            except (KeyboardInterrupt, SystemExit) as e:
                if journal is None:
                    raise
                raise signals.with_hint(e, resume_hint(journal, writer, len(sources))) from None
            finally:
                if journal is not None:
                    journal.close(options.sync)
            if preview is not None:
                preview.stage(staged)
            if writer is not None:
                writer.commit()
    notes = Notes()
    for where in unlike:
        notes.add(UNLIKE_NOTE, where)
    for k, r in enumerate(done):
        if not isinstance(r, Failure):
            for note in r[2]:
                notes.add(note, sources[todo[k]].label)
    if journal is not None:
        written = [os.fspath(plan.targets[i]) for i in todo if i not in failures]
    else:
        written = plan.written_of(failures) if plan is not None else []
    written += [os.fspath(preview.path)] if preview is not None else []
    return Report(command, description, params,
                  [r[0] for r in done if not isinstance(r, Failure)],
                  output_kind=plan.kind if plan is not None else "none",
                  output=options.output, written=written, hints=hints.lines(),
                  failures=failures.sorted(),
                  skipped=dict(found.skipped), notes=notes,
                  pixels=sorted(writer.mappings) if writer is not None else [],
                  resumed=len(journal.done) if journal is not None else 0)


def resume_hint(journal, writer, total: int) -> str:
    """What an interrupted resumable run says: how far it got, and how to finish."""
    done = len(journal.done) + writer.count
    return (f"{done:,} of {total:,} outputs are in place in {journal.folder}; run the same "
            "command with --resume to finish")
