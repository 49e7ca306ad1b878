"""The exceptions normcli raises, by cause.

Two kinds of problem, told apart by who must fix them:

* the **request** is wrong (a parameter out of range, options that exclude
  each other, an output name without a file type): :class:`UsageError`, a
  :class:`ValueError`; :class:`ParameterError` when one parameter is to
  blame, named by ``.param`` (as the library spells it) with its ``.value``.
  The command line prints it as a usage error and exits 2.
* the **data or the file system** is wrong (a truncated file, NaN values, a
  full disk): a :class:`NormcliError` subclass whose message is one line
  that names the file.  The command line prints it and exits 1.

A parameter read from a file (``--gamma g.npy``, ``--stats s.npz``) turns a
:class:`ParameterError` about it into an :class:`InputError` naming that
file: the caller knows which file supplied ``.param``, so no message text is
ever parsed to find it.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A request that cannot be carried out as given, whatever the data.

    ``param`` is the keyword the problem concerns (``"output"``, ``"eps"``), or
    None when it concerns several; ``value`` is the value given for it.
    """

    def __init__(self, message: str, *, param: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.param = param
        self.value = value

    def __reduce__(self):  # (pickled from cluster workers: keywords kept)
        return (_rebuild, (type(self), self.args, self.__dict__))


class ParameterError(UsageError):
    """One parameter's value is invalid: ``.param`` names it, ``.value`` holds it.

    ``str(error)`` names the parameter (``eps=0.0 must be finite and > 0``);
    ``problem`` says the same without the name, about the value alone
    (``0.0 must be finite and > 0``), for callers that name the parameter
    their own way (a command line, by its flag).

    >>> e = ParameterError("eps=0.0 must be finite and > 0", param="eps", value=0.0,
    ...                    problem="0.0 must be finite and > 0")
    >>> isinstance(e, ValueError), e.param, e.problem
    (True, 'eps', '0.0 must be finite and > 0')
    """

    def __init__(self, message: str, *, param: str, value: object = None,
                 problem: str | None = None) -> None:
        super().__init__(message, param=param, value=value)
        self.problem = problem


class NormcliError(Exception):
    """Base class: a problem with data or I/O that the user must fix.

    ``str(error)`` is a single line suitable for printing after ``normcli: ``.
    """

    def __init__(self, source: object, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")

    def __reduce__(self):  # (pickled from cluster workers)
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls, args, state):
    error = Exception.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InputError(NormcliError):
    """An input file is missing, unreadable, malformed, too large or refused."""


class OutputError(NormcliError):
    """An output cannot be written (exists, is also an input, disk full, ...)."""
