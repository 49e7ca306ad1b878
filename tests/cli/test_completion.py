"""Shell completion: paths complete like `ls` after every flag and argument that takes one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NORMCLI = Path(sys.executable).with_name("normcli")

#: Command lines (ending in the word being completed) whose word is a path.
PATH_WORDS = [
    "normcli lrn sample_da",
    "normcli lrn x.npy -o ",
    "normcli lrn x.npy --output o",
    "normcli lrn x.npy --preview p",
    "normcli batchnorm x.npy --stats s",
    "normcli batchnorm x.npy --save-stats s",
    "normcli batchnorm x.npy --gamma g",
    "normcli batchnorm x.npy --beta b",
    "normcli batchnorm -o y.npy sample_da",
    "normcli stats sample_data/fea",
    "normcli compare sample_da",
    "normcli compare x.npy --preview p",
    "normcli explain lrn sample_da",
    "normcli explain batchnorm x.npy --stats s",
]


def complete(shell: str, line: str) -> str:
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {**os.environ, "_NORMCLI_COMPLETE": f"{shell}_complete", "COMP_WORDS": line,
           "COMP_CWORD": str(cword)}
    if shell == "fish":  # fish passes the line so far and the current token
        env["COMP_WORDS"], env["COMP_CWORD"] = line, "" if line.endswith(" ") else words[-1]
    return subprocess.run([NORMCLI], env=env, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("line", PATH_WORDS)
def test_paths_complete_as_files_in_bash(line):
    incomplete = "" if line.endswith(" ") else line.split()[-1]
    assert complete("bash", line).splitlines() == [f"file,{incomplete}"]


@pytest.mark.parametrize("line", PATH_WORDS[:4])
def test_and_in_zsh_and_fish(line):
    incomplete = "" if line.endswith(" ") else line.split()[-1]
    assert complete("zsh", line).splitlines()[:2] == ["file", incomplete]
    assert complete("fish", line).splitlines() == [f"file,{incomplete}"]


def test_flags_and_choices_still_complete():
    assert "plain,--mode" in complete("bash", "normcli lrn --mo").splitlines()
    assert "plain,pytorch" in complete("bash", "normcli lrn --convention py").splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_hands_paths_to_readline(tmp_path):
    """What the README's `eval` installs: for a path, bash's own file completion
    (`compopt -o default`), which lists files and directories as for `ls`."""
    script = subprocess.run([NORMCLI], env={**os.environ, "_NORMCLI_COMPLETE": "bash_source"},
                            capture_output=True, text=True, check=True).stdout
    probe = (script + "\ncompopt() { echo \"compopt:$1:$2\"; }\n"
             "COMP_WORDS=(normcli lrn sample_da); COMP_CWORD=2\n"
             "_normcli_completion normcli\necho \"reply=${#COMPREPLY[@]}\"\n")
    env = {**os.environ, "PATH": f"{NORMCLI.parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", probe], env=env, capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out.splitlines() == ["compopt:-o:default", "reply=0"]
