"""Injected faults shared by the tests of normcli.files and of the command line."""

from __future__ import annotations

import errno
import os


class FullDisk:
    """A file on a full disk: from ``where`` on ("write", "flush" or "close"), every
    operation fails with ENOSPC, as each retries what is in the buffer."""

    STAGES = ("write", "flush", "close")

    def __init__(self, f, where: str) -> None:
        self._f, self._fails = f, self.STAGES[self.STAGES.index(where):]

    def _full(self, stage: str) -> None:
        if stage in self._fails:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def write(self, data) -> int:
        self._full("write")
        return self._f.write(data)

    def flush(self) -> None:
        self._full("flush")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
        self._full("close")
