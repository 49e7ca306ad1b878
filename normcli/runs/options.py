"""The settings every run shares: how inputs are read and where results go."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from normcli.checks import check_flag
from normcli.errors import ParameterError, UsageError

__all__ = ["RunOptions", "Progress", "OUT_FORMATS", "COLORS", "PIXEL_MAPS"]

#: ``progress(stage, done, total, nbytes)``: called as each input of a stage is done
#: (``done`` of ``total``; ``nbytes`` read so far in the stage), once with ``done=0``
#: when the stage starts.  Stages: ``"lrn"``, ``"stats"``, ``"batch statistics"``,
#: ``"normalizing"``.  Calls come from worker threads, one at a time.
Progress = Callable[[str, int, int, int], None]

#: The types ``dtype`` may choose (normcli.ops.arrays.OUTPUT_DTYPES: numpy is not imported here).
OUTPUT_DTYPES = ("float16", "float32", "float64")
#: File types ``out_format`` may choose for an output directory.
OUT_FORMATS = ("npy", "png", "tif")
#: ``color`` choices: convert every image to RGB or to gray first.
COLORS = ("rgb", "gray")
#: ``pixels`` choices: how image outputs map results to pixels (normcli.files.pixels).
PIXEL_MAPS = ("input", "centred", "stretch")


def checked_path(value: object, name: str) -> str:
    """``value`` as a path string, or a :class:`ParameterError` naming ``name``."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise ParameterError(f"{name}={value!r} must be a path (str or os.PathLike)",
                             param=name, value=value)
    return os.fspath(value)


#: The settings that are True or False.
_FLAGS = ("force", "sync", "channels_last", "allow_nonfinite", "raw_png", "include_alpha",
          "recursive", "null", "keep_going", "resume", "summaries")


