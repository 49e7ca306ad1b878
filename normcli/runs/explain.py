"""``explain`` and ``compare`` over files: one value step by step, three normalizations.

Both load their inputs whole (several are stacked along a new first axis), and
without inputs ``explain`` uses the seed's worked examples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from normcli.errors import InputError, ParameterError
from normcli.files import StagedWrites
from normcli.ops.conventions import LRNParams, lrn_params
from normcli.ops.summary import Summary, summarize
from normcli.runs import signals
from normcli.runs.inputs import check_memory, data_error, load_stack
from normcli.runs.options import RunOptions
from normcli.runs.parameters import batchnorm_settings, blame, with_saved_stats

__all__ = ["Explained", "explain_lrn", "explain_batchnorm", "Compared", "compare",
           "BUILTIN_LRN", "BUILTIN_BATCH"]

Inputs = Sequence[str | os.PathLike[str]]

BUILTIN_LRN = {
    "inter": "the built-in example (the seed's worked example 1, sample_data/seed_inter.npy)",
    "intra": "the built-in example (the seed's worked example 2, sample_data/seed_intra.npy)",
}
BUILTIN_BATCH = ("the built-in example (the seed's mini-batch of three activations, "
                 "sample_data/seed_batch/)")


@dataclass(frozen=True)
class Explained:
    """An explanation (:mod:`normcli.ops.explain`) and what it explains: ``source``
    names the input, ``stats_file`` the saved statistics used, if any."""

    explanation: object
    source: str
    stats_file: str | None = None


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
    into the array as stored; default the first value).  Without ``inputs``: the
    seed's example (``mode="intra"``: its 5x5 map), with the seed's (n, k,
    alpha, beta) = (2, 0, 1, 1) when none of them is given under the seed
    convention."""
    from normcli.ops.explain import SEED_EXAMPLE_PARAMS, SEED_INTER, SEED_INTRA, explain_lrn

    if (not inputs and params is None and settings.get("convention", "seed") == "seed"
            and all(settings.get(name) is None for name in SEED_EXAMPLE_PARAMS)):
        settings = {**settings, **SEED_EXAMPLE_PARAMS}
    p = lrn_params(params, **settings)
    if not inputs:
        x, label = (SEED_INTRA if p.mode == "intra" else SEED_INTER), BUILTIN_LRN[p.mode]
        channels_last = False
    else:
        x, label, _ = load_stack(inputs, RunOptions(channels_last=channels_last, raw_png=raw_png,
                                                    allow_nonfinite=True))
    if x.ndim < 2:
        raise InputError(label, f"has shape {x.shape}; LRN needs at least 2 dimensions (H, W)")
    position = (0,) * x.ndim if position is None else tuple(position)
    try:
        return Explained(explain_lrn(x, position, params=p, channels_last=channels_last), label)
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
    ``position`` starts with the batch index.  Without ``inputs``: the seed's
    mini-batch of three (4, 4, 4) activations."""
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
    position = (0,) * x.ndim if position is None else tuple(position)
    try:
        with blame({**files, **({"stats": stats_file} if stats_file else {})}):
            e = explain_batch_norm(x, position, params=settings, channels_last=channels_last,
                                   stats=saved)
    except ParameterError as e:
        raise data_error(label, e) from None
    return Explained(e, label, stats_file)


@dataclass(frozen=True)
class Compared:
    """``compare``'s numbers: the summary before and after each normalization.

    ``columns`` are ``(key, heading, Summary or None)`` for ``input``,
    ``lrn_inter``, ``lrn_intra`` (None when the convention has no intra form)
    and ``batchnorm``; ``stacked`` says whether the batch is the stacked inputs.
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


def compare(
    inputs: Inputs,
    *,
    lrn: LRNParams | None = None,
    per: str = "activation",
    eps: float = 1e-5,
    preview=None,
    channels_last: bool = False,
    raw_png: bool = False,
    allow_nonfinite: bool = False,
    force: bool = False,
    **lrn_settings,
) -> Compared:
    """Inter-channel LRN, intra-channel LRN (when the convention has it) and batch
    norm (gamma 1, beta 0) of the same input(s), summarized side by side.

    ``lrn``: the resolved inter-channel settings (or ``convention``, ``n``,
    ``k``, ``alpha``, ``beta`` as keywords); the intra-channel form uses the
    same parameters.  The batch is the stack of the inputs or, for one input,
    its first axis.  ``preview`` (see :func:`normcli.runs.lrn`) gets the first
    samples of each stage through ``add(label, arrays, index)``.
    """
    from normcli.ops.batchnorm import batch_norm, resolve_batchnorm
    from normcli.ops.lrn import lrn as lrn_op

    inter = lrn_params(lrn, mode="inter", **lrn_settings)
    intra = None
    if inter.convention.has_intra:
        intra = lrn_params(None, mode="intra", convention=inter.convention.name, n=inter.n,
                           k=inter.k, alpha=inter.alpha, beta=inter.beta)
    bn = resolve_batchnorm(per=per, eps=eps)
    with signals.handled():
        options = RunOptions(channels_last=channels_last, raw_png=raw_png,
                             allow_nonfinite=allow_nonfinite, force=force)
        x, label, sources = load_stack(inputs, options)
        if preview is not None:
            _check_preview(preview, sources, force)
        check_memory(label, x, results=3 if intra is not None else 2)
        try:
            outputs = {"before": x,
                       "LRN inter": lrn_op(x, params=inter, channels_last=channels_last)}
            if intra is not None:
                outputs["LRN intra"] = lrn_op(x, params=intra, channels_last=channels_last)
            outputs["BN"] = batch_norm(x, params=bn, channels_last=channels_last)
        except ParameterError as e:
            raise data_error(label, e) from None
        if preview is not None:
            if len(sources) == 1:
                preview.add(label, outputs, 0)
            else:  # stacked inputs: one sample each, named by its input
                for i, source in enumerate(sources[:3]):
                    preview.add(source.label, {key: v[i] for key, v in outputs.items()}, i)
            with StagedWrites() as staged:
                preview.stage(staged)
                staged.commit()
    columns = [("input", "input", summarize(x)),
               ("lrn_inter", "LRN inter", summarize(outputs["LRN inter"])),
               ("lrn_intra", "LRN intra",
                summarize(outputs["LRN intra"]) if intra is not None else None),
               ("batchnorm", "BN", summarize(outputs["BN"]))]
    return Compared(label, tuple(x.shape), len(sources) > 1, inter, intra, bn.per, bn.eps,
                    channels_last, columns)


def _check_preview(preview, sources, force: bool) -> None:
    from normcli.runs.outputs import OutputPlan

    OutputPlan(RunOptions(force=force), sources).reserve(preview.path, "preview")

