"""Every shell command shown in README.md, docs/ and sample_data/README.md runs as shown.

Each document's commands run in order, in a fresh copy of the repository's
files (as a new clone has them: no ``out/``, no ``y.npy``), with the
installed ``normcli`` first on ``PATH``, ``COLUMNS=100`` as the docs were
made.  A command's exit code must be 0, or what its shown output says (an
``Error:`` line: 2, a ``normcli: error:`` line: 1).  Output shown after a
command must be what it prints: exactly, for a plain block that follows an
``sh`` block; line by line in order for a ``console`` block (whose ``...``
lines stand for lines left out).  The README's Python examples run too.

Commands that install, lint, run this suite, benchmark or fuzz are not run:
each is recognised by :data:`NOT_RUN` and reported with its reason (after the
run, under "docs commands not run"); a command that is neither run nor
recognised fails the test, so that no command of the docs is left out
silently.  A document that says at its top that it is a draft (``*Draft``) is
skipped as a whole, with that reason, until the mark is removed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(p.relative_to(ROOT).as_posix()
                                  for p in (ROOT / "docs").glob("*.md")),
             "sample_data/README.md"]
BIN = Path(sys.executable).parent

#: Commands the test recognises and does not run: (pattern, reason).
NOT_RUN = [
    (r"^python3? -m venv |^\. \S*activate$|^source \S*activate$", "sets up the environment"),
    (r"^pip install ", "installs packages (the suite runs on the installed normcli)"),
    (r"^python -m pytest", "the test suite itself"),
    (r"^ruff check", "the lint, run by CI"),
    (r"^python benchmarks/", "a benchmark: minutes, measured on its own"),
    (r"^python tools/make_(tf_)?fixtures\.py", "needs PyTorch, onnxruntime or TensorFlow"),
    (r"^(FUZZ_CLI=1 )?python tools/fuzz_atheris\.py", "the long fuzzer: runs for minutes"),
    (r"^dask (scheduler|worker) ", "starts a long-lived cluster process (tests/runs/"
     "test_cluster.py starts real ones, on free ports)"),
    (r"^normcli \S+ .*--scheduler (tcp://|\S+\.json)", "needs the cluster that dask "
     "scheduler / dask worker start (tests/runs/test_cluster.py runs it on a real one)"),
]
#: What the tests recognised and did not run, with the reasons (listed after the run).
NOT_RUN_SEEN: list[str] = []
#: Commands for another shell, run there when it is installed.
OTHER_SHELLS = {"zsh_source": "zsh", "fish_source": "fish"}


@dataclass
class Command:
    line: int
    text: str
    output: list[str] | None = None  # shown output, if any
    exact: bool = False  # the whole output (a plain block after an sh block)
    language: str = "sh"


@dataclass
class Document:
    path: str
    commands: list[Command] = field(default_factory=list)
    python: list[tuple[int, str]] = field(default_factory=list)


def _blocks(text: str):
    """``(first line, language, lines, gap)`` of every fenced block; ``gap`` says whether
    only blank lines separate it from the block before."""
    lines = text.splitlines()
    i, end = 0, -10
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        fence, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        adjacent = end >= 0 and all(not line.strip() for line in lines[end + 1:fence])
        yield fence + 1, m.group(1), body, adjacent
        end = i
        i += 1


def parse(path: str) -> Document:
    doc = Document(path)
    previous_sh: Command | None = None
    for start, language, body, adjacent in _blocks((ROOT / path).read_text(encoding="utf-8")):
        if language in ("sh", "bash", "shell"):
            joined = "\n".join(body).replace("\\\n", " ")
            commands = [Command(start + k + 1, line.strip()) for k, line in
                        enumerate(joined.splitlines()) if line.strip() and
                        not line.strip().startswith("#")]
            doc.commands += commands
            previous_sh = commands[-1] if commands else None
            continue
        if language == "python":
            doc.python.append((start, "\n".join(body)))
        elif language in ("console", ""):
            if any(line.startswith("$ ") for line in body):
                current = None
                for k, line in enumerate(body):
                    if line.startswith("$ "):
                        current = Command(start + k + 1, line[2:].strip(), [], language=language)
                        doc.commands.append(current)
                    elif current is not None:
                        current.output.append(line)
            elif language == "" and adjacent and previous_sh is not None:
                previous_sh.output, previous_sh.exact = body, True
        previous_sh = None
    return doc


def _reason(command: str) -> str | None:
    for pattern, reason in NOT_RUN:
        if re.search(pattern, command):
            return reason
    return None


def _expected_code(command: Command) -> int:
    shown = [line for line in command.output or [] if line.strip()]
    if any(line.startswith("Error:") for line in shown):
        return 2
    if any(line.startswith("normcli: error:") for line in shown):
        return 1
    return 0


def _fresh_copy(target: Path) -> None:
    """The repository's files as a new clone has them (git's list, else the folders)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = []
    if listed and "README.md" in listed:
        for name in filter(None, listed):
            source = ROOT / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
        return
    for name in ("README.md", "pyproject.toml"):
        shutil.copy2(ROOT / name, target / name)
    for folder in ("docs", "sample_data", "tools", "normcli", "benchmarks"):
        shutil.copytree(ROOT / folder, target / folder)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORMCLI_", "_NORMCLI"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", COLUMNS="100", NO_COLOR="1",
               LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    return env


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _check_output(command: Command, stdout: str, stderr: str) -> None:
    if command.output is None:
        return
    shown = _lines("\n".join(command.output))
    actual = _lines(stdout) if stdout.strip() else _lines(stderr)
    if command.exact:
        assert shown == actual, (f"line {command.line}: {command.text}\nshown:\n" +
                                 "\n".join(shown) + "\nprinted:\n" + "\n".join(actual))
        return
    everything = _lines(stderr) + _lines(stdout)
    position = 0
    for line in shown:
        if line.strip() in ("...", "…") or not line.strip():
            continue
        try:
            position = everything.index(line, position) + 1
        except ValueError:
            raise AssertionError(f"line {command.line}: {command.text}\nshown but not printed "
                                 f"(in this order): {line!r}\nprinted:\n" +
                                 "\n".join(everything)) from None


