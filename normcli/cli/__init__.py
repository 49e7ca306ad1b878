"""The command line: short click commands over the library.

``main.py`` holds the group, exit codes and the entry point, ``options.py`` the
flags shared by the commands, ``pipeline.py`` the load-check-write loop, and
one module per command.  Tables and progress bars come from :mod:`normcli.render`.
"""
