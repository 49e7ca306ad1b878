"""Resumable per-input runs: outputs put in place one by one, and a journal of them.

A run over a million files that is interrupted at 70 % should not start
again from zero.  With ``resume=True`` (``--resume``; per-input runs only:
``lrn``, and ``batchnorm`` with saved statistics; into ``-o DIR/``):

* each output is written to a temporary file and renamed into place as soon
  as it is whole (never half-written: an interrupt removes the temporary
  files of the outputs in flight), then recorded in ``DIR/.normcli.journal``:
  the output's relative name, the state of its input (device, inode, size,
  modification and change times) and the output's size and modification time.
  Before the rename the journal says the output is coming, so that a file
  put in place by a run stopped before it could record it is known as its
  own, and redone;
* run the same command again with ``--resume`` and the inputs whose journal
  entry still matches (same settings, same input file, output untouched)
  are not redone; the others are, and are added to the journal.

The journal's first line is a fingerprint of the settings (the command, its
parameters, the reading and writing options): a journal written with other
settings is refused, naming it.  Without ``resume`` a run stays all or
nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from normcli.errors import OutputError, UsageError
from normcli.files import Source, StagedWrites, plan_outputs
from normcli.runs.options import RunOptions
from normcli.runs.outputs import ResultWriter

__all__ = ["JOURNAL", "Journal", "ResumeWriter", "fingerprint"]

#: The journal's name inside the output directory (hidden: never read as an input).
JOURNAL = ".normcli.journal"
_VERSION = 1


def fingerprint(command: str, params: dict, options: RunOptions) -> str:
    """A digest of everything that decides an output's contents."""
    doc = {"command": command, "params": params,
           "options": {name: getattr(options, name) for name in (
               "out_format", "png_bits", "channels_last", "channel_axis", "raw_png", "color",
               "include_alpha", "pixels", "allow_nonfinite")}}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Journal:
    """The record of the outputs put in place by resumable runs into one folder."""

    def __init__(self, options: RunOptions, sources: Sequence[Source], digest: str) -> None:
        out = options.output
        if out in (None, "-") or not (out.endswith(("/", os.sep)) or Path(out).is_dir()):
            raise UsageError("--resume needs -o DIR/: outputs are put in place one by one "
                             "and recorded in the folder", param="resume", value=True)
        self.folder = Path(out)
        self.path = self.folder / JOURNAL
        self.digest = digest
        suffix = None if options.out_format is None else f".{options.out_format}"
        self.targets = plan_outputs(sources, self.folder, suffix)
        self.entries = self._read()
        self.done: set[int] = set()
        for i, (source, target) in enumerate(zip(sources, self.targets, strict=True)):
            entry = self.entries.get(self._key(target))
            if entry is not None and self._matches(entry, source, target):
                self.done.add(i)
        self._lock = threading.Lock()
        self._file = None
        self._intended: set[str] = set()

    def _key(self, target: Path) -> str:
        return target.relative_to(self.folder).as_posix()

    def _read(self) -> dict[str, dict]:
        try:
            st = os.lstat(self.path)
            if not stat.S_ISREG(st.st_mode):  # (a FIFO or /dev/zero would hang the run,
                raise OutputError(self.path, "is not a regular file (a journal is one); "
                                  "remove it")  # a symlink lead its writes elsewhere)
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise OutputError(self.path, (e.strerror or str(e)).strip()) from None
        try:  # (bytes: a line that is not UTF-8 is not JSON, a ValueError)
            head = json.loads(lines[0]) if lines else {}
        except ValueError:
            head = {}
        if not isinstance(head, dict):
            head = {}
        if head.get("normcli_journal") != _VERSION or head.get("settings") != self.digest:
            raise OutputError(self.path, "is the journal of a run with other settings (or "
                              "not a journal); remove it, or resume with the same command")
        entries = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                entries[entry["output"]] = entry
            except (ValueError, KeyError, TypeError):
                continue  # (a line cut by a crash: that output is redone)
        return entries

    @staticmethod
    def _matches(entry: dict, source: Source, target: Path) -> bool:
        try:
            state = source.state()
            st = os.stat(target)
        except Exception:  # a missing input is reported when it is read
            return False
        return (entry.get("input") == list(state or ())
                and entry.get("size") == st.st_size and entry.get("mtime") == st.st_mtime_ns)

    def existing_ok(self) -> set[Path]:
        """The outputs that exist because an earlier run with these settings wrote
        them (those done, and those to redo: their input changed)."""
        return {t for t in self.targets if self.recorded(t)}

    def recorded(self, target: Path) -> bool:
        """Whether the journal holds ``target`` (an output of ours, to replace freely)."""
        with self._lock:
            return self._key(target) in self.entries or self._key(target) in self._intended

    def intend(self, target: Path) -> None:
        """Say that ``target`` is about to be put in place: if the run stops before
        :meth:`record`, the next one knows the file there is its own, and redoes it."""
        self._write(json.dumps({"output": self._key(target), "pending": True}))
        with self._lock:
            self._intended.add(self._key(target))

    def record(self, target: Path, source: Source, state) -> None:
        """Add an output just put in place (from any thread)."""
        st = os.stat(target)
        self._write(json.dumps({"output": self._key(target), "input": list(state or ()),
                                "size": st.st_size, "mtime": st.st_mtime_ns}))

    def _write(self, line: str) -> None:
        with self._lock:
            if self._file is None:
                new = not self.path.exists() or not self.entries
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                if new:
                    self._file.write(json.dumps({"normcli_journal": _VERSION,
                                                 "settings": self.digest}) + "\n")
            self._file.write(line + "\n")
            self._file.flush()

    def close(self, sync: bool) -> None:
        with self._lock:
            if self._file is not None:
                if sync:
                    os.fsync(self._file.fileno())
                self._file.close()
                self._file = None


class ResumeWriter(ResultWriter):
    """A :class:`ResultWriter` that puts each output in place as soon as it is
    written, and records it in the journal."""

    def __init__(self, plan, journal: Journal, *, image_pixels: str | None = None) -> None:
        super().__init__(plan, None, image_pixels=image_pixels)
        self.journal = journal
        self.count = 0

    def add(self, i: int, source: Source, result, decoded=None) -> None:
        target = self.plan.targets[i]
        state = source.state()  # (as read: the file this output was computed from)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(target.parent, (e.strerror or str(e)).strip()) from None
        with StagedWrites(sync=self.plan.options.sync) as staged:
            self._stage(target, result, source, decoded, staged=staged,
                        force=self.journal.recorded(target))
            staged.sync()
            self.journal.intend(target)
            staged.commit()
        self.journal.record(target, source, state)
        self.count += 1

    def commit(self) -> None:
        """Nothing is left to put in place: every output already is."""
