"""The loop the commands share: inputs in, checked; results out, all or nothing.

1. :func:`open_sources` expands the arguments (directories, ``.npz`` members,
   ``-``) and :class:`OutputPlan` decides and checks every output path before
   any work is done (existing files without ``--force``, outputs that are
   inputs, several inputs into one PNG).
2. Each input is loaded and checked (:func:`load_checked`), normalized, and
   its result staged in a temporary file next to its target.
3. Only when every input succeeded are the staged files renamed into place
   (and stdout written); any error or interrupt removes them all.
4. :func:`report` prints the before/after table on stderr, or JSON on stdout.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from normcli.cli.options import IOOptions
from normcli.cli.signals import terminated
from normcli.errors import InputError, OutputError
from normcli.files import (
    OUTPUT_SUFFIXES,
    Source,
    StagedWrites,
    check_not_input,
    count_nonfinite,
    expand_inputs,
    npz_members,
    plan_outputs,
    read_npy,
    read_npz_member,
    same_file,
    stage_array,
    write_npy_stream,
)
from normcli.ops._blas import single_threaded_blas
from normcli.ops._blocks import default_threads
from normcli.ops.arrays import compute_dtype
from normcli.ops.batchnorm import BatchNormalizer, batch_norm
from normcli.ops.moments import (
    BatchStats,
    RunningStats,
    batch_stats,
    overflow_message,
    stats_shape,
)
from normcli.ops.summary import Summary, merge, summarize
from normcli.render.progress import progress

Row = tuple[str, Summary, "Summary | None"]
#: Called with each input and its result (for previews); see ``process_each``.
Observer = Callable[[Source, np.ndarray, np.ndarray], None]


def open_sources(io: IOOptions) -> list[Source]:
    """The inputs named on the command line, expanded; nothing is read yet, but for
    standard input, which is read now in the main thread (it can be read only once,
    and Ctrl-C must reach a read that waits for it)."""
    sources = expand_inputs(list(io.inputs), stdin=sys.stdin.buffer)
    return [s.loaded(raw_png=io.raw_png) for s in sources]


#: Below this mean size of .npy inputs, one job is faster than several: the
#: per-file Python work, serialized by the GIL, outweighs the numpy work that
#: runs in parallel (measured on 2 cores, 400 files: at 256 KiB one job was
#: 10% faster for lrn and batchnorm, at 512 KiB two jobs were 10-25% faster).
SMALL_INPUT_BYTES = 384 << 10


def with_jobs(io: IOOptions, sources: Sequence[Source]) -> IOOptions:
    """``io`` with ``--jobs`` decided: as given, else one job for many small
    ``.npy`` inputs (judged from up to 64 of them), else the default (cores)."""
    if io.jobs is not None or len(sources) < 2:
        return io
    sample = [s for s in sources[:64] if s.kind == "npy"]
    if len(sample) < min(len(sources), 64):
        return io  # PNG, .npz members, stdin: their size on disk says little
    try:
        mean = sum(os.stat(s.path).st_size for s in sample) / len(sample)
    except OSError:
        return io  # (the read will name the file)
    return dataclasses.replace(io, jobs=1) if mean < SMALL_INPUT_BYTES else io


def stderr_console(io: IOOptions):
    """The console for progress bars, or None when nothing is drawn on stderr
    (``-q``, ``--json``): then rich is not even imported."""
    if io.quiet or io.as_json:
        return None
    from normcli.render.console import make_consoles

    return make_consoles()[0]


def load_checked(source: Source, io: IOOptions, *, mmap: bool = False) -> np.ndarray:
    """Load one input and refuse NaN/Inf unless ``--allow-nonfinite``."""
    arr = source.load(raw_png=io.raw_png, mmap=mmap)
    if io.channels_last and source.kind == "png":
        arr = np.moveaxis(arr, 0, -1)  # images are read (C, H, W); asked for (H, W, C)
    check_finite(source, io, arr)
    return arr


def read_unchecked(source: Source, io: IOOptions, out: np.ndarray | None):
    """``(array, state)`` of one input, read into ``out`` where it fits (see
    :meth:`Source.read`), not checked for NaN/Inf: the caller does that."""
    arr, state = source.read(raw_png=io.raw_png, mmap=True, out=out)
    if io.channels_last and source.kind == "png":
        arr = np.moveaxis(arr, 0, -1)
    return arr, state


def check_finite(source: Source, io: IOOptions, arr: np.ndarray) -> None:
    """Refuse an input holding NaN or Inf, unless ``--allow-nonfinite``."""
    if io.allow_nonfinite:
        return
    bad = count_nonfinite(arr)
    if bad:
        raise InputError(
            source.label,
            f"holds {bad:,} NaN/Inf value{'s' if bad > 1 else ''} "
            "(pass --allow-nonfinite to process it anyway)",
        )


def library_error(source: Source | str, error: ValueError) -> InputError:
    """A library ``ValueError`` about one input's data, as a one-line file error."""
    label = source.label if isinstance(source, Source) else source
    return InputError(label, str(error))


