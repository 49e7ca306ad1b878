"""The click parameter types of normcli's flags: paths that complete like ``ls``, numbers or files.

Shell completion (``eval "$(_NORMCLI_COMPLETE=bash_source normcli)"``, and the
zsh and fish forms) asks each parameter what may come next; a parameter of
these types answers "a file name", and the shell then completes paths itself,
as it does for ``ls`` (directories included).  The values are passed on as
typed: the run checks and names the files, with its own exit codes.
"""

from __future__ import annotations

import math

import click


def _complete_paths(incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


class PathOrDash(click.ParamType):
    """A file or directory name (or ``-``), unchecked here: the run checks it."""

    name = "path"

    def convert(self, value, param, ctx):
        return value

    def shell_complete(self, ctx, param, incomplete):
        return _complete_paths(incomplete)


PATH = PathOrDash()


class FloatOrFile(click.ParamType):
    """A number, or the path of a .npy holding an array of them."""

    name = "F|FILE.npy"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isfinite(number):
                self.fail(f"{value!r} must be a finite number", param, ctx)
            return number
        if not value.lower().endswith(".npy"):
            self.fail(f"{value!r} is neither a number nor a .npy file", param, ctx)
        return value

    def shell_complete(self, ctx, param, incomplete):
        return _complete_paths(incomplete)


class ConventionChoice(click.Choice):
    """A convention's name: any case, or another name people use for it
    (``torch``, ``tf``); completion and errors list the names themselves."""

    def __init__(self, names, aliases: dict[str, str]) -> None:
        super().__init__(list(names), case_sensitive=False)
        self.aliases = aliases

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            value = self.aliases.get(value.strip().lower(), value)
        return super().convert(value, param, ctx)
