"""What a command's library errors become: usage errors exit 2 under the flag they
are about, data and I/O errors exit 1 with one line naming the file."""

from __future__ import annotations

import click

from normcli.errors import NormcliError, ParameterError, UsageError

__all__ = ["DataError", "NormcliCommand", "usage_error"]


class DataError(click.ClickException):
    """Bad data or failed I/O: ``normcli: error: FILE: problem``, exit 1."""

    exit_code = 1

    def show(self, file=None) -> None:
        from normcli.render.text import printable  # (names from outside: no raw controls)

        click.echo(f"normcli: error: {printable(self.format_message())}", err=True)


def usage_error(error: UsageError, ctx: click.Context) -> click.UsageError:
    """The library's usage error as click's: under the flag of ``error.param`` when
    the command has one and the error has a wording without the name."""
    if isinstance(error, ParameterError) and error.problem is not None:
        for param in ctx.command.params:
            if param.name == error.param and param.opts:
                return click.BadParameter(error.problem, ctx=ctx, param_hint=f"'{param.opts[0]}'")
    return click.UsageError(str(error), ctx=ctx)


class NormcliCommand(click.Command):
    """A command whose library errors become exit codes: usage errors (exit 2,
    naming the flag), data and I/O errors (exit 1, naming the file)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsageError as e:
            raise usage_error(e, ctx) from None
        except NormcliError as e:
            raise DataError(str(e)) from None
