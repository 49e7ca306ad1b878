"""The command line: short click commands over the library.

``main.py`` holds the group and exit codes, ``options.py`` the flags shared by
the commands, ``pipeline.py`` the load-check-write loop, and one module per
command.  Tables and progress bars come from :mod:`normcli.render`.
"""

from normcli.cli.main import cli, main

__all__ = ["cli", "main"]
