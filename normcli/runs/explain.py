"""``explain`` and ``compare`` over files: one value step by step, three normalizations.

``explain`` loads its inputs whole (several are stacked along a new first
axis), and without inputs uses the seed's worked examples.  ``compare``
streams several inputs as ``batchnorm`` does (flat memory, a progress
callback); a single input is compared in memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from normcli.errors import InputError, ParameterError
from normcli.files import StagedWrites
from normcli.ops.batchnorm import resolve_batchnorm
from normcli.ops.conventions import LRNParams, lrn_params
from normcli.ops.summary import Summary, merge, summarize
from normcli.runs import signals
from normcli.runs.engine import ThreadEngine
from normcli.runs.hints import Hints
from normcli.runs.inputs import (
    check_memory,
    choose_jobs,
    data_error,
    load_checked,
    load_stack,
    open_sources,
    read_unchecked,
)
from normcli.runs.options import Progress, RunOptions
from normcli.runs.parameters import batchnorm_settings, blame, with_saved_stats
from normcli.runs.progress import Stage

__all__ = ["Explained", "explain_lrn", "explain_batchnorm", "Compared", "compare",
           "BUILTIN_LRN", "BUILTIN_BATCH"]

Inputs = Sequence[str | os.PathLike[str]]

BUILTIN_LRN = {
    "inter": "the built-in example (the data of sample_data/seed_inter.npy)",
    "intra": "the built-in example (the data of sample_data/seed_intra.npy)",
}
BUILTIN_BATCH = ("the built-in example (the seed's mini-batch of three activations, "
                 "sample_data/seed_batch/)")


@dataclass(frozen=True)
class Explained:
    """An explanation (:mod:`normcli.ops.explain`) and what it explains: ``source``
    names the input, ``stats_file`` the saved statistics used, if any; ``notes``
    say where what was not given came from (the convention's defaults, the
    position chosen), one line each."""

    explanation: object
    source: str
    stats_file: str | None = None
    notes: tuple[str, ...] = ()


#: The LRN parameters that take the convention's defaults when not given.
LRN_PARAMETERS = ("n", "k", "alpha", "beta")


def first_nonzero(x) -> tuple[tuple[int, ...], str]:
    """The position ``explain`` shows without ``--at``: the first value (in storage
    order) that is not 0, which on a sparse ReLU map is not the first value;
    and the note that says so."""
    import numpy as np

    flat = x.reshape(-1)
    i = int(np.argmax(flat != 0)) if flat.size else 0
    if flat.size and flat[i] == 0:
        return (0,) * x.ndim, "--at not given, and every value is 0: explaining the first one"
    where = tuple(int(v) for v in np.unravel_index(i, x.shape))
    what = "the first value" if i == 0 else "the first value that is not 0"
    return where, f"--at not given: explaining {what}"


def _defaults_note(p: LRNParams, settings: dict) -> str | None:
    left = [name for name in LRN_PARAMETERS if settings.get(name) is None]
    if not left:
        return None
    values = ", ".join(f"{name}={getattr(p, name):g}" for name in left)
    return (f"parameters: {', '.join(left)} not given: the {p.convention.name} convention's "
            f"defaults ({values}), as for normcli lrn")


def explain_lrn(
    inputs: Inputs,
    *,
    position: Sequence[int] | None = None,
    params: LRNParams | None = None,
    channels_last: bool = False,
    raw_png: bool = False,
    **settings,
) -> Explained:
    """One value of :func:`normcli.runs.lrn` step by step, at ``position`` (indices
    into the array as stored; default the first value that is not 0).  Without
    ``inputs``: the seed's example data (``mode="intra"``: its 5x5 map).  The
    parameters not given take the convention's defaults, with or without
    inputs, as :func:`normcli.runs.lrn` does; the notes say which."""
    from normcli.ops.explain import SEED_INTER, SEED_INTRA, explain_lrn

    p = lrn_params(params, **settings)
    notes = [] if params is not None else [_defaults_note(p, settings)]
    if not inputs:
        x, label = (SEED_INTRA if p.mode == "intra" else SEED_INTER), BUILTIN_LRN[p.mode]
        channels_last = False
    else:
        x, label, _ = load_stack(inputs, RunOptions(channels_last=channels_last, raw_png=raw_png,
                                                    allow_nonfinite=True))
    if x.ndim < 2:
        raise InputError(label, f"has shape {x.shape}; LRN needs at least 2 dimensions (H, W)")
    if position is None:
        position, chosen = first_nonzero(x)
        notes.append(chosen)
    try:
        return Explained(explain_lrn(x, tuple(position), params=p, channels_last=channels_last),
                         label, notes=tuple(n for n in notes if n))
    except ParameterError as e:
        raise data_error(label, e) from None


def explain_batchnorm(
    inputs: Inputs,
    *,
    position: Sequence[int] | None = None,
    per: str | None = None,
    eps: float = 1e-5,
    gamma: object = 1.0,
    beta: object = 0.0,
    stats: object = None,
    channels_last: bool = False,
    raw_png: bool = False,
) -> Explained:
    """One value of :func:`normcli.runs.batchnorm` step by step: with the batch's
    statistics, or saved ones (``stats``: a ``save_stats`` file or a BatchStats).
    ``position`` starts with the batch index (default: the first value that is
    not 0).  Without ``inputs``: the seed's mini-batch of three (4, 4, 4)
    activations."""
    from normcli.ops.explain import SEED_BATCH, explain_batch_norm

    settings, files = batchnorm_settings(per="activation" if per is None else per, eps=eps,
                                         gamma=gamma, beta=beta, params=None)
    if not inputs:
        x, label, channels_last = SEED_BATCH, BUILTIN_BATCH, False
    else:
        x, label, _ = load_stack(inputs, RunOptions(channels_last=channels_last, raw_png=raw_png,
                                                    allow_nonfinite=True))
    if x.ndim < 2:
        raise InputError(label, f"has shape {x.shape}; a batch needs at least 2 dimensions "
                         "(N, ...)")
    settings, saved, stats_file = with_saved_stats(settings, files, stats, per)
    notes = ()
    if position is None:
        position, chosen = first_nonzero(x)
        notes = (chosen,)
    try:
        with blame({**files, **({"stats": stats_file} if stats_file else {})}):
            e = explain_batch_norm(x, tuple(position), params=settings,
                                   channels_last=channels_last, stats=saved)
    except ParameterError as e:
        raise data_error(label, e) from None
    return Explained(e, label, stats_file, notes)


@dataclass(frozen=True)
class Compared:
    """``compare``'s numbers: the summary before and after each normalization.

    ``columns`` are ``(key, heading, Summary or None)`` for ``input``,
    ``lrn_inter``, ``lrn_intra`` (None when the convention has no intra form)
    and ``batchnorm``; ``stacked`` says whether the batch is the inputs (each a
    sample) rather than the first axis of a single input, ``batch`` says in
    words what the batch was, ``batch_size`` how many samples it had, and
    ``hints`` are lines about inputs probably read the wrong way
    (:mod:`normcli.runs.hints`).
    """

    label: str
    shape: tuple[int, ...]
    stacked: bool
    inter: LRNParams
    intra: LRNParams | None
    per: str
    eps: float
    channels_last: bool
    columns: list[tuple[str, str, Summary | None]]
    batch: str = ""
    batch_size: int = 0
    hints: list[str] = field(default_factory=list)


def compare(
    inputs: Inputs,
    *,
    lrn: LRNParams | None = None,
    per: str = "activation",
    eps: float = 1e-5,
    preview=None,
    progress: Progress | None = None,
    channels_last: bool = False,
    raw_png: bool = False,
    allow_nonfinite: bool = False,
    force: bool = False,
    jobs: int | None = None,
    **lrn_settings,
) -> Compared:
    """Inter-channel LRN, intra-channel LRN (when the convention has it) and batch
    norm (gamma 1, beta 0) of the same input(s), summarized side by side.

    ``lrn``: the resolved inter-channel settings (or ``convention``, ``n``,
    ``k``, ``alpha``, ``beta`` as keywords); the intra-channel form uses the
    same parameters.  A single input is normalized in memory, its first axis
    the batch.  Several inputs are the samples of the batch and are streamed
    as :func:`normcli.runs.batchnorm` streams them, never held in memory: a
    first pass merges the batch statistics (reading ahead on ``jobs``
    workers), a second normalizes each input three ways (LRN each input on its
    own, as :func:`normcli.runs.lrn` does) and merges the summaries; the
    histograms of the totals come from their power-of-two grids.
    ``progress(stage, done, total, nbytes)``: stages ``"batch statistics"``
    and ``"comparing"``.  ``preview`` (see :func:`normcli.runs.lrn`) gets the
    first samples of each stage through ``add(label, arrays, index)``.
    """
    inter = lrn_params(lrn, mode="inter", **lrn_settings)
    intra = None
    if inter.convention.has_intra:
        intra = lrn_params(None, mode="intra", convention=inter.convention.name, n=inter.n,
                           k=inter.k, alpha=inter.alpha, beta=inter.beta)
    bn = resolve_batchnorm(per=per, eps=eps)
    with signals.handled():
        options = RunOptions(channels_last=channels_last, raw_png=raw_png,
                             allow_nonfinite=allow_nonfinite, force=force, jobs=jobs,
                             histograms=0)  # (every summary merges: grid histograms)
        sources = open_sources(inputs, options)
        options = dataclasses.replace(options, jobs=choose_jobs(options.jobs, sources))
        if preview is not None:
            _check_preview(preview, sources, force)
        hints = Hints(channels_last)
        with ThreadEngine(options.jobs) as engine:
            if len(sources) == 1:
                shape, columns = _compare_one(sources[0], options, inter, intra, bn, preview,
                                              hints, engine.kernel_threads(1))
                batch_size = shape[0] if len(shape) > 1 else 1
                batch = f"axis 0 of the input ({_first_axis(shape, channels_last)})"
            else:
                shape, columns = _compare_streamed(sources, options, engine, inter, intra, bn,
                                                   preview, hints, progress)
                batch_size, batch = len(sources), f"the {len(sources)} inputs, one sample each"
        if preview is not None:
            with StagedWrites() as staged:
                preview.stage(staged)
                staged.commit()
    label = sources[0].label if len(sources) == 1 else (
        f"{len(sources)} inputs stacked ({sources[0].label}, …)")
    return Compared(label, shape, len(sources) > 1, inter, intra, bn.per, bn.eps, channels_last,
                    columns, batch, batch_size, hints.lines())


def _first_axis(shape: tuple[int, ...], channels_last: bool) -> str:
    """What the first axis of a single input is, in words, as a batch."""
    n = shape[0]
    if len(shape) >= 4:
        return f"its {n} samples"
    what = "channels" if len(shape) == 3 and not channels_last else "rows"
    return f"its {n} {what} taken as samples"


def _columns(summaries: dict[str, Summary | None]) -> list[tuple[str, str, Summary | None]]:
    return [("input", "input", summaries["before"]),
            ("lrn_inter", "LRN inter", summaries["LRN inter"]),
            ("lrn_intra", "LRN intra", summaries.get("LRN intra")),
            ("batchnorm", "BN", summaries["BN"])]


def _compare_one(source, options, inter, intra, bn, preview, hints, threads):
    """One input in memory, its first axis the batch."""
    from normcli.ops.batchnorm import batch_norm
    from normcli.ops.lrn import lrn as lrn_op

    x = load_checked(source, options)
    hints.layout(0, source, x.shape)
    hints.single_batch(source, x.shape)
    check_memory(source.label, x, results=3 if intra is not None else 2)
    cl = options.channels_last
    try:
        outputs = {"before": x, "LRN inter": lrn_op(x, params=inter, channels_last=cl,
                                                    threads=threads)}
        if intra is not None:
            outputs["LRN intra"] = lrn_op(x, params=intra, channels_last=cl, threads=threads)
        outputs["BN"] = batch_norm(x, params=bn, channels_last=cl, threads=threads)
    except ParameterError as e:
        raise data_error(source.label, e) from None
    if preview is not None:
        preview.add(source.label, outputs, 0)
    return tuple(x.shape), _columns({k: summarize(v) for k, v in outputs.items()})


def _compare_streamed(sources, options, engine, inter, intra, bn, preview, hints, progress):
    """Several inputs, the samples of one batch: statistics, then each input three ways."""
    from normcli.ops.batchnorm import BatchNormalizer
    from normcli.ops.lrn import lrn as lrn_op
    from normcli.runs.batch import _statistics, as_sample

    stats, pass1 = _statistics(options, engine, sources, bn.per, progress)
    try:
        normalizer = BatchNormalizer(stats.mean, stats.var, params=bn,
                                     channels_last=options.channels_last,
                                     finite_stats=not options.allow_nonfinite)
    except ParameterError as e:
        raise data_error(sources[0].label, e) from None
    cl = options.channels_last

    def one(i: int) -> tuple[dict[str, Summary], int]:
        source = sources[i]
        x, state = read_unchecked(source, options, None)
        pass1.check_unchanged(i, source, x, state)
        hints.layout(i, source, x.shape)
        check_memory(source.label, x, results=3 if intra is not None else 2)
        try:
            outputs = {"LRN inter": lrn_op(x, params=inter, channels_last=cl, threads=1)}
            if intra is not None:
                outputs["LRN intra"] = lrn_op(x, params=intra, channels_last=cl, threads=1)
            sample = as_sample(x, cl)
            outputs["BN"] = normalizer(sample[None], threads=1)[0].reshape(x.shape)
        except ParameterError as e:
            raise data_error(source.label, e) from None
        if preview is not None:
            preview.add(source.label, {"before": x, **outputs}, i)
        return {"before": pass1.befores[i],
                **{k: summarize(v, histogram="grid") for k, v in outputs.items()}}, x.nbytes

    stage = Stage(progress, "comparing", len(sources))
    done = engine.map(one, len(sources), on_done=lambda i, r: stage.advance(r[1]))
    keys = done[0][0].keys()
    merged = {k: merge([summaries[k] for summaries, _ in done]) for k in keys}
    return (len(sources), *pass1.shape), _columns(merged)


def _check_preview(preview, sources, force: bool) -> None:
    from normcli.runs.outputs import OutputPlan

    OutputPlan(RunOptions(force=force), sources).reserve(preview.path, "preview")
