"""normcli.render: the statistics table, its JSON, sparklines and progress."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from normcli.ops.summary import merge, summarize
from normcli.render import make_consoles, progress, sparkline, stats_json, stats_table
from normcli.render.progress import NullTracker, Tracker

TITLE = "LRN inter-channel, pytorch convention: window c-2..c+2, n=5, k=1, alpha/5=2e-05, beta=0.75"


def render(renderable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def rows_of(*labels: str):
    rng = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(labels):
        x = rng.standard_normal((8, 16, 16)).astype(np.float32) * (i + 1)
        rows.append((label, summarize(x), summarize(x / 2)))
    return rows


SIMPLE = [
    (
        "x.npy",
        summarize(np.array([[0.0, 1.0], [2.0, 12345.678]])),
        summarize(np.array([[0.0, 0.5], [1.0, np.nan]], dtype=np.float32)),
    )
]


@pytest.mark.parametrize("width", [100, 80])
def test_single_input_table(width):
    out = render(stats_table(SIMPLE, title=TITLE), width)
    assert TITLE.split(",")[0] in out and "beta=0.75" in out
    assert "x.npy" in out and "2×2" in out and "float64" in out and "float32" in out
    assert "1.235e+04" in out  # 4 significant digits
    assert "3087" in out  # the mean 3087.17
    assert "total" not in out
    for header in ("min", "max", "mean", "std", "zeros", "nan/inf", "histogram"):
        assert header in out


def test_numbers_are_formatted_to_four_significant_digits():
    s = summarize(np.array([1234.5678, 0.000123456]))
    out = render(stats_table([("a", s, None)], title="t"))
    line = next(li for li in out.splitlines() if li.startswith("a "))
    assert "1235" in line and "0.0001235" in line and "617.3" in line


def test_wide_layout_rows_are_aligned_lines():
    out = render(stats_table(SIMPLE, title=TITLE), 100)
    lines = out.splitlines()
    header = next(li for li in lines if li.startswith("input"))
    before = next(li for li in lines if li.startswith("x.npy"))
    after = next(li for li in lines if "↳ after" in li)
    # right-justified numbers: the 'max' column ends at the same place on every line
    end = header.index("max") + len("max")
    assert before[:end].endswith("1.235e+04") and after[:end].endswith("1")
    assert before[end] == " " and after[end] == " "
    assert all(len(li) <= 100 for li in lines)


def test_counts_use_thousands_separators_and_nonfinite_is_shown():
    x = np.zeros(12345)
    x[:1001] = np.nan
    out = render(stats_table([("z", summarize(x), None)], title="t"))
    assert "11,344" in out and "1,001" in out


def test_nonfinite_is_red_only_when_nonzero():
    x = np.array([1.0, np.inf])
    console = Console(file=io.StringIO(), width=100, color_system="standard", force_terminal=True)
    console.print(stats_table([("a", summarize(x), summarize(np.ones(2)))], title="t"))
    out = console.file.getvalue()
    assert "\x1b[1;31m" in out
    red_cells = out.count("\x1b[1;31m")
    assert red_cells == 1  # the 'after' line has no non-finite value


@pytest.mark.parametrize("width", [100, 80])
def test_total_row_for_many_inputs(width):
    rows = rows_of("a.npy", "b.npy", "c.npy")
    out = render(stats_table(rows, title=TITLE), width)
    assert "total" in out and "3 inputs" in out
    for label in ("a.npy", "b.npy", "c.npy"):
        assert label in out
    total = merge([b for _, b, _ in rows])
    assert f"{total.max:.4g}" in out and f"{total.std:.4g}" in out


def test_total_can_be_passed_in():
    rows = rows_of("a", "b")
    t = (summarize(np.array([7777.0])), None)
    out = render(stats_table(rows, title="t", total=t))
    assert "7777" in out


@pytest.mark.parametrize("width", [100, 80])
def test_markup_in_a_label_is_shown_literally(width):
    rows = rows_of("[red]x.npy", "[bold]y[/bold].npy")
    out = render(stats_table(rows, title="t"), width)
    assert "[red]x.npy" in out and "[bold]y[/bold].npy" in out


def test_caption_hint_and_show_after_false():
    hint = "nothing written: add -o FILE to save the result"
    out = render(stats_table(SIMPLE, title="t", caption=hint, show_after=False))
    assert hint in out and "after" not in out


def test_returns_a_table_and_narrow_layout_is_compact():
    table = stats_table(rows_of("a.npy", "b.npy"), title=TITLE)
    assert isinstance(table, Table)
    narrow = render(table, 80)
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert "  before" in narrow and "  after" in narrow
    wide = render(table, 160)
    assert "↳ after" in wide and "  before" not in wide


def test_sparkline_in_table():
    x = np.array([0.0] * 8 + [1.0] * 4 + [2.0] * 2 + [3.0])
    out = render(stats_table([("s", summarize(x, bins=4), None)], title="t"), 120)
    assert "█▄▂▁" in out


def test_sparkline_levels():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7, 8]) == " ▁▂▃▄▅▆▇█"
    assert sparkline([1, 1000]) == "▁█"  # non-empty bins are never blank
    assert sparkline([0, 0, 0]) == "   "
    assert sparkline(None) == ""
    assert sparkline([1] * 16, width=8) == "█" * 8
    assert sparkline([1] * 16, width=11) == "█" * 8  # equal groups, no beat pattern


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=40))
def test_sparkline_properties(hist):
    line = sparkline(hist)
    assert len(line) == len(hist)
    assert set(line) <= set(" ▁▂▃▄▅▆▇█")
    for c, ch in zip(hist, line, strict=True):
        assert (ch == " ") == (c == 0)
    if max(hist):
        assert "█" in line


def test_json_round_trips_with_the_same_numbers():
    rows = rows_of("a.npy", "[red]b.npy")
    params = {"n": 5, "k": 1.0, "alpha": 1e-4, "beta": 0.75}
    doc = json.loads(stats_json(rows, params=params, normalization="lrn"))
    assert doc["normalization"] == "lrn" and doc["params"] == params
    assert [i["label"] for i in doc["inputs"]] == ["a.npy", "[red]b.npy"]
    for item, (_, before, after) in zip(doc["inputs"], rows, strict=True):
        assert item["before"] == before.to_dict()
        assert item["after"]["mean"] == after.mean and item["after"]["std"] == after.std
        assert item["before"]["hist"] == list(before.hist)
    total = merge([b for _, b, _ in rows])
    assert doc["total"]["before"]["mean"] == total.mean
    assert doc["total"]["before"]["count"] == sum(b.count for _, b, _ in rows)


def test_json_single_input_and_missing_values_are_null():
    rows = [("n", summarize(np.array([np.nan])), None)]
    text = stats_json(rows, params={"normalization": "batchnorm"})
    assert "NaN" not in text
    doc = json.loads(text)
    assert doc["normalization"] == "batchnorm" and doc["total"] is None
    assert doc["inputs"][0]["before"]["mean"] is None and doc["inputs"][0]["after"] is None


def test_progress_is_a_no_op_off_a_terminal():
    console = Console(file=io.StringIO(), width=100)
    with progress(console, 10, "normalizing") as bar:
        assert isinstance(bar, NullTracker)
        bar.advance()
        bar.advance(2, nbytes=10**6)
    assert console.file.getvalue() == ""


def test_progress_single_input_is_a_no_op_even_on_a_terminal():
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    with progress(console, 1, "normalizing") as bar:
        assert isinstance(bar, NullTracker)
    assert console.file.getvalue() == ""


def test_progress_on_a_terminal_counts_from_threads():
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    with progress(console, 40, "[red]normalizing") as bar:
        assert isinstance(bar, Tracker)
        workers = [
            threading.Thread(target=lambda: [bar.advance(nbytes=1000) for _ in range(10)])
            for _ in range(4)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        task = bar._bar.tasks[0]
        assert task.completed == 40 and task.fields["nbytes"] == 40_000
    assert "[red]normalizing" in console.file.getvalue()


def test_make_consoles():
    err, out = make_consoles()
    assert err.stderr and not out.stderr and not err.quiet
    err, _ = make_consoles(quiet=True)
    assert err.quiet


def test_layering_render_does_not_import_click():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "normcli"
    for path in (root / "render").glob("*.py"):
        assert "import click" not in path.read_text(), path
    text = (root / "ops" / "summary.py").read_text()
    assert "import click" not in text and "import rich" not in text and "from rich" not in text


def test_compact_layout_without_after_says_values():
    """The stats command has no normalization: its lines are "values", not "before"."""
    s = summarize(np.arange(12.0))
    rows = [("a-long-input-name-that-forces-the-compact-layout.npy", s, None)] * 2
    out = io.StringIO()
    Console(file=out, width=60, color_system=None).print(
        stats_table(rows, title="statistics of the inputs", show_after=False))
    text = out.getvalue()
    assert "  values" in text and "before" not in text


@pytest.mark.parametrize("width", [60, 140])
def test_many_inputs_draw_the_first_ones_and_count_the_rest(width):
    """A dataset's worth of inputs: the table draws max_inputs of them, says how many
    more there are, and its total covers every input (in both layouts)."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 3)) + i for i in range(30)]
    rows = [(f"f{i:02d}.npy", summarize(a), summarize(a / 2)) for i, a in enumerate(arrays)]
    text = render(stats_table(rows, title="demo", max_inputs=20, caption="wrote 30 files"),
                  width)
    assert "f19.npy" in text and "f20.npy" not in text
    assert "10 more inputs not shown (--json lists every one)" in " ".join(text.split())
    assert "30 inputs" in text and "wrote 30 files" in text
    everything = np.concatenate([a.ravel() for a in arrays])
    assert f"{everything.max():.4g}" in text  # the total's max: from the last input
    unlimited = render(stats_table(rows, title="demo"), width)
    assert "f29.npy" in unlimited and "not shown" not in unlimited