class OutputPlan:
    """Where results go, decided and checked before any input is processed.

    ``kind`` is ``"none"`` (no ``-o``), ``"stdout"`` (``-o -``), ``"file"``
    (one ``.npy``/``.png``; several inputs are stacked into one ``.npy``),
    ``"npz"`` (one member per input) or ``"dir"`` (one file per input, with
    the input's relative name).
    """

    def __init__(self, io: IOOptions, sources: Sequence[Source]) -> None:
        self.io = io
        self.count = len(sources)
        self.targets: list[Path] = []
        self.path: Path | None = None
        out = io.output
        to_dir = out not in (None, "-") and (out.endswith(("/", os.sep)) or Path(out).is_dir())
        if io.out_format is not None and not to_dir:
            raise click.UsageError("--format is for -o DIR/; a file's suffix gives its type")
        if out is None:
            self.kind = "none"
            return
        if out == "-":
            if io.as_json:
                raise click.UsageError("--json and -o - both write to stdout; choose one")
            if sys.stdout.isatty():
                raise click.UsageError(
                    "refusing to write .npy data to a terminal: redirect stdout "
                    "(-o - | ...) or give -o FILE"
                )
            self.kind = "stdout"
            return
        path = Path(out)
        if out.endswith(("/", os.sep)) and path.exists() and not path.is_dir():
            raise OutputError(path, "is not a directory")
        if out.endswith(("/", os.sep)) or path.is_dir():
            self.kind = "dir"
            self.path = path
            suffix = None if io.out_format is None else f".{io.out_format}"
            self.targets = plan_outputs(sources, path, suffix)
            for target in self.targets:
                self._check_new(target)
            return
        suffix = path.suffix.lower()
        if suffix not in OUTPUT_SUFFIXES:
            raise click.BadParameter(
                f"{out!r} needs a suffix {', '.join(OUTPUT_SUFFIXES)}, or a trailing / "
                "for a directory",
                param_hint="'-o'",
            )
        if suffix == ".png" and self.count > 1:
            raise click.BadParameter(
                f"{self.count} inputs cannot share one PNG; use -o DIR/ or a .npy/.npz",
                param_hint="'-o'",
            )
        check_not_input(path, sources)
        self._check_new(path)
        self.kind = "npz" if suffix == ".npz" else "file"
        self.path = path
        if self.kind == "npz":
            seen: dict[str, Source] = {}
            for s in sources:
                name = _member_name(s)
                if name in seen:
                    raise OutputError(path, f"both {seen[name].label} and {s.label} would be "
                                      f"stored as member {name!r}; use -o DIR/")
                seen[name] = s

    def reserve(self, preview) -> None:
        """Refuse a ``--preview`` path that is one of this plan's outputs."""
        if preview is None:
            return
        for target in [*self.targets, *([self.path] if self.path else [])]:
            if same_file(preview.path, target):
                raise click.BadParameter(f"{preview.path!r} is also an output of this command",
                                         param_hint="'--preview'")

    def _check_new(self, target: Path) -> None:
        if not self.io.force and (target.exists() or target.is_symlink()):
            raise OutputError(target, "exists (use --force to replace it)")

    def collects(self) -> bool:
        """Whether results are gathered and written together at the end."""
        return self.kind in ("stdout", "npz") or (self.kind == "file" and self.count > 1)

    def describe(self) -> str:
        """The table's caption: what was (or was not) written."""
        if self.kind == "none":
            return "nothing written: add -o FILE, -o DIR/ or -o - to save the results"
        if self.kind == "stdout":
            return "wrote .npy to stdout"
        if self.kind == "dir":
            count = len(self.targets)
            return f"wrote {count} file{'s' if count != 1 else ''} to {self.path}"
        return f"wrote {self.path}"


