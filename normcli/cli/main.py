"""The ``normcli`` group: exit codes by cause, signals, and the subcommands
(:mod:`normcli.cli.command` maps a command's own errors).

Exit codes: 0 success; 1 bad data or failed I/O (one line on stderr naming the
file); 2 bad usage (click's own, and the library's :class:`UsageError`); 130
interrupted (Ctrl-C), 143 terminated (129 hung up, 131 quit).  A closed pipe
ends quietly.  Set ``NORMCLI_DEBUG=1`` to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import errno
import os
import sys

import click

from normcli import __version__
from normcli.cli.command import DataError, NormcliCommand
from normcli.cli.globals import OptionsBeforeCommand
from normcli.errors import NormcliError
from normcli.runs import signals

#: The subcommands and where they live: each module is imported only when its
#: command runs (or help lists it), so that ``normcli batchnorm`` does not pay
#: for importing ``compare`` or ``explain``.
COMMANDS = {
    "lrn": "normcli.cli.lrn",
    "batchnorm": "normcli.cli.batchnorm",
    "stats": "normcli.cli.stats",
    "explain": "normcli.cli.explain",
    "compare": "normcli.cli.compare",
    "conventions": "normcli.cli.conventions",
    "identify": "normcli.cli.porting",
    "translate": "normcli.cli.porting",
    "layers": "normcli.cli.porting",
}


#: What an interrupted command had to say (its run's progress), for the last line.
_interrupted = [""]


class NormcliGroup(OptionsBeforeCommand):
    """Turns what escapes a command into exit codes, whoever calls ``main``; loads the
    subcommands on demand (click's "lazy group" pattern); passes options on to them."""

    command_class = NormcliCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            import importlib

            module = importlib.import_module(COMMANDS[cmd_name])
            self.add_command(getattr(module, cmd_name))
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NormcliError as e:
            raise DataError(str(e)) from None
        except KeyboardInterrupt as e:
            detail = f": {e}" if str(e) else ""  # (a resumable run says how far it got)
            if signals.terminated.is_set():  # the command line says it at exit
                _interrupted[0] = detail
            else:
                click.echo(f"normcli: interrupted{detail}", err=True)
            ctx.exit(130)
        except MemoryError:
            raise DataError("out of memory; see NORMCLI_MAX_BYTES in the README") from None
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise  # click ends quietly on a closed pipe
            if os.environ.get("NORMCLI_DEBUG"):
                raise
            raise DataError(_os_error_line(e)) from None


def _os_error_line(e: OSError) -> str:
    """What a failed system call says, after the file it names (``<stdout>`` for
    standard output: :mod:`normcli.cli._streams`)."""
    return f"{e.filename}: {e.strerror or e}" if e.filename else str(e.strerror or e)


def _quiet_stdout() -> None:
    """After a failed run, standard output that cannot take what it still holds
    (a full disk) gets it into /dev/null instead: Python's own flush at exit would
    print a traceback ("Exception ignored ...") and exit 120."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass


EPILOG = """\b
Examples:
  normcli lrn --mode inter x.npy -o y.npy
  normcli batchnorm features/ -o normed/
  normcli lrn a.npy -o - | normcli batchnorm - -o b.npy
  normcli stats features/ --json
  normcli stats photos/ -r --per channel

Run 'normcli COMMAND --help' for a command's options and examples; options
given before the command (normcli --json stats x) are passed to it."""


@click.group(
    cls=NormcliGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="normcli")
def cli() -> None:
    """Apply and understand local response normalization (LRN) and batch
    normalization (BN) on feature maps and images (.npy, .npz, PNG, JPEG,
    TIFF, WebP, BMP, GIF), and compute the mean and std of image datasets.

    Results go to -o (a file, a directory, or - for stdout); a table of
    before/after statistics goes to stderr (stats: its table is the result,
    on stdout).
    """


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its status (see the module docstring): every
    interrupt exits 130 (click's standalone mode would say "Aborted!" and exit 1), a
    termination signal 128 + its number, even when its exception was swallowed."""
    # BLAS starts with one thread, as the kernels use it (ops/_blas.py): else OpenBLAS
    # wakes idle threads that spin.  (Before numpy is imported; the user's value is kept.)
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    signals.install()
    status = 0
    try:
        status = cli.main(args=argv, prog_name="normcli", standalone_mode=False)
    except (KeyboardInterrupt, click.Abort):
        signals.terminated.set()
    except SystemExit as e:  # a termination signal's; a resumable run adds how far it got
        hint = getattr(e, "hint", None)
        if not (hint or signals.terminated.is_set()):
            raise
        if hint:
            _interrupted[0] = f": {hint}"
        signals.terminated.set()
    except NormcliError as e:  # (a closed standard stream used outside a run: --help >&-)
        from normcli.render.text import printable

        sys.stderr.write(f"normcli: error: {printable(str(e))}\n")
        status = 1
    except click.ClickException as e:
        from normcli.render.text import printable

        e.message = printable(e.message)  # (click repeats unknown flags and names as given)
        e.show()
        status = e.exit_code
    except OSError as e:
        status = 1
        if e.errno == errno.EPIPE:  # a closed pipe ends quietly (stdout can take nothing more)
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (flushed at exit)
        elif os.environ.get("NORMCLI_DEBUG"):
            raise
        else:  # (help or version into a full disk: --help > /dev/full)
            sys.stderr.write(f"normcli: error: {_os_error_line(e)}\n")
    if status:
        _quiet_stdout()
    if signals.terminated.is_set():  # (not os._exit: threads must remove their files)
        status = signals.exit_status()
        if status == 130:
            sys.stderr.write(f"normcli: interrupted{_interrupted[0]}\n")
        else:  # (one line for every signal; a resumable run says how far it got)
            import signal

            name = signal.Signals(status - 128).name
            sys.stderr.write(f"normcli: stopped by {name}{_interrupted[0]}\n")
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