def test_compact_heading_keeps_the_shape_of_a_long_path():
    """At 60 columns a long absolute path once pushed the shape out ("16x...")."""
    label = "/home/someone/projects/vision/experiments/2024/sample_data/features/img03_conv1.npy"
    x = np.ones((16, 40, 40), np.float32)
    rows = [(label, summarize(x), summarize(x / 2)), ("b.npy", summarize(x), summarize(x))]
    lines = render(stats_table(rows, title="t"), width=60).splitlines()
    heading = next(li for li in lines if "img03_conv1.npy" in li)
    assert heading.rstrip().endswith("features/img03_conv1.npy  16×40×40  float32")
    assert heading.startswith("…") and len(heading.rstrip()) <= 60


def test_total_row_has_a_histogram_though_the_ranges_differ():
    rows = rows_of("a.npy", "b.npy", "c.npy")  # different ranges
    lines = render(stats_table(rows, title="t"), width=120).splitlines()
    total = next(i for i, li in enumerate(lines) if li.startswith("total"))
    assert any(ch in lines[total] for ch in "▁▂▃▄▅▆▇█")
    assert any(ch in lines[total + 1] for ch in "▁▂▃▄▅▆▇█")
    doc = json.loads(stats_json(rows, params={}))
    assert len(doc["total"]["before"]["hist_edges"]) == len(doc["total"]["before"]["hist"]) + 1


def test_output_to_a_pipe_is_not_wrapped_at_80_columns(tmp_path):
    """Without COLUMNS, stderr to a pipe or file drew 80 columns and wrapped the title."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from normcli.ops.conventions import resolve_lrn

    normcli = Path(sys.executable).with_name("normcli")
    sample = Path(__file__).resolve().parents[2] / "sample_data" / "features" / "img00_conv1.npy"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    args = [normcli, "lrn", sample, "--convention", "pytorch", "--n", "3", "--alpha", "1e-3"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    title = resolve_lrn(convention="pytorch", n=3, alpha=1e-3).describe()
    assert len(title) > 80
    assert result.stderr.splitlines()[0].rstrip() == title
    result = subprocess.run([normcli, "compare", sample], env=env, capture_output=True,
                            text=True, check=True)
    lines = result.stdout.splitlines()
    caption = next(li for li in lines if li.startswith("LRN seed convention"))
    assert len(caption) > 80 and caption.rstrip().endswith("gamma=1, beta=0")  # one line
    table = lines[[li.rstrip() for li in lines].index("LRN and BN side by side"):]
    assert max(len(li.rstrip()) for li in table) < 110  # at its natural width, not 1000