class ResultWriter:
    """Stages each result as it comes; :meth:`commit` puts them all in place."""

    def __init__(self, plan: OutputPlan, staged: StagedWrites) -> None:
        self.plan, self.staged = plan, staged
        self.collected: dict[int, tuple[Source, np.ndarray]] = {}  # by input index

    def add(self, i: int, source: Source, result: np.ndarray) -> None:
        """Stage (or keep, for outputs written together) the result of input ``i``.

        Safe to call from worker threads, in any order.
        """
        plan = self.plan
        if plan.kind == "none":
            return
        if plan.collects():
            self.collected[i] = (source, result)
        elif plan.kind == "dir":
            self.staged.makedirs(plan.targets[i].parent)
            self._stage(plan.targets[i], result)
        else:
            self._stage(plan.path, result)

    def _stage(self, path: Path, result) -> None:
        if self.plan.io.channels_last and path.suffix.lower() == ".png" and result.ndim >= 3:
            result = np.moveaxis(result, -1, -3)  # PNG output is written from (C, H, W)
        try:
            stage_array(self.staged, path, result, force=self.plan.io.force,
                        png_bits=self.plan.io.png_bits)
        except ValueError as e:  # e.g. a 4-D result cannot be one PNG image
            raise OutputError(path, str(e)) from None

    def commit(self) -> None:
        plan = self.plan
        collected = [self.collected[i] for i in sorted(self.collected)]
        if collected and plan.kind == "npz":
            members = {_member_name(s): r for s, r in collected}
            self._stage(plan.path, members)
        elif collected:
            stacked = stack_results(collected)
            if plan.kind == "file":
                self._stage(plan.path, stacked)
            else:
                self._put_in_place()
                write_npy_stream(sys.stdout.buffer, stacked)
                return
        self._put_in_place()

    def _put_in_place(self) -> None:
        self.staged.sync()
        if terminated.is_set():  # a SIGTERM whose exception was swallowed somewhere
            raise SystemExit(143)
        self.staged.commit()


def _member_name(source: Source) -> str:
    name = source.relname
    return name[: -len(Path(name).suffix)] if Path(name).suffix else name


def stack_results(results: Sequence[tuple[Source, np.ndarray]]) -> np.ndarray:
    """One result as is; several stacked along a new first axis (same shapes)."""
    if len(results) == 1:
        return results[0][1]
    first_source, first = results[0]
    for source, r in results[1:]:
        if r.shape != first.shape:
            raise InputError(
                source.label,
                f"has shape {r.shape} but {first_source.label} has {first.shape}; "
                "results stacked into one array need one shape",
            )
    return np.stack([r for _, r in results])


def map_inputs(io: IOOptions, fn: Callable[[int], object], count: int) -> list:
    """``[fn(0), ..., fn(count - 1)]``, on ``--jobs`` worker threads when that helps.

    Each call handles one input from reading to staging its output, so inputs
    overlap their I/O and computation; the results come back in input order.
    The kernels inside then run on one thread each, so the outputs do not
    depend on the number of jobs.
    """
    with InputPool(io, count) as pool:
        return pool.map(fn, count)


