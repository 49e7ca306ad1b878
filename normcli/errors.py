"""The exceptions normcli raises for bad data and failed I/O.

Invalid *arguments* to the library functions raise :class:`ValueError` (or
:class:`TypeError`) naming the parameter, the value and what is allowed.
Problems with *files* raise a :class:`NormcliError` subclass whose message is
one line that names the file; the command line prints it and exits 1.
"""

from __future__ import annotations


class NormcliError(Exception):
    """Base class: a problem with data or I/O that the user must fix.

    ``str(error)`` is a single line suitable for printing after ``normcli: ``.
    """

    def __init__(self, source: object, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class InputError(NormcliError):
    """An input file is missing, unreadable, malformed, too large or refused."""


class OutputError(NormcliError):
    """An output cannot be written (exists, is also an input, disk full, ...)."""
