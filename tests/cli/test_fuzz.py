"""Fuzzing the command line with the broken files of ``test_fuzz_readers``.

Each case runs ``normcli lrn``/``batchnorm``/``stats`` in-process
(:class:`click.testing.CliRunner`) on a directory holding a good array and a
broken one (or on a broken file alone, or on standard input).  The run must
succeed (exit 0, outputs written) or fail with exit 1 and exactly one line on
stderr, ``normcli: error: <that file>: <problem>``: no traceback, no usage
error, no MemoryError, and then no new file and no temporary file anywhere
in the output folder - not even the good input's result, which was already
staged when the broken input failed.

Known bugs outside ``normcli/files`` are recognised (:data:`KNOWN_BUGS`),
counted and skipped here so that the fuzzer keeps looking for new ones;
each has a strict xfail test below that turns green when it is fixed (then
remove its entry).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

# The readers' mutations, imported as a module of their own (so their counts stay
# theirs: this module counts its inputs itself).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "files"))
from test_fuzz_readers import (  # noqa: E402
    NPY_SEEDS,
    PNG_SEEDS,
    bad_npy,
    bad_npz,
    bad_png,
    fast_tmpdir,
)

from normcli.cli.main import cli  # noqa: E402

# pipeline.py calls click.get_binary_stream, deprecated in click 8.5; the suite
# turns warnings into errors (reported by the CLI tests: test_cli_io.py).
pytestmark = pytest.mark.filterwarnings(
    "ignore:'get_binary_stream' is deprecated:DeprecationWarning"
)
COUNTS: Counter[str] = Counter()
LIMIT = 1 << 20
ENV = {"NORMCLI_MAX_BYTES": str(LIMIT), "NORMCLI_THREADS": "1", "NORMCLI_DEBUG": None,
       "COLUMNS": "100"}
CLI_FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

#: (substring of the traceback, what it is): bugs reported upstream, skipped here.
KNOWN_BUGS: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def base():
    with tempfile.TemporaryDirectory(prefix="normcli-clifuzz-", dir=fast_tmpdir()) as d:
        yield Path(d)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".normcli-" in p.name]


def run_cli(args: list[str], stdin: bytes | None = None):
    return CliRunner().invoke(cli, args, input=stdin, env=ENV, catch_exceptions=True)


def check_result(result, out: Path, before: dict[str, bytes], bad_label: str) -> str:
    """Exit 0, or exit 1 with one ``normcli: error: FILE: ...`` line and nothing written."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        text = "".join(traceback.format_exception(exc))
        for needle, what in KNOWN_BUGS:
            if needle in text:
                COUNTS[f"known bug hit: {what}"] += 1
                reject()
        pytest.fail(f"uncaught {type(exc).__name__}: {exc}\n{text}")
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr)
    assert temp_files(out) == [], temp_files(out)
    if result.exit_code == 0:
        return "ok"
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("normcli: error: "), lines[0]
    assert bad_label in lines[0], (bad_label, lines[0])
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert snapshot(out) == before, "a failed run changed the output folder"
    return "refused"


COMMANDS = [
    (["lrn"], "dir"),
    (["lrn", "--mode", "intra", "--convention", "caffe", "--n", "3"], "npz"),
    (["lrn", "--convention", "tensorflow"], "npy"),
    (["batchnorm"], "dir"),
    (["batchnorm", "--per", "channel"], "npz"),
    (["stats"], None),
]


@st.composite
def broken_file(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".npy", ".npz", ".png"]))
    strategy = {".npy": bad_npy(), ".npz": bad_npz(), ".png": bad_png()}[suffix]
    return suffix, draw(strategy)


def _prepare(base: Path, name: str) -> tuple[Path, Path, Path]:
    work = base / name
    shutil.rmtree(work, ignore_errors=True)
    inputs, out = work / "in", work / "out"
    inputs.mkdir(parents=True)
    out.mkdir()
    (out / "unrelated.txt").write_bytes(b"keep me")
    return work, inputs, out