class InputPool:
    """The ``--jobs`` worker threads of one command, for work on its inputs.

    :meth:`start` queues calls and returns at once, so that the next group of
    inputs can be read while the current one is computed on.  Leaving the
    ``with`` block by an error or Ctrl-C drops the queued calls and does not
    wait for the running ones (their outputs are refused once the run is
    discarded).  BLAS stays on one thread while the pool exists.
    """

    def __init__(self, io: IOOptions, count: int) -> None:
        self.jobs = min(io.jobs or default_threads(), count)
        self._pool = None
        self._blas = single_threaded_blas()

    def __enter__(self) -> InputPool:
        if self.jobs > 1:
            self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                            thread_name_prefix="normcli-file")
            self._blas.__enter__()
        return self

    def __exit__(self, kind, value, tb) -> None:
        if self._pool is None:
            return
        self._blas.__exit__(kind, value, tb)
        self._pool.shutdown(wait=False, cancel_futures=kind is not None)

    def map(self, fn: Callable[[int], object], count: int) -> list:
        """``[fn(0), ..., fn(count - 1)]``, the calling thread working alongside
        the pool's (it would only wait otherwise: a wake-up per result).

        Each thread takes the next index until none is left or a call fails.
        Ctrl-C (or SIGTERM's SystemExit) in the calling thread is raised at
        once, and the others take no more inputs.  Otherwise, once every
        thread has finished its current call, the failure of the lowest
        index is raised, whatever the number of threads.
        """
        if self._pool is None:
            return [fn(i) for i in range(count)]
        results: list = [None] * count
        indices = iter(range(count))
        take = threading.Lock()
        failed: list[tuple[int, BaseException]] = []

        def work(caller: bool = False) -> None:
            while not failed:
                with take:
                    i = next(indices, None)
                if i is None:
                    return
                try:
                    results[i] = fn(i)
                except BaseException as e:  # noqa: BLE001 (raised by the caller)
                    failed.append((i, e))
                    if caller and not isinstance(e, Exception):
                        raise  # an interrupt: now, not after the other threads
                    return

        helpers = [self._pool.submit(work) for _ in range(self.jobs - 1)]
        try:
            work(caller=True)
            for helper in helpers:
                helper.result()
        except BaseException as e:
            failed.append((-1, e))  # (stops the helpers taking more)
            raise
        if failed:
            raise min(failed, key=lambda f: f[0])[1]
        return results

    def start(self, fn: Callable[[int], object], count: int) -> Callable[[], list]:
        """Start ``fn(0)`` ... ``fn(count - 1)``; return a function that waits for
        their results, in order (with one job, the calls run in that function)."""
        if self._pool is None:
            return lambda: [fn(i) for i in range(count)]
        futures = [self._pool.submit(fn, i) for i in range(count)]

        def results() -> list:
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

        return results


def kernel_threads(io: IOOptions, count: int) -> int | None:
    """Threads for one kernel call: all of them for one input, one each for many."""
    return io.jobs if count == 1 else 1


def process_each(
    io: IOOptions,
    transform: Callable[[np.ndarray, int | None], np.ndarray] | None,
    *,
    title: str,
    params: dict,
    description: str,
    preview=None,
) -> None:
    """Run ``transform(x, threads)`` on every input independently; write and report.

    ``transform`` ``None`` only summarizes the inputs (the ``stats`` command).
    ``preview`` (a :class:`~normcli.render.preview.PreviewRecorder`) sees every
    input and result, and its image is staged with the outputs.  Statistics are
    only computed when they are shown (not with ``-q``).
    """
    sources = open_sources(io)
    io = with_jobs(io, sources)
    plan = OutputPlan(io, sources) if transform is not None else None
    if plan is not None:
        plan.reserve(preview)
    observe = preview.observe if preview is not None else None
    err = stderr_console(io)
    shown = not io.quiet or io.as_json
    threads = kernel_threads(io, len(sources))
    with StagedWrites(sync=io.sync) as staged, progress(err, len(sources), description) as bar:
        writer = ResultWriter(plan, staged) if plan is not None else None

        def one(i: int) -> Row:
            source = sources[i]
            x = load_checked(source, io)
            after = None
            if transform is not None:
                try:
                    y = transform(x, threads)
                except ValueError as e:
                    raise library_error(source, e) from None
                writer.add(i, source, y)
                if observe is not None:
                    observe(source, x, y)
                after = summarize(y, histogram=drawn(io, i)) if shown else None
            row = (source.label, summarize(x, histogram=drawn(io, i)) if shown else None, after)
            bar.advance(nbytes=x.nbytes)
            return row

        rows = map_inputs(io, one, len(sources))
        if preview is not None:
            preview.stage(staged)
        if writer is not None:
            writer.commit()
    if shown:
        report(io, rows, title=title, params=params,
               total=_totals(rows) if len(rows) > 1 else None,
               caption=plan.describe() if plan is not None else None)


def _totals(rows: Sequence[Row]) -> tuple[Summary, Summary | None]:
    before = merge([r[1] for r in rows])
    afters = [r[2] for r in rows]
    after = merge(afters) if all(a is not None for a in afters) else None
    return before, after


#: Inputs drawn in the table; the caption counts the others (--json lists them all).
TABLE_INPUTS = 20


