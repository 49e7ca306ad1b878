"""The size limit shared by every reader.

The limit is, in order of precedence: the ``max_bytes`` keyword argument of a
reader, the environment variable ``NORMCLI_MAX_BYTES`` (read at call time, so
it can be changed between calls), or :data:`DEFAULT_MAX_BYTES` (2 GiB).  The
variable accepts a plain number of bytes or a number followed by ``K``, ``M``
or ``G`` (powers of 1024, optionally followed by ``B`` or ``iB``).

>>> resolve_max_bytes(1000)
1000
>>> parse_size("512M") == 512 * 1024**2
True
"""

from __future__ import annotations

import os
import re

from normcli.errors import InputError

__all__ = ["DEFAULT_MAX_BYTES", "MAX_BYTES_ENV", "resolve_max_bytes", "parse_size"]

#: Largest decoded array (in bytes) a reader accepts unless told otherwise.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Environment variable overriding :data:`DEFAULT_MAX_BYTES`.
MAX_BYTES_ENV = "NORMCLI_MAX_BYTES"

_SIZE = re.compile(r"\s*(\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*", re.IGNORECASE)
_UNITS = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Parse ``"1048576"``, ``"64K"``, ``"512MiB"``, ``"2G"`` into bytes.

    Parameters
    ----------
    text : str
        A non-negative integer with an optional binary unit.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If `text` is not of that form.
    """
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (expected e.g. 1048576, 64K, 512M or 2G)")
    unit = m.group(2).lower() if m.group(2) else None
    return int(m.group(1)) * _UNITS[unit]


def resolve_max_bytes(max_bytes: int | None = None) -> int:
    """Return the effective size limit in bytes.

    Parameters
    ----------
    max_bytes : int, optional
        An explicit limit (must be a positive int); wins over the environment.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If `max_bytes` is not a positive integer.
    InputError
        If ``NORMCLI_MAX_BYTES`` is set but is not a positive size.
    """
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        return max_bytes
    env = os.environ.get(MAX_BYTES_ENV)
    if env is None or env.strip() == "":
        return DEFAULT_MAX_BYTES
    try:
        value = parse_size(env)
    except ValueError as e:
        raise InputError(MAX_BYTES_ENV, str(e)) from None
    if value <= 0:
        raise InputError(MAX_BYTES_ENV, f"must be a positive size, got {env!r}")
    return value
