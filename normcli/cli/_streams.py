"""Standard streams whose errors name them (see :mod:`normcli.cli.entry`).

A closed standard input or output gets a stand-in that fails when it is used,
with the error that names it, and holds nothing back: there is nothing to
flush when the program ends.  An open standard output is rebuilt over a file
whose failed writes name ``<stdout>`` (the table of ``stats`` into a full
disk said only "No space left on device").
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


class _NamedStdout(io.FileIO):
    """File descriptor 1, whose failed writes name ``<stdout>``."""

    def write(self, data) -> int:
        try:
            return super().write(data)
        except OSError as e:
            if not e.filename:
                e.filename = "<stdout>"
            raise


def named_output(stream: io.TextIOWrapper) -> io.TextIOWrapper:
    """``stream`` (Python's ``sys.stdout``) rebuilt with its encoding, errors and
    buffering over :class:`_NamedStdout`; ``stream`` itself where it is not a
    plain file over descriptor 1 (a test's capture, an embedding program's)."""
    try:
        if (not isinstance(stream, io.TextIOWrapper) or stream.fileno() != 1
                or not isinstance(getattr(stream.buffer, "raw", stream.buffer), io.FileIO)):
            return stream  # (a Windows console's stream is not a FileIO)
    except (OSError, ValueError, AttributeError):
        return stream
    raw = _NamedStdout(1, "w", closefd=False)
    raw.name = "<stdout>"
    buffered = isinstance(stream.buffer, io.BufferedWriter)  # (not with python -u)
    stream.flush()
    return io.TextIOWrapper(io.BufferedWriter(raw) if buffered else raw,
                            encoding=stream.encoding, errors=stream.errors,
                            line_buffering=stream.line_buffering,
                            write_through=stream.write_through)
