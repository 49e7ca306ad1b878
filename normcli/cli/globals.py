"""Options given before the command: ``normcli --json stats x`` means ``normcli stats --json x``.

The group has only ``--help`` and ``--version`` of its own; every other option
belongs to a command.  People put the common output flags (``--json``,
``-q``, ``--force``, ``-o FILE``, ...) wherever their other tools take them,
so options written before the command name are moved after it (after
``explain lrn`` for the two-word commands), where the command parses them as
its own: an option the command does not have is then refused by that command,
naming it.  Without a command, an unknown option is refused with a line saying
where options go.
"""

from __future__ import annotations

import click

#: The group's own options: they stay where they are.
GROUP_OPTIONS = frozenset({"-h", "--help", "-V", "--version"})


def move_leading_options(args: list[str], commands, groups=frozenset({"explain"})) -> list[str]:
    """``args`` with the options before the first command name moved after it.

    >>> move_leading_options(["--json", "-o", "y.npy", "lrn", "x.npy"], {"lrn"})
    ['lrn', '--json', '-o', 'y.npy', 'x.npy']
    >>> move_leading_options(["--json", "explain", "lrn"], {"explain"})
    ['explain', 'lrn', '--json']
    >>> move_leading_options(["--help", "lrn"], {"lrn"})
    ['--help', 'lrn']
    """
    names = [k for k, token in enumerate(args) if token in commands or token == "--"]
    if not names or args[names[0]] == "--":
        return args
    i = names[0]
    leading = args[:i]
    if not leading or not leading[0].startswith("-") or GROUP_OPTIONS.intersection(leading):
        return args
    head, rest = [args[i]], args[i + 1:]
    if args[i] in groups and rest and not rest[0].startswith("-"):
        head, rest = [*head, rest[0]], rest[1:]
    return [*head, *leading, *rest]


def where_options_go(error: click.NoSuchOption) -> click.UsageError:
    """The group's "no such option" error, saying where the option belongs."""
    return click.UsageError(
        f"{error.option_name} is an option of the commands: put it after the command, "
        f"e.g. normcli stats INPUT {error.option_name}", ctx=error.ctx)


class OptionsBeforeCommand(click.Group):
    """A group that passes the options given before a command on to it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, move_leading_options(args, self.list_commands(ctx)))
        except click.NoSuchOption as e:
            raise where_options_go(e) from None