@pytest.mark.parametrize("path", DOCUMENTS)
def test_the_commands_of_a_document_run_as_shown(path, tmp_path):
    doc = parse(path)
    if not doc.commands and not doc.python:
        pytest.skip(f"{path} shows no commands")
    head = "\n".join((ROOT / path).read_text(encoding="utf-8").splitlines()[:12])
    if re.search(r"^\*Draft\b", head, re.M):  # (e.g. commands planned, not wired yet)
        NOT_RUN_SEEN.append(f"{path}: all {len(doc.commands)} commands (marked as a draft)")
        pytest.skip(f"{path} is marked as a draft (*Draft ... at its top): its commands are "
                    "not run until the mark is removed")
    _fresh_copy(tmp_path)
    env = _environment()
    not_run = []
    for command in doc.commands:
        reason = _reason(command.text)
        shell = next((s for key, s in OTHER_SHELLS.items() if key in command.text), "bash")
        if reason is None and shell != "bash" and shutil.which(shell) is None:
            reason = f"needs {shell}, not installed here"
        if reason is not None:
            not_run.append(f"{path}:{command.line}: {command.text}  ({reason})")
            continue
        first = command.text.split()[0]
        assert first in ("normcli", "eval") or first.startswith("_NORMCLI") or \
            command.text.startswith("python tools/make_sample_data.py"), (
            f"{path}:{command.line}: {command.text!r} is neither run nor recognised: add it to "
            "NOT_RUN with its reason, or make it a normcli command")
        args = [shell, "-c", command.text] if shell != "bash" else [
            "bash", "-o", "pipefail", "-c", command.text]
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120)
        want = _expected_code(command)
        assert result.returncode == want, (
            f"{path}:{command.line}: {command.text}\nexit {result.returncode}, shown as {want}"
            f"\n{result.stderr[-2000:]}")
        _check_output(command, result.stdout, result.stderr)
    for line, code in doc.python:
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{path}:{line}: the Python example fails\n" + \
            result.stderr[-2000:]
    NOT_RUN_SEEN.extend(not_run)


def test_commands_not_run_are_only_the_recognised_kinds():
    """What NOT_RUN skips is what it says: every document's list, with reasons."""
    skipped = [(p, c.text, _reason(c.text)) for p in DOCUMENTS for c in parse(p).commands
               if _reason(c.text)]
    assert skipped, "the docs show installation commands; the parser found none"
    for path, text, reason in skipped:
        assert not text.startswith("normcli"), (path, text, reason)


def test_the_parser_finds_the_commands_of_the_readme():
    doc = parse("README.md")
    texts = [c.text for c in doc.commands]
    assert any(t.startswith("normcli lrn sample_data/seed_inter.npy") for t in texts)
    assert any("| normcli batchnorm -" in t for t in texts)
    assert any(c.exact and c.text.startswith("normcli explain lrn") for c in doc.commands)
    assert len(doc.python) == 2
