"""Checks of the arguments every layer takes, without numpy (``runs.RunOptions``
and the convention tables are read before numpy is imported)."""

from __future__ import annotations

from normcli.errors import ParameterError

__all__ = ["is_bool", "check_flag"]


def is_bool(value: object) -> bool:
    """Whether ``value`` is a bool, Python's or numpy's (``np.bool_``, whose type
    numpy 2 names ``bool``), told apart without importing numpy."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy"
                                       and type(value).__name__ in ("bool", "bool_"))


def check_flag(value: object, name: str) -> bool:
    """``value`` if it is a bool (numpy's too); anything else is refused: a string
    such as ``"no"`` is true to Python, and was taken as True.

    >>> check_flag("no", "channels_last")
    Traceback (most recent call last):
    ...
    normcli.errors.ParameterError: channels_last='no' must be True or False
    """
    if not is_bool(value):
        raise ParameterError(f"{name}={value!r} must be True or False", param=name, value=value)
    return bool(value)
