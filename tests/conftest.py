"""Shared fixtures for the command-line tests (tests/test_cli_*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"




@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture
def invoke(monkeypatch, tmp_path):
    """Run ``normcli ARGS...`` in-process, in ``tmp_path``, with a wide console.

    Returns click's Result: ``exit_code``, ``stdout``, ``stderr`` (separate),
    ``stdout_bytes``.
    """
    from normcli.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NORMCLI_MAX_BYTES", raising=False)

    def run(*args, input=None, env=None):
        environment = {"COLUMNS": "200", "NO_COLOR": "1"}
        environment.update(env or {})
        runner = CliRunner()
        return runner.invoke(cli, [str(a) for a in args], input=input, env=environment,
                             catch_exceptions=True)

    return run


@pytest.fixture
def save(tmp_path):
    """``save("name.npy", array)``: write an .npy under tmp_path, return its path."""

    def write(name: str, arr) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(arr))
        return path

    return write


def leftovers(directory: Path) -> list[str]:
    """Every file under ``directory`` (temporary files included), as relative names."""
    if not directory.exists():
        return []
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if not p.is_dir())


@pytest.fixture
def files_in():
    """``files_in(dir)``: all files under dir, including ``.*.normcli-*.tmp``."""
    return leftovers
