"""Byte-compile normcli before a benchmark times it in fresh processes.

A regular ``pip install`` writes every module's bytecode at install time, and
Python writes it on first import anywhere else, unless bytecode writing is
off: ``PYTHONDONTWRITEBYTECODE`` (set on this workplace's machines) then makes
an editable install compile normcli's sources again in every process, about
0.1-0.15 s of each ``normcli`` run here (91 modules), which no installed
normcli pays and the benchmarks' numpy baselines never pay (numpy's own
bytecode was written by pip).  The benchmarks that start ``normcli``
processes call :func:`compile_normcli` first, so that they time normcli as a
user runs it.
"""

from __future__ import annotations

import compileall
import importlib.util
import sys
from pathlib import Path


def compile_normcli() -> str:
    """Write the bytecode of the normcli that child processes will import (into
    ``__pycache__`` beside its sources; modules already compiled and unchanged
    are left alone), and say what was done, as a line for the report."""
    spec = importlib.util.find_spec("normcli")
    if spec is None or spec.origin is None:
        sys.exit("normcli is not importable: install it (pip install -e .) first")
    package = Path(spec.origin).parent
    ok = compileall.compile_dir(package, quiet=1)
    compiled = sum(1 for _ in package.rglob("__pycache__/*.pyc"))
    return (f"normcli's bytecode written beforehand ({compiled} files in {package}), as an install "
            f"does{'' if ok else '; some modules did not compile'}")