def drawn(io: IOOptions, i: int) -> bool:
    """Whether input ``i``'s histogram will be seen: in the table, or in JSON.
    (The others' summaries skip it: two thirds of a summary's work.)"""
    return io.as_json or i < TABLE_INPUTS


def report(
    io: IOOptions,
    rows: Sequence[Row],
    *,
    title: str,
    params: dict,
    total: tuple[Summary, Summary | None] | None = None,
    caption: str | None = None,
) -> None:
    """The statistics: a table on stderr, or JSON on stdout with ``--json``."""
    from normcli.render import make_consoles, stats_json, stats_table

    if io.as_json:
        click.echo(stats_json(rows, params=params, normalization=title, total=total))
        return
    err, _ = make_consoles(quiet=io.quiet)
    show_after = any(r[2] is not None for r in rows)
    err.print(stats_table(rows, title=title, caption=caption, show_after=show_after,
                          total=total, max_inputs=TABLE_INPUTS))


def _parameter(value: float | str) -> float | np.ndarray:
    """``--gamma``/``--beta``: a number, or an array read from a .npy file."""
    if isinstance(value, float):
        return value
    return read_npy(value, source=value)


def read_stats_file(path: str) -> BatchStats:
    """Saved statistics (``--stats``), checked like any input."""
    wanted = ("mean", "var", "var_unbiased", "count", "per")
    data = {
        name: read_npz_member(path, name, source=f"{path}:{name}", metadata=True)
        for name in npz_members(path)
        if name in wanted
    }
    try:
        return BatchStats.from_mapping(data)
    except ValueError as e:
        raise InputError(path, f"not usable statistics: {e}") from None


@dataclass
class _Batch:
    """One batchnorm run's settings, shared by the in-memory and streamed routes."""

    io: IOOptions
    per: str
    eps: float
    gamma: float | np.ndarray
    beta: float | np.ndarray
    stats: BatchStats | None  # saved statistics (--stats), or None
    stats_file: str | None
    shown: bool  # whether statistics are shown (not -q)
    err: object  # the stderr console, for progress bars
    observe: Observer | None

    def check_stats_shape(self, source: Source, shape: tuple[int, ...]) -> None:
        want = stats_shape(shape, self.per, self.io.channels_last)
        if self.stats.mean.shape != want:
            raise InputError(source.label, f"needs statistics of shape {want} per {self.per}, "
                             f"but {self.stats_file} holds shape {self.stats.mean.shape}")

    def summary(self, x: np.ndarray, i: int = 0) -> Summary | None:
        return summarize(x, histogram=drawn(self.io, i)) if self.shown else None


def process_batch(
    io: IOOptions,
    *,
    per: str,
    per_given: bool,
    eps: float,
    gamma: float | str,
    beta: float | str,
    save_stats: str | None,
    stats_file: str | None,
    preview=None,
) -> None:
    """Batch-normalize the inputs as one batch; write, save statistics, report.

    A single input is its own batch (its first axis), normalized in memory.
    Several inputs are the samples of one batch and are streamed: pass 1
    merges the samples' moments, pass 2 normalizes each sample with the merged
    statistics, so that memory holds a group of samples, not the batch.
    """
    sources = open_sources(io)
    io = with_jobs(io, sources)
    plan = OutputPlan(io, sources)
    plan.reserve(preview)
    if save_stats is not None:
        check_not_input(save_stats, sources)
        if plan.path is not None and same_file(save_stats, plan.path):
            raise click.UsageError(f"--save-stats {save_stats} is also the -o output")
        if not io.force and Path(save_stats).exists():
            raise OutputError(save_stats, "exists (use --force to replace it)")
    stats = read_stats_file(stats_file) if stats_file else None
    if stats is not None:
        if per_given and per != stats.per:
            raise InputError(stats_file, f"holds statistics per {stats.per}, but --per {per} "
                             "was given")
        per = stats.per
    err = stderr_console(io)
    job = _Batch(io, per, eps, _parameter(gamma), _parameter(beta), stats, stats_file,
                 shown=not io.quiet or io.as_json, err=err,
                 observe=preview.observe if preview is not None else None)
    with StagedWrites(sync=io.sync) as staged:
        writer = ResultWriter(plan, staged)
        if len(sources) == 1:
            rows, stats = _batch_in_memory(job, sources[0], writer, save_stats is not None)
        else:
            rows, stats = _batch_streamed(job, sources, writer, (gamma, beta))
        if save_stats is not None:
            stage_array(staged, save_stats, stats.to_dict(), force=io.force)
        if preview is not None:
            preview.stage(staged)
        writer.commit()
    if job.shown:
        fit = "saved statistics " + stats_file if stats_file else "batch statistics"
        title = (f"batch norm per {per} ({fit}): eps={eps:g}, gamma={_text(gamma)}, "
                 f"beta={_text(beta)}")
        params = {"normalization": "batchnorm", "per": per, "eps": eps, "gamma": _text(gamma),
                  "beta": _text(beta), "stats": stats_file, "channels_last": io.channels_last}
        caption = plan.describe() + (f"; statistics saved to {save_stats}" if save_stats else "")
        report(io, rows, title=title, params=params,
               total=_totals(rows) if len(rows) > 1 else None, caption=caption)


