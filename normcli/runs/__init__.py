"""The work over files, as a library: what each ``normcli`` command does.

Each entry point takes the inputs (files, directories, ``.npz`` files, ``"-"``)
and keyword-only settings, checks every setting and output before reading a
single input, does the work on an engine (worker threads today), writes all
outputs or none, and returns a :class:`Report`::

    from normcli import runs
    report = runs.lrn(["features/"], output="out/", mode="inter", convention="pytorch", n=5)
    report = runs.batchnorm(["features/"], output="normed/", per="channel",
                            save_stats="s.npz")
    report = runs.stats(["features/"])
    report.inputs    # [InputReport(label, before, after)], in input order
    report.total     # the summaries of all inputs together (None for one input)
    report.written   # the paths put in place
    report.stats     # batchnorm: the statistics it normalized with

The shared settings are the fields of :class:`RunOptions` (``force``,
``jobs``, ``channels_last``, ...), passed as keywords.  ``progress`` is a
callback ``progress(stage, done, total, nbytes)``; ``preview`` records inputs
and results for a picture (:class:`normcli.render.preview.PreviewRecorder`).

Errors: a bad setting raises :class:`~normcli.errors.UsageError` (a
``ValueError``; :class:`~normcli.errors.ParameterError` names ``.param``)
before anything is read; a bad input or a failed write raises
:class:`~normcli.errors.InputError` / :class:`~normcli.errors.OutputError`
naming the file, and nothing is written.  Ctrl-C (``KeyboardInterrupt``) and
SIGTERM, SIGHUP or SIGQUIT (``SystemExit``) remove every temporary file and
leave existing outputs untouched.  This package imports neither click nor rich.
"""

from __future__ import annotations

from normcli._lazy import lazy_attributes

__all__ = [
    "lrn",
    "batchnorm",
    "stats",
    "Report",
    "InputReport",
    "RunOptions",
    "Progress",
    "Engine",
    "ThreadEngine",
    "load_stack",
]

__getattr__ = lazy_attributes(__name__, globals(), {
    "lrn": "normcli.runs.each",
    "stats": "normcli.runs.each",
    "batchnorm": "normcli.runs.batch",
    "Report": "normcli.runs.report",
    "InputReport": "normcli.runs.report",
    "RunOptions": "normcli.runs.options",
    "Progress": "normcli.runs.options",
    "Engine": "normcli.runs.engine",
    "ThreadEngine": "normcli.runs.engine",
    "load_stack": "normcli.runs.inputs",
})


def __dir__() -> list[str]:
    return sorted(__all__)
