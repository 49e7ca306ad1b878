"""The command line: short click commands over :mod:`normcli.runs`.

``main.py`` holds the group, exit codes and the entry point, ``options.py`` the
flags shared by the commands, ``report.py`` how a run's report is shown, and
one module per command: each parses its flags, calls one ``normcli.runs``
function and renders what it returns with :mod:`normcli.render`.
"""