def _batch_in_memory(job: _Batch, source: Source, writer: ResultWriter, need_stats: bool):
    """One input whose first axis is the batch: ``(rows, statistics)``."""
    x = load_checked(source, job.io)
    stats = job.stats
    if stats is not None:
        job.check_stats_shape(source, x.shape)
    try:
        y = batch_norm(x, per=job.per, eps=job.eps, gamma=job.gamma, beta=job.beta,
                       mean=None if stats is None else stats.mean,
                       var=None if stats is None else stats.var,
                       channels_last=job.io.channels_last, threads=job.io.jobs)
        if stats is None and need_stats:
            stats = batch_stats(x, per=job.per, channels_last=job.io.channels_last,
                                threads=job.io.jobs)
    except ValueError as e:
        raise library_error(source, e) from None
    writer.add(0, source, y)
    if job.observe is not None:
        job.observe(source, x, y)
    return [(source.label, job.summary(x), job.summary(y))], stats


def _batch_streamed(job: _Batch, sources: Sequence[Source], writer: ResultWriter, given):
    """Several inputs, the samples of one batch: ``(rows, statistics)``.

    ``given`` are the --gamma and --beta arguments, to name a bad file.
    """
    io = job.io
    if job.stats is None:
        stats, pass1 = _stream_stats(io, sources, job.per, job.shown, job.err)
    else:
        stats, pass1 = job.stats, None
    try:  # one normalizer: scale and shift computed once for every file
        normalizer = BatchNormalizer(stats.mean, stats.var, per=job.per, eps=job.eps,
                                     gamma=job.gamma, beta=job.beta,
                                     channels_last=io.channels_last,
                                     finite_stats=pass1 is None or not io.allow_nonfinite)
    except ValueError as e:
        files = [g for g in given if isinstance(g, str)]
        raise library_error(files[0] if files else sources[0], e) from None
    # Each worker thread reads into, and normalizes into, buffers of its own,
    # unless the arrays must outlive the call (stacked outputs, previews).
    buffers = _ThreadBuffers() if job.observe is None and not writer.plan.collects() else None

    def one(i: int) -> Row:
        source, xbuf = sources[i], None
        if pass1 is None:  # saved statistics: each sample must fit them
            x = load_checked(source, io, mmap=True)
            job.check_stats_shape(source, (1, *as_sample(x, io.channels_last).shape))
            before = job.summary(x, i)
        else:  # read, checked for NaN/Inf and counted in pass 1: unless it changed since
            if buffers is not None:
                xbuf = buffers.get("x", pass1.sample_shape, pass1.dtype)
            x, state = read_unchecked(source, io, xbuf)
            pass1.check_unchanged(i, source, x, state)
            before = pass1.befores[i]
        sample, ct = as_sample(x, io.channels_last), compute_dtype(x.dtype)
        out = None
        if xbuf is not None and x.dtype == ct and np.may_share_memory(x, xbuf):
            out = sample[None]  # in place: the buffer is ours (and half the cache)
        elif buffers is not None:
            out = buffers.get("y", (1, *sample.shape), ct)
        try:
            y = normalizer(sample[None], threads=1, out=out)[0].reshape(x.shape)
        except ValueError as e:
            raise library_error(source, e) from None
        writer.add(i, source, y)
        if job.observe is not None:
            job.observe(source, x, y)
        bar.advance(nbytes=x.nbytes)
        return source.label, before, job.summary(y, i)

    with progress(job.err, len(sources), "normalizing") as bar:
        return map_inputs(io, one, len(sources)), stats


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