@dataclass(frozen=True)
class RunOptions:
    """How a run reads its inputs and writes its outputs.

    Attributes
    ----------
    output : str or path-like, optional
        ``FILE.npy``, ``FILE.npz``, ``FILE.png``, a directory (an existing one,
        or a name ending in ``/``: one output per input, with the input's
        relative name), ``"-"`` (``.npy`` on ``stdout``), or None: nothing is
        written.
    force : bool
        Replace existing outputs (an output that is also an input is refused even so).
    out_format : {"npy", "png", "tif"}, optional
        File type of an output directory's files (default: each input's own;
        JPEG, WebP, BMP and GIF inputs give PNG).
    png_bits : {8, 16}
        Bit depth of PNG outputs.
    sync : bool
        fsync outputs before they replace anything (False: still never
        half-written, but a power cut soon after may lose them).
    channels_last : bool
        Arrays are ``(..., H, W, C)``; images are then read and written as ``(H, W, C)``.
    channel_axis : int, optional
        The axis of the channels in each input array (negative counts from the
        end; a single input's batch axis is not one), for layouts that are
        neither channels first nor channels last (Keras's and MXNet's
        ``axis``): the kernels see the array with that axis moved last, and
        outputs keep the input's layout (:mod:`normcli.runs.layout`).
        Excludes ``channels_last``; images are refused (their channels are known).
    allow_nonfinite : bool
        Process inputs holding NaN or Inf instead of refusing them.
    raw_png : bool
        Read PNG pixels as stored integers instead of floats in [0, 1].
    dtype : {"float16", "float32", "float64"}, optional
        The type the results are written in (default: floating input keeps
        its type, bool and 8/16-bit integers give float32, wider integers
        float64; :func:`normcli.ops.arrays.output_dtype`).  The computing type
        stays: float16/float32 compute in float32, everything else in float64.
    color : {"rgb", "gray"}, optional
        Convert every image to RGB or to gray first (see
        :mod:`normcli.files.images`).
    include_alpha : bool
        Read an image's alpha as an ordinary (last) channel; by default alpha
        is left out of statistics and normalization, and image outputs get
        the input's alpha back as it was.
    pixels : {"input", "centred", "stretch"}, optional
        How image outputs map results to pixels (:mod:`normcli.files.pixels`);
        default: ``input`` for lrn, ``centred`` for batchnorm, for image
        inputs; ``stretch`` for arrays.
    recursive : bool
        Walk the subfolders of directory inputs (outputs mirror the tree).
    files_from : str or path-like, optional
        A file listing input paths, one per line (``"-"``: standard input).
    null : bool
        ``files_from`` separates paths by NUL characters (``find -print0``).
    keep_going : bool
        A bad input is reported and skipped (in ``Report.failures``); every
        good one is processed and written.  Without it a run is all or nothing.
    resume : bool
        Per-input runs into ``-o DIR/`` (``lrn``, ``batchnorm`` with saved
        statistics): put each output in place as soon as it is whole and
        record it in ``DIR/.normcli.journal``, and skip the inputs an earlier
        such run finished (:mod:`normcli.runs.resume`).
    jobs : int, optional
        Inputs worked on at once (default: the cores; one for many small
        ``.npy`` inputs).  Any number gives the same bits.
    scheduler : str, optional
        Run on a Dask cluster instead (``pip install "normcli[dask]"``):
        ``"tcp://HOST:PORT"`` of a running ``dask scheduler``, the path of a
        scheduler file, or ``"local"`` (a cluster of one worker process per
        core on this machine); see ``docs/cluster.md``.  The same bits as
        ``jobs=1``.  Inputs and outputs must be on a file system every worker
        sees at the same paths; outputs go to a directory or one file per input.
    summaries : bool
        Compute the before/after summaries of the report (False: leaner, for
        ``-q``; the report's inputs then carry None).
    histograms : int, optional
        Only the first ``histograms`` inputs' summaries get a histogram; the
        others only the power-of-two ``grid`` one that the total's histogram is
        made of (:mod:`normcli.ops.summary`).  None: all of them.
    stdin, stdout : binary file objects, optional
        What ``"-"`` reads from and ``output="-"`` writes to (default:
        ``sys.stdin.buffer`` and ``sys.stdout.buffer`` when the run starts).
    """

    output: str | os.PathLike[str] | None = None
    force: bool = False
    out_format: str | None = None
    png_bits: int = 8
    sync: bool = True
    channels_last: bool = False
    channel_axis: int | None = None
    allow_nonfinite: bool = False
    raw_png: bool = False
    dtype: str | None = None
    color: str | None = None
    include_alpha: bool = False
    pixels: str | None = None
    recursive: bool = False
    files_from: str | os.PathLike[str] | None = None
    null: bool = False
    keep_going: bool = False
    resume: bool = False
    jobs: int | None = None
    scheduler: str | None = None
    summaries: bool = True
    histograms: int | None = None
    stdin: BinaryIO | None = None
    stdout: BinaryIO | None = None

    def __post_init__(self) -> None:
        for name in _FLAGS:  # ("no" is true to Python: force="no" replaced outputs)
            object.__setattr__(self, name, check_flag(getattr(self, name), name))
        for name in ("output", "files_from"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, checked_path(getattr(self, name), name))
        if self.histograms is not None and (isinstance(self.histograms, bool) or not isinstance(
                self.histograms, int) or self.histograms < 0):
            raise ParameterError(f"histograms={self.histograms!r} must be an int >= 0, or None",
                                 param="histograms", value=self.histograms)
        if self.out_format not in (None, *OUT_FORMATS):
            raise ParameterError(
                f"out_format={self.out_format!r} is not one of {', '.join(OUT_FORMATS)}",
                param="out_format", value=self.out_format)
        for name, allowed in (("color", COLORS), ("pixels", PIXEL_MAPS)):
            value = getattr(self, name)
            if value not in (None, *allowed):
                problem = f"{value!r} is not one of {', '.join(allowed)}"
                raise ParameterError(f"{name}={problem}", param=name, value=value,
                                     problem=problem)
        if self.channel_axis is not None:
            if isinstance(self.channel_axis, bool) or not isinstance(self.channel_axis, int):
                raise ParameterError(f"channel_axis={self.channel_axis!r} must be an int",
                                     param="channel_axis", value=self.channel_axis)
            if self.channels_last:
                raise UsageError("--channel-axis and --channels-last exclude each other: "
                                 "--channel-axis -1 is channels last", param="channel_axis",
                                 value=self.channel_axis)
        if isinstance(self.png_bits, bool) or not isinstance(self.png_bits, int) or (
                self.png_bits not in (8, 16)):
            raise ParameterError(f"png_bits={self.png_bits!r} must be 8 or 16",
                                 param="png_bits", value=self.png_bits)
        dtype = getattr(self.dtype, "name", self.dtype)  # (a numpy dtype, too)
        if dtype not in (None, *OUTPUT_DTYPES):
            raise ParameterError(f"dtype={self.dtype!r} is not one of {', '.join(OUTPUT_DTYPES)}",
                                 param="dtype", value=self.dtype)
        object.__setattr__(self, "dtype", dtype)
        if self.jobs is not None and (isinstance(self.jobs, bool) or not isinstance(
                self.jobs, int) or self.jobs < 1):
            raise ParameterError(f"jobs={self.jobs!r} must be a positive int",
                                 param="jobs", value=self.jobs)
        if self.scheduler is not None and (not isinstance(self.scheduler, str)
                                           or not self.scheduler):
            raise ParameterError(f"scheduler={self.scheduler!r} must be local, "
                                 "tcp://HOST:PORT or a scheduler file", param="scheduler",
                                 value=self.scheduler)

    def __getstate__(self) -> dict:  # (pickled for cluster workers: no streams)
        return {**self.__dict__, "stdin": None, "stdout": None}

    def image_options(self) -> dict:
        """The keywords of :meth:`normcli.files.Source.read` for images."""
        return {"raw_png": self.raw_png, "color": self.color, "with_alpha": self.include_alpha}

    def as_output(self, y, x):
        """Result ``y`` of input ``x`` in the type it is written in (``dtype``)."""
        from normcli.ops.arrays import output_dtype

        return y.astype(output_dtype(x.dtype, self.dtype), copy=False)

    def with_histogram(self, i: int) -> bool | str:
        """Input ``i``'s summaries' ``histogram=`` (:func:`normcli.ops.summary.summarize`)."""
        return True if self.histograms is None or i < self.histograms else "grid"
