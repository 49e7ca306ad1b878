"""Names from the outside world, made safe to print on a terminal.

A file name may hold any character but ``/`` and NUL: an ESC that recolours or
clears the screen, a carriage return or newline that forges a line of output
(``normcli: error: ...``), a BEL, or Unicode direction overrides that show text
in another order than it is.  :func:`printable` writes every such character
as a visible escape (``\\x1b``, ``\\n``, ``\\u202e``); everything else is kept.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

#: C0 and C1 control characters, DEL, and the Unicode bidirectional controls.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def printable(text: object) -> str:
    """``text`` with every control character shown as an escape.

    >>> printable("a\\x1b[2Jb\\nnormcli: error: forged")
    'a\\\\x1b[2Jb\\\\nnormcli: error: forged'
    >>> printable("ümlaut and 😀 stay")
    'ümlaut and 😀 stay'
    """
    return _UNSAFE.sub(_escape, str(text))
