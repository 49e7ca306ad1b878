"""Stand-ins for a closed standard input or output (see :mod:`normcli.cli.entry`).

Each fails when it is used, with the error that names it, and holds nothing
back: there is nothing to flush when the program ends.
"""

from __future__ import annotations

import io

from normcli.errors import InputError, OutputError


def _closed_input() -> InputError:
    return InputError("-", "standard input is closed")


def _closed_output() -> OutputError:
    return OutputError("-", "standard output is closed")


class _Binary(io.RawIOBase):
    """The binary stream: readable (a closed input) or writable (a closed output)."""

    def __init__(self, reading: bool) -> None:
        super().__init__()
        self._reading = reading

    def readable(self) -> bool:
        return self._reading

    def writable(self) -> bool:
        return not self._reading

    def isatty(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        raise _closed_input()

    def write(self, data) -> int:
        raise _closed_output()


class _Text(io.TextIOBase):
    """A text stream over one of the binary stand-ins (its ``buffer``)."""

    def __init__(self, buffer: io.RawIOBase) -> None:
        super().__init__()
        self.buffer = buffer

    @property
    def encoding(self) -> str:
        return "utf-8"

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return self.buffer.readable()

    def writable(self) -> bool:
        return self.buffer.writable()

    def read(self, size: int | None = -1) -> str:
        raise _closed_input()

    def readline(self, size: int | None = -1) -> str:
        raise _closed_input()

    def write(self, text: str) -> int:
        raise _closed_output()


def closed_input() -> io.TextIOBase:
    """A text stream (with ``.buffer``) whose every read is the error."""
    return _Text(_Binary(reading=True))


def closed_output() -> io.TextIOBase:
    """A text stream (with ``.buffer``) whose every write is the error."""
    return _Text(_Binary(reading=False))