#: Samples are gathered into groups of about this many bytes for the statistics pass.
GROUP_BYTES = 8 << 20


def _stream_stats(io: IOOptions, sources: Sequence[Source], per: str, shown: bool, err):
    """Pass 1 over many inputs: their merged batch statistics, and a :class:`_Pass1`.

    Samples are read (on ``--jobs`` threads) straight into a buffer holding a
    group of about :data:`GROUP_BYTES`; each group's float64 moments are
    merged in order into a :class:`~normcli.ops.batchnorm.RunningStats`, so the
    result does not depend on the number of jobs and memory stays bounded.
    The group's NaN/Inf check rides on its moments: they are finite if and
    only if its values are (files are scanned one by one only to name one).
    """
    running = RunningStats(per=per, channels_last=io.channels_last, threads=io.jobs)
    first = read_unchecked(sources[0], io, None)[0]
    sample_shape = as_sample(first, io.channels_last).shape
    info = _Pass1(first.shape, sample_shape, first.dtype, sources[0], [None] * len(sources),
                  [None] * len(sources))
    size = max(1, GROUP_BYTES // max(1, first.nbytes))
    # two buffers: the next group is read into one while the other is reduced
    buffers = [np.empty((min(size, len(sources)), *sample_shape), first.dtype)
               for _ in range(2 if len(sources) > size else 1)]
    del first
    groups = [range(start, min(start + size, len(sources)))
              for start in range(0, len(sources), size)]

    def reader(group: range, buffer: np.ndarray) -> Callable[[int], np.ndarray | None]:
        def read(i: int) -> np.ndarray | None:
            """Input ``group[i]`` into ``buffer[i]``; a sample of another dtype is
            returned as it is (memory-mapped) and promotes the group."""
            source = sources[group[i]]
            x, info.states[group[i]] = read_unchecked(source, io, buffer[i])
            if x.shape != info.shape:  # the file's own problem first, if it has one
                check_finite(source, io, x)
                _same_shape(source, x, info.shape, info.first)
            if shown:
                info.befores[group[i]] = summarize(x, histogram=drawn(io, group[i]))
            bar.advance(nbytes=x.nbytes)
            if np.may_share_memory(x, buffer):
                return None
            if x.dtype == buffer.dtype:
                buffer[i] = as_sample(x, io.channels_last)
                return None
            return x

        return read

    with progress(err, len(sources), "batch statistics") as bar, \
            InputPool(io, len(sources)) as pool:
        def read_group(g: int):
            return pool.start(reader(groups[g], buffers[g % len(buffers)]), len(groups[g]))

        pending = read_group(0)
        for g, group in enumerate(groups):
            buffer, loaded = buffers[g % len(buffers)], pending()
            ahead = g + 1 < len(groups) and len(buffers) > 1
            if ahead:
                pending = read_group(g + 1)
            if all(x is None for x in loaded):
                batch = buffer[:len(group)]
            else:
                batch = np.stack([buffer[i] if x is None else as_sample(x, io.channels_last)
                                  for i, x in enumerate(loaded)])
            try:
                running.add(batch)
            except ValueError as e:
                raise library_error(sources[group[0]], e) from None
            if not running.finite():  # NaN or Inf in this group (or float64 overflow)
                for i, sample in zip(group, batch, strict=True):
                    check_finite(sources[i], io, sample)
            del loaded, batch
            if not ahead and g + 1 < len(groups):
                pending = read_group(g + 1)
    stats = running.stats()
    if not np.isfinite(stats.var).all():
        _refuse_overflow(io, sources)
    if per == "activation" and stats.count < 2:
        raise InputError(sources[0].label, "a batch of one sample has no variance "
                         "per activation; give more inputs or --stats")
    return stats, info


def _refuse_overflow(io: IOOptions, sources: Sequence[Source]) -> None:
    """Statistics that are not finite come from NaN/Inf in the data (allowed with
    --allow-nonfinite: they propagate, as in memory) or from finite values too
    large for float64 sums of squares: then name the file holding the largest."""
    largest, where = -1.0, sources[0]
    for source in sources:  # (a rare path: read again, memory-mapped)
        x = read_unchecked(source, io, None)[0]
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


def _text(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
