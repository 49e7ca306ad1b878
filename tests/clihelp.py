"""Assertions shared by the command-line tests."""

from __future__ import annotations


def one_line_error(result, exit_code: int = 1) -> str:
    """The single stderr line of a data error; nothing on stdout, no traceback."""
    assert result.exit_code == exit_code, (result.stderr, result.exception)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def usage_error(result) -> str:
    """The last stderr line of a usage error (exit 2, click's own), without a traceback."""
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]
