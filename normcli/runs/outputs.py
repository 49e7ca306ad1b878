"""A run's outputs: planned and checked before any work, staged, put in place together.

:class:`OutputPlan` decides every output path from ``output`` and the inputs,
and refuses what cannot work before a single input is read (existing files
without ``force``, outputs that are inputs, several inputs into one PNG).
:class:`ResultWriter` stages each result in a temporary file beside its target
as it comes; :meth:`ResultWriter.commit` puts them all in place (or writes
stdout) only when every input succeeded.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from normcli._gather import GatheredSet, Sliced
from normcli.errors import InputError, OutputError, ParameterError, UsageError
from normcli.files import (
    MAX_BYTES_ENV,
    OUTPUT_SUFFIXES,
    Source,
    StagedWrites,
    check_not_input,
    plan_outputs,
    resolve_max_bytes,
    same_file,
    stage_array,
    write_npy_stream,
)
from normcli.runs import signals
from normcli.runs.options import RunOptions

__all__ = ["OutputPlan", "ResultWriter", "stack_results", "STDOUT_LABEL"]

#: How the report names standard output among the files written.
STDOUT_LABEL = "<stdout>"


class OutputPlan:
    """Where results go, decided and checked before any input is processed.

    ``kind`` is ``"none"`` (no output), ``"stdout"`` (``"-"``), ``"file"`` (one
    ``.npy``/``.png``; several inputs are stacked into one ``.npy``), ``"npz"``
    (one member per input) or ``"dir"`` (one file per input, with the input's
    relative name, in :attr:`targets`).
    """

    def __init__(self, options: RunOptions, sources: Sequence[Source],
                 also_inputs: Sequence[Source] = (), *,
                 existing_ok: set[Path] | None = None) -> None:
        """``also_inputs``: the other files the run reads (parameter files, as
        :func:`parameter_source` makes them), which no output may replace;
        ``existing_ok``: outputs that may exist without ``force`` (an earlier run
        wrote them: :mod:`normcli.runs.resume`)."""
        self.options = options
        self.existing_ok = existing_ok or set()
        self.count = len(sources)
        self.inputs = [*sources, *also_inputs]
        self._reserved: list[tuple[str | os.PathLike[str], str]] = []
        self.targets: list[Path] = []
        self.path: Path | None = None
        out = options.output
        to_dir = out not in (None, "-") and (out.endswith(("/", os.sep)) or Path(out).is_dir())
        if options.out_format is not None and not to_dir:
            raise UsageError("--format is for -o DIR/; a file's suffix gives its type",
                             param="out_format", value=options.out_format)
        if out is None:
            self.kind = "none"
            return
        if out == "-":
            if self.stdout().isatty():
                raise UsageError("refusing to write .npy data to a terminal: redirect stdout "
                                 "(-o - | ...) or give -o FILE", param="output", value=out)
            self._check_stdout_is_no_input()
            self.kind = "stdout"
            return
        path = Path(out)
        if out.endswith(("/", os.sep)) and path.exists() and not path.is_dir():
            raise OutputError(path, "is not a directory")
        if to_dir:
            self.kind, self.path = "dir", path
            suffix = None if options.out_format is None else f".{options.out_format}"
            self.targets = Sliced(plan_outputs(sources, path, suffix,
                                               also_inputs=also_inputs))
            for target in self.targets:
                self._check_new(target)
            return
        suffix = path.suffix.lower()
        if suffix not in OUTPUT_SUFFIXES:
            problem = (f"{out!r} needs a suffix {', '.join(OUTPUT_SUFFIXES)}, or a trailing / "
                       "for a directory")
            raise ParameterError(f"output={problem}", param="output", value=out,
                                 problem=problem)
        if suffix in (".png", ".tif", ".tiff") and self.count > 1:
            kind = "PNG" if suffix == ".png" else "TIFF"
            problem = f"{self.count} inputs cannot share one {kind}; use -o DIR/ or a .npy/.npz"
            raise ParameterError(f"output={out!r}: {problem}", param="output", value=out,
                                 problem=problem)
        check_not_input(path, self.inputs)
        self._check_new(path)
        self.kind = "npz" if suffix == ".npz" else "file"
        self.path = path
        if self.kind == "npz":
            seen: dict[str, Source] = {}
            for s in sources:
                name = member_name(s)
                if name in seen:
                    raise OutputError(path, f"both {seen[name].label} and {s.label} would be "
                                      f"stored as member {name!r}; use -o DIR/")
                seen[name] = s

    def stdout(self):
        return self.options.stdout if self.options.stdout is not None else sys.stdout.buffer

    def _check_stdout_is_no_input(self) -> None:
        """Standard output opened on an input file (``-o - 1<>a.npy``) is refused
        as ``-o a.npy`` is: compared by device and inode."""
        try:
            st = os.fstat(self.stdout().fileno())
        except (AttributeError, OSError, ValueError):  # not a file descriptor (a test's buffer)
            return
        if not stat.S_ISREG(st.st_mode):
            return
        for source in self.inputs:
            try:
                other = os.stat(source.path) if source.path is not None else None
            except OSError:
                continue
            if other is not None and (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                raise OutputError(STDOUT_LABEL, f"is {source.label}, an input (refusing to "
                                  "overwrite it, even with --force)")

    def __getstate__(self) -> dict:  # (pickled for cluster workers: their targets only)
        return {**self.__dict__, "inputs": ()}  # (the inputs are checked on the client)

    def outputs(self) -> list[Path]:
        """Every file this plan writes."""
        return [*self.targets, *([self.path] if self.kind in ("file", "npz") else [])]

    def reserve(self, path: str | os.PathLike[str], param: str, *,
                replace: bool = False) -> None:
        """Check another file the run writes (``param``: ``"preview"``,
        ``"save_stats"``): not one of this plan's outputs (a usage error), not an
        input, not a directory, not existing without ``force`` (unless
        ``replace``: a file the run updates), in a folder that exists (errors
        naming the file)."""
        for target in self.outputs():
            if same_file(path, target):
                problem = f"{os.fspath(path)!r} is also an output of this command"
                raise ParameterError(f"{param}={problem}", param=param, value=path,
                                     problem=problem)
        for other, other_param in self._reserved:  # (--save-stats and --update-stats)
            if same_file(path, other):
                problem = f"{os.fspath(path)!r} is also the file of {other_param}"
                raise ParameterError(f"{param}={problem}", param=param, value=path,
                                     problem=problem)
        self._reserved.append((path, param))
        check_not_input(path, self.inputs)
        if os.path.isdir(path):
            raise OutputError(path, "is a directory")
        if not replace:
            self._check_new(Path(path))
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise OutputError(path, "directory does not exist")

    def _check_new(self, target: Path) -> None:
        if target in self.existing_ok:
            return
        if not self.options.force and (target.exists() or target.is_symlink()):
            raise OutputError(target, "exists (use --force to replace it)")

    def collects(self) -> bool:
        """Whether results are gathered and written together at the end."""
        return self.kind in ("stdout", "npz") or (self.kind == "file" and self.count > 1)

    def written(self) -> list[str]:
        """What a successful run put in place: its paths, or :data:`STDOUT_LABEL`."""
        if self.kind == "stdout":
            return [STDOUT_LABEL]
        return [os.fspath(p) for p in self.outputs()]

    def written_of(self, failures) -> list[str]:
        """:meth:`written`, less the outputs of the inputs that failed (``keep_going``)."""
        if self.kind != "dir" or not failures.found:
            return self.written()
        return [os.fspath(p) for i, p in enumerate(self.targets) if i not in failures]


class ResultWriter:
    """Stages each result as it comes; :meth:`commit` puts them all in place."""

    def __init__(self, plan: OutputPlan, staged: StagedWrites, *,
                 image_pixels: str | None = None) -> None:
        """``image_pixels``: the run's mapping of image inputs' results to pixels
        (``"input"`` for lrn, ``"centred"`` for batchnorm), unless
        ``options.pixels`` chooses one; arrays' results are stretched."""
        self.plan, self.staged = plan, staged
        self.collected: dict[int, tuple[Source, np.ndarray]] = {}  # by input index
        self._held = 0  # bytes of the results collected
        self._lock = threading.Lock()
        self.image_pixels = image_pixels
        # how the image outputs were mapped, described (sent back from cluster workers)
        self.mappings: set[str] = GatheredSet()
        if staged is not None:  # where cluster workers stage files (swept if lost)
            staged.watch({t.parent for t in plan.targets}
                         | ({plan.path.parent} if plan.kind == "file" else set()))

    def __getstate__(self) -> dict:  # (pickled for cluster workers: no lock)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add(self, i: int, source: Source, result: np.ndarray, decoded=None) -> None:
        """Stage (or keep, for outputs written together) the result of input ``i``;
        ``decoded``: the input as read, if an image (its alpha and scale).

        Safe to call from worker threads, in any order.
        """
        plan = self.plan
        if plan.kind == "none":
            return
        if plan.collects():
            with self._lock:
                self._held += result.nbytes
                held, self.collected[i] = self._held, (source, result)
            limit = resolve_max_bytes()
            if held > limit:  # stacked (or zipped) they are held, then copied once more
                target = plan.path if plan.path is not None else STDOUT_LABEL
                raise OutputError(target, f"the results written together need more than "
                                  f"{limit:,} bytes of memory (the limit; set {MAX_BYTES_ENV} "
                                  "to raise it): use -o DIR/ for one file per input")
        elif plan.kind == "dir":
            self.staged.makedirs(plan.targets[i].parent)
            self._stage(plan.targets[i], result, source, decoded)
        else:
            self._stage(plan.path, result, source, decoded)

    def image_out(self, path: Path, source: Source | None, decoded):
        """How a result is written as an image at ``path`` (None: not an image)."""
        from normcli.files.pixels import ImageOut, PixelMap

        suffix = path.suffix.lower()
        if suffix not in (".png", ".tif", ".tiff"):
            return None
        options = self.plan.options
        image = source is not None and source.is_image
        kind = options.pixels or (self.image_pixels if image else None) or "stretch"
        full = decoded.full if decoded is not None and decoded.full is not None else 1.0
        mapping = PixelMap(kind, full)
        out = ImageOut(mapping, None if decoded is None else decoded.alpha,
                       None if decoded is None else decoded.full,
                       last_is_alpha=(options.include_alpha and decoded is not None
                                      and decoded.mode.startswith(("LA", "RGBA", "PA"))))
        self.mappings.add("TIFF: the values, float32" if suffix != ".png"
                          else f"PNG pixels: {mapping.describe(options.png_bits)}")
        return out

    def _stage(self, path: Path, result, source: Source | None = None, decoded=None,
               staged: StagedWrites | None = None, force: bool = False) -> None:
        options = self.plan.options
        suffix = path.suffix.lower()
        if options.channels_last and suffix in (".png", ".tif", ".tiff") and result.ndim >= 3:
            result = np.moveaxis(result, -1, -3)  # images are written from (C, H, W)
        try:
            stage_array(self.staged if staged is None else staged, path, result,
                        force=options.force or force,
                        png_bits=options.png_bits, image=self.image_out(path, source, decoded))
        except ValueError as e:  # e.g. a 4-D result cannot be one PNG image
            raise OutputError(path, str(e)) from None

    def commit(self) -> None:
        """Write what was collected, then put every staged file in place."""
        plan = self.plan
        collected = [self.collected[i] for i in sorted(self.collected)]
        if collected and plan.kind == "npz":
            self._stage(plan.path, {member_name(s): r for s, r in collected})
        elif collected:
            stacked = stack_results(collected)
            if plan.kind == "file":
                self._stage(plan.path, stacked)
            else:
                self._put_in_place()
                try:
                    write_npy_stream(plan.stdout(), stacked)
                except BrokenPipeError:
                    raise  # (a reader that stopped reading: the command line ends quietly)
                except OSError as e:  # a full disk under a redirection: name the stream
                    raise OutputError(STDOUT_LABEL, (e.strerror or str(e)).strip()
                                      or type(e).__name__) from None
                return
        self._put_in_place()

    def _put_in_place(self) -> None:
        self.staged.sync()
        signals.check()  # an interrupt whose exception was swallowed somewhere
        with signals.deferred("every output was put in place first"):  # all, or none
            self.staged.commit()


def parameter_source(path: str | os.PathLike[str]) -> Source:
    """A file the run reads besides its inputs (``gamma``, ``stats``), as a
    :class:`Source`, for the checks that no output replaces it."""
    path = os.fspath(path)
    return Source(path, os.path.basename(path), Path(path), "parameter")


def member_name(source: Source) -> str:
    """The ``.npz`` member an input's result is stored as: its relative name, no suffix."""
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
