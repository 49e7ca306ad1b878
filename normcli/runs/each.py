"""Runs that treat every input on its own: ``lrn`` and ``stats``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from normcli.errors import ParameterError
from normcli.files import StagedWrites
from normcli.ops.conventions import LRNParams, lrn_params
from normcli.ops.lrn import lrn as lrn_op
from normcli.ops.summary import summarize
from normcli.runs import signals
from normcli.runs.engine import ThreadEngine
from normcli.runs.hints import Hints
from normcli.runs.inputs import (
    check_memory,
    choose_jobs,
    data_error,
    load_checked,
    open_sources,
)
from normcli.runs.options import Progress, RunOptions
from normcli.runs.outputs import OutputPlan, ResultWriter
from normcli.runs.progress import Stage
from normcli.runs.report import InputReport, Report

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
        ``.npy``, ``.npz`` (each array is an input) and PNG files,
        directories of them, and ``"-"`` (a ``.npy`` on standard input).
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

    def transform(x: np.ndarray, threads: int | None) -> np.ndarray:
        return opts.as_output(lrn_op(x, params=p, channels_last=opts.channels_last,
                                     threads=threads), x)

    params_doc = {"normalization": "lrn", "mode": p.mode, "convention": p.convention.name,
                  "n": p.n, "k": p.k, "alpha": p.alpha, "beta": p.beta,
                  "window": p.window_text(), "alpha_effective": p.alpha_eff,
                  "k_effective": p.k_eff, "channels_last": opts.channels_last}
    return run_each("lrn", inputs, transform, opts, description=p.describe(), params=params_doc,
                    progress=progress, preview=preview)


def stats(inputs: Inputs, *, progress: Progress | None = None, **options) -> Report:
    """The summaries of the inputs alone (shape, dtype, min, max, mean, std, zeros,
    NaN/Inf, histogram); nothing is written.  ``options`` as for :func:`lrn`,
    without the output ones."""
    opts = RunOptions(**options)
    if opts.output is not None:
        raise ParameterError(f"output={opts.output!r}: stats writes nothing", param="output",
                             value=opts.output)
    return run_each("stats", inputs, None, opts, description="statistics of the inputs",
                    params={"normalization": None}, progress=progress)


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
) -> Report:
    """Run ``transform(x, threads)`` on every input independently; write and report.

    ``transform`` None only summarizes the inputs (``stats``).  Summaries are
    computed only when asked for (``options.summaries``).
    """
    with signals.handled():
        sources = open_sources(inputs, options)
        options = dataclasses.replace(options, jobs=choose_jobs(options.jobs, sources))
        plan = OutputPlan(options, sources) if transform is not None else None
        if plan is not None and preview is not None:
            plan.reserve(preview.path, "preview")
        shown = options.summaries
        stage = Stage(progress, command, len(sources))
        hints = Hints(options.channels_last)
        with StagedWrites(sync=options.sync) as staged, ThreadEngine(options.jobs) as engine:
            writer = ResultWriter(plan, staged) if plan is not None else None
            threads = engine.kernel_threads(len(sources))

            def one(i: int) -> tuple[InputReport, int]:
                source = sources[i]
                x = load_checked(source, options)
                after = None
                if transform is not None:
                    hints.layout(i, source, x.shape)
                    check_memory(source.label, x)
                    try:
                        y = transform(x, threads)
                    except ParameterError as e:
                        raise data_error(source.label, e) from None
                    writer.add(i, source, y)
                    if preview is not None:
                        preview.observe(i, source.label, x, y)
                    if shown:
                        after = summarize(y, histogram=options.with_histogram(i))
                before = summarize(x, histogram=options.with_histogram(i)) if shown else None
                return InputReport(source.label, before, after), x.nbytes

            done = engine.map(one, len(sources), on_done=lambda i, r: stage.advance(r[1]))
            if preview is not None:
                preview.stage(staged)
            if writer is not None:
                writer.commit()
    written = [*(plan.written() if plan is not None else []),
               *([os.fspath(preview.path)] if preview is not None else [])]
    return Report(command, description, params, [row for row, _ in done],
                  output_kind=plan.kind if plan is not None else "none",
                  output=options.output, written=written, hints=hints.lines())