def _output_args(kind: str | None, out: Path) -> list[str]:
    if kind is None:
        return []
    target = {"dir": f"{out}/", "npz": str(out / "r.npz"), "npy": str(out / "r.npy")}[kind]
    return ["-o", target]


@CLI_FUZZ
@given(bad=broken_file(), command=st.sampled_from(COMMANDS), quiet=st.booleans(),
       alone=st.booleans())
def test_cli_on_broken_files(base, bad, command, quiet, alone):
    """A folder with a good array and a broken file (or the broken file alone)."""
    suffix, data = bad
    COUNTS[f"cli: broken {suffix}"] += 1
    work, inputs, out = _prepare(base, "case")
    if not alone:
        # sorts first, so its result is staged before the broken file is read
        np.save(inputs / "a_good.npy", np.ones((2, 3, 4), np.float32))
    bad_path = inputs / f"b_bad{suffix}"
    bad_path.write_bytes(data)
    args, kind = command
    target = str(bad_path) if alone else f"{inputs}/"
    if not alone and kind == "npy":
        kind = "npz"  # two inputs of maybe different shapes
    argv = [*args, target, *_output_args(kind, out), *(["-q"] if quiet else [])]
    before = snapshot(out)
    result = run_cli(argv)
    outcome = check_result(result, out, before, str(bad_path))
    COUNTS[f"cli: {outcome}"] += 1


@settings(CLI_FUZZ, max_examples=60)
@given(data=bad_npy(), command=st.sampled_from(COMMANDS[:4]))
def test_cli_on_broken_stdin(base, data, command):
    """``normcli ... - -o OUT`` with a broken .npy piped in."""
    COUNTS["cli: broken stdin"] += 1
    work, _, out = _prepare(base, "stdin")
    args, kind = command
    argv = [*args, "-", *_output_args(kind, out), "-q"]
    before = snapshot(out)
    result = run_cli(argv, stdin=data)
    outcome = check_result(result, out, before, "<stdin>")
    COUNTS[f"cli: {outcome}"] += 1


@pytest.mark.parametrize("seed", range(len(NPY_SEEDS) + len(PNG_SEEDS)))
def test_cli_accepts_every_seed(base, seed):
    """The unmutated seeds are processed: the fuzzer starts from valid files."""
    data = (NPY_SEEDS + PNG_SEEDS)[seed]
    suffix = ".npy" if seed < len(NPY_SEEDS) else ".png"
    work, inputs, out = _prepare(base, "seed")
    path = inputs / f"x{suffix}"
    path.write_bytes(data)
    result = run_cli(["stats", str(path), "-q"])
    assert result.exit_code == 0, result.stderr


# ------------------------------- bugs found by this fuzzer (two fixed, kept as regressions)


def _invoke_raw(args: list[str]):
    return CliRunner().invoke(cli, args, env=ENV, catch_exceptions=True)


def _one_error_line(result) -> bool:
    lines = result.stderr.strip().splitlines()
    return (result.exit_code == 1 and not isinstance(result.exception, ValueError)
            and len(lines) == 1 and lines[0].startswith("normcli: error: "))


def test_stats_on_subnormal_values(tmp_path):
    path = tmp_path / "sub.npy"
    np.save(path, np.array([[0.0, 1e-310]]))
    result = _invoke_raw(["stats", str(path), "-q"])
    assert result.exit_code == 0, result.exception


def test_batchnorm_several_float128_inputs(tmp_path):
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, np.ones((2, 3), np.longdouble))
    result = _invoke_raw(["batchnorm", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "-q"])
    assert _one_error_line(result), (result.exception, result.stderr)


def test_png_output_of_4d_input_is_one_error_line(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((2, 3, 4, 5)))
    result = _invoke_raw(["lrn", str(path), "-o", str(tmp_path / "y.png"), "-q"])
    assert _one_error_line(result), (result.exception, result.stderr)
    assert not (tmp_path / "y.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]

