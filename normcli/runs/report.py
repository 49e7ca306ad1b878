"""What a run reports: per-input summaries, their total, what was written, the statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from normcli.ops.summary import Summary, merge

if TYPE_CHECKING:  # (lrn and stats runs never import the batch-norm modules)
    from normcli.ops.dataset import DatasetStats
    from normcli.ops.moments import BatchStats
    from normcli.runs.dataset import Failure

__all__ = ["InputReport", "Report"]


@dataclass(frozen=True)
class InputReport:
    """One input of a run: its name and its summaries before and after.

    ``before`` and ``after`` are None when the run computed no summaries
    (``summaries=False``); ``after`` is None for ``stats``.
    """

    label: str
    before: Summary | None
    after: Summary | None = None


@dataclass(frozen=True)
class Report:
    """The outcome of :func:`normcli.runs.lrn`, :func:`~normcli.runs.batchnorm` or
    :func:`~normcli.runs.stats`.

    Attributes
    ----------
    command : str
        ``"lrn"``, ``"batchnorm"`` or ``"stats"``.
    description : str
        The normalization and its effective parameters in one line, e.g.
        ``"LRN inter-channel, pytorch convention: window c-2..c+2, n=5, ..."``.
    params : dict
        The effective parameters, JSON-ready (``params["normalization"]`` is
        ``"lrn"``, ``"batchnorm"`` or None).
    inputs : list of InputReport
        Every input, in order.
    output_kind : str
        ``"none"``, ``"stdout"``, ``"file"``, ``"npz"`` or ``"dir"``.
    output : str or None
        The ``output`` the run was given.
    written : list of str
        What the run put in place: the paths of its outputs (``"<stdout>"``
        for standard output), empty when nothing was written.
    stats : BatchStats or None
        ``batchnorm``: the statistics it normalized with (the batch's, or the
        saved ones it was given).
    saved_stats : str or None
        ``batchnorm``: where the statistics were saved (``save_stats``).
    hints : list of str
        One line each about inputs probably read the wrong way (an image stored
        ``(H, W, C)`` read channels-first; a single input taken as a batch of
        its channels): see :mod:`normcli.runs.hints`.
        ``batchnorm``, ``stats``: where the statistics were saved (``save_stats``).
    dataset : DatasetStats or None
        ``stats(per="channel")``: the dataset's per-channel statistics.
    failures : list of Failure
        With ``keep_going``: the inputs that failed (``.label``, ``.problem``),
        in input order; every other input was processed.
    skipped : dict of str to int
        What the input folders held that is not an input, by kind
        (``".txt files"``, ``"subfolders (use -r to include them)"``, ...).
    notes : dict of str to list of str
        Facts about some inputs (EXIF orientation left as stored, first frame
        of an animation, ...): note -> the first few inputs' labels
        (``notes.total(note)``, when it is a :class:`~normcli.runs.dataset.Notes`,
        counts them all).
    pixels : list of str
        How image outputs were written (``"PNG pixels: input scale, 0..1 → 0..255"``).
    resumed : int
        With ``resume``: inputs done by an earlier run and not redone.
    """

    command: str
    description: str
    params: dict
    inputs: list[InputReport]
    output_kind: str = "none"
    output: str | None = None
    written: list[str] = field(default_factory=list)
    stats: BatchStats | None = None
    saved_stats: str | None = None
    hints: list[str] = field(default_factory=list)
    dataset: DatasetStats | None = None
    failures: list[Failure] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    pixels: list[str] = field(default_factory=list)
    resumed: int = 0
    given: int | None = None  # the inputs, when ``inputs`` does not list them (per channel)

    @property
    def count(self) -> int:
        """How many inputs the run was given (done, failed, or done before)."""
        if self.given is not None:
            return self.given
        return len(self.inputs) + len(self.failures) + self.resumed

    @property
    def failed_text(self) -> str | None:
        """``"3 of 1,000 inputs failed"``, or None."""
        if not self.failures:
            return None
        return f"{len(self.failures):,} of {self.count:,} inputs failed"

    @property
    def total(self) -> InputReport | None:
        """The summaries of all inputs together (merged; no histogram when their
        ranges differ), or None for a single input or without summaries."""
        if len(self.inputs) < 2 or any(r.before is None for r in self.inputs):
            return None
        afters = [r.after for r in self.inputs]
        after = merge(afters) if all(a is not None for a in afters) else None
        return InputReport("total", merge([r.before for r in self.inputs]), after)
