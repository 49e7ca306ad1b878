"""--preview FILE.png: colour scale, layout, pixels, and the option on lrn, batchnorm, compare."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from clihelp import usage_error
from PIL import Image

from normcli import lrn
from normcli.errors import ParameterError
from normcli.ops.explain import SEED_INTER
from normcli.render.preview import (
    MIN_PANEL,
    PreviewRecorder,
    diverging_colors,
    layout_preview,
    render_preview,
    sequential_colors,
    split_samples,
)

TITLE, SUBTITLE = "LRN inter-channel, seed convention", "window c-1..c+1"
STAGES = ("before", "after")


def seed_items():
    x = SEED_INTER.astype(np.float64)
    return split_samples("seed_inter.npy", {"before": x, "after": lrn(x, k=0, alpha=1, beta=1,
                                                                        n=2)})


def test_colour_scale_is_symmetric_with_white_zero():
    v = np.linspace(-1, 1, 255)
    rgb = diverging_colors(v, 1.0).astype(int)
    assert rgb[127].tolist() == [255, 255, 255]
    # mirror images: blue and red sides equally dark, red dominant above 0
    assert np.all(rgb[128:, 0] >= rgb[128:, 2]) and np.all(rgb[:127, 2] >= rgb[:127, 0])
    light = rgb.sum(axis=1)  # lighter towards 0 on both sides
    assert np.all(np.diff(light[:128]) >= 0) and np.all(np.diff(light[127:]) <= 0)
    # the scale is relative: v and 10v on 1 and 10 give the same colours
    assert np.array_equal(diverging_colors(v, 1.0), diverging_colors(10 * v, 10.0))
    assert diverging_colors(np.array([np.nan, -np.inf, 5.0]), 1.0).tolist() == [
        [128, 128, 128], [5, 48, 97], [103, 0, 31]]


def test_split_samples_layouts():
    assert [i.label for i in split_samples("b", {"x": np.zeros((7, 2, 3, 3))})] == [
        "b[0]", "b[1]", "b[2]"]
    item, = split_samples("m", {"x": np.zeros((5, 6))})
    assert item.channels == (0,) and item.maps["x"].shape == (1, 5, 6)
    item, = split_samples("cl", {"x": np.zeros((5, 6, 9))}, channels_last=True)
    assert item.channels == (0, 1, 2, 3) and item.maps["x"].shape == (4, 5, 6)


def test_layout_panels_and_labels():
    layout = layout_preview(seed_items(), STAGES, title=TITLE, subtitle=SUBTITLE)
    assert (layout.width, layout.height) == (695, 578)
    rows = [*STAGES, "after - before"]
    assert [(p.stage, p.channel) for p in layout.panels] == [
        (s, c) for s in rows for c in range(4)]
    first = layout.panels[0]
    assert first.box == (111, 99, 207, 195)  # 3x3 maps enlarged 32 times: 96 px
    assert first.zoom == 32 and first.box[2] - first.box[0] >= MIN_PANEL
    assert [p.label for p in layout.panels] == [
        "-4 .. 3", "0 .. 4", "0 .. 3", "0 .. 5", "-0.16 .. 1", "0 .. 0.5", "0 .. 0.5", "0 .. 1",
        "-2.88 .. 3.84", "-3.84 .. 0", "-2.897 .. 0", "-4.8 .. 0"]
    # before and after of a channel share its scale (channel 0 holds -4: diverging)
    assert [(p.scale, p.kind) for p in layout.panels[:8]] == 2 * [
        (4.0, "diverging"), (4.0, "sequential"), (3.0, "sequential"), (5.0, "sequential")]
    assert all(p.kind == "diverging" for p in layout.panels[8:])
    texts = [t.text for t in layout.texts]
    for wanted in (TITLE, SUBTITLE, "seed_inter.npy", "before", "after", "after - before",
                   "channel 0", "channel 3", "-max|v|", "+max|v|", "0", "max"):
        assert wanted in texts
    # panels do not overlap, and everything is inside the image
    boxes = [p.box for p in layout.panels]
    for a in boxes:
        assert 0 < a[0] < a[2] <= layout.width and 0 < a[1] < a[3] <= layout.height
        assert sum(not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])
                   for b in boxes) == 1


def test_pixels_are_stable():
    image = render_preview(seed_items(), STAGES, title=TITLE, subtitle=SUBTITLE)
    assert image.mode == "RGB" and image.size == (695, 578)
    pixels = np.asarray(image)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == (
        "d7ad7e704e84ffff63a2a8302711398ae1cb7791106ce7f6ba0ac59fb340fa14")
    # before/channel 2 (all >= 0: viridis) at (row 0, col 1) holds 0: viridis' dark end
    x0, y0 = 323, 99
    assert pixels[y0 + 16, x0 + 32 + 16].tolist() == [68, 1, 84]
    # before/channel 0 (with -4: diverging) at (row 0, col 1) holds 1 of 4: light red
    x0 = 111
    assert pixels[y0 + 16, x0 + 32 + 16].tolist() == diverging_colors(np.array([0.25]), 1
                                                                      )[0].tolist()


def test_large_maps_are_subsampled_and_many_samples_cut(tmp_path):
    recorder = PreviewRecorder(tmp_path / "p.png", title="t")
    big = np.ones((5, 600, 300))
    for index, label in reversed(list(enumerate("abcd"))):  # out of order, as threads may call it
        recorder.add(label, {"before": big, "after": big}, index)
    assert [i.label for i in recorder.items] == ["a", "b", "c"]
    layout = layout_preview(recorder.items, STAGES, title="t")
    box = layout.panels[0].box
    assert (box[2] - box[0], box[3] - box[1]) == (100, 200) and layout.panels[0].zoom == -3


# --------------------------------------------------------------------------- CLI


def test_lrn_preview(invoke, sample_data, tmp_path):
    result = invoke("lrn", sample_data / "seed_inter.npy", "--k", "0", "--alpha", "1",
                    "--beta", "1", "--n", "2", "--preview", "p.png")
    assert result.exit_code == 0, result.output
    assert "preview: wrote p.png (695x578 px)" in result.stderr
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (695, 578)
    # exists: refused without --force (before any work), replaced with it
    result = invoke("lrn", sample_data / "seed_inter.npy", "--preview", "p.png")
    assert result.exit_code == 1
    assert result.stderr == "normcli: error: p.png: exists (use --force to replace it)\n"
    result = invoke("lrn", sample_data / "seed_inter.npy", "--preview", "p.png", "--force", "-q")
    assert result.exit_code == 0 and result.stderr == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_preview_refusals(invoke, tmp_path):
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    result = invoke("lrn", "in.png", "--preview", "in.png", "--force")
    assert result.exit_code == 1 and "in.png: is also an input" in result.stderr
    result = invoke("lrn", "in.png", "--preview", "out.jpg")
    assert result.exit_code == 2 and "'out.jpg' must end in .png" in result.stderr
    result = invoke("lrn", "in.png", "--preview", "o.png", "-o", "o.png")
    assert result.exit_code == 2 and "is also an output" in result.stderr
    result = invoke("lrn", "in.png", "--preview", "missing/o.png")
    assert result.exit_code == 1 and "directory does not exist" in result.stderr


def test_batchnorm_and_compare_previews(invoke, sample_data, tmp_path):
    result = invoke("batchnorm", sample_data / "seed_batch", "--preview", "bn.png", "-j", "3")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "bn.png") as im:
        assert im.size == (695, 1357)  # three samples: before, after, after - before
    result = invoke("compare", sample_data / "seed_inter.npy", "--preview", "c.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == (695, 1019)  # before, LRN inter, LRN intra, BN and three changes


def test_preview_that_is_an_output_in_the_directory_is_refused(tmp_path):
    """-o DIR/ with --preview DIR/NAME.png of an output: refused before any work."""
    from click.testing import CliRunner
    from PIL import Image

    from normcli.cli.main import cli

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    Image.fromarray(np.full((4, 5), 200, np.uint8)).save(tmp_path / "in" / "p0.png")
    result = CliRunner().invoke(cli, ["lrn", str(tmp_path / "in"), "-o", str(tmp_path / "out") +
                                      "/", "--preview", str(tmp_path / "out" / "p0.png"),
                                      "--force"])
    assert result.exit_code == 2 and "is also an output" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_preview_is_committed_with_the_outputs(tmp_path, monkeypatch):
    """A run that fails after the preview was drawn leaves neither outputs nor preview."""
    from click.testing import CliRunner

    from normcli.cli.main import cli
    from normcli.runs import outputs

    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", np.ones((2, 3, 3), np.float32))

    def fail(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.ResultWriter, "commit", fail)
    result = CliRunner().invoke(cli, ["lrn", str(tmp_path / "in"), "-o", str(tmp_path / "o.npy"),
                                      "--preview", str(tmp_path / "p.png")])
    assert result.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# --------------------------------------------------------------------------- what it shows


def _panels(layout, stage):
    return [p for p in layout.panels if p.stage == stage]


def test_before_and_after_share_a_scale_so_lrn_shows_its_effect():
    """Each panel on its own scale made LRN's before and after look the same."""
    x = np.abs(np.random.default_rng(1).standard_normal((4, 12, 12))) * 3
    y = lrn(x, k=1, alpha=1, beta=0.75, n=3)
    items = split_samples("relu.npy", {"before": x, "after": y})
    shared = layout_preview(items, STAGES, title="t")
    for b, a in zip(_panels(shared, "before"), _panels(shared, "after"), strict=True):
        assert (b.scale, b.kind) == (a.scale, a.kind) == (x[b.channel].max(), "sequential")
    image = np.asarray(render_preview(items, STAGES, title="t")).astype(int)
    box_b, box_a = _panels(shared, "before")[0].box, _panels(shared, "after")[0].box
    crop = [image[b[1]:b[3], b[0]:b[2]].sum(axis=2).mean() for b in (box_b, box_a)]
    assert crop[1] < crop[0]  # after is darker on viridis: the values shrank
    own = layout_preview(items, STAGES, title="t", scale="panel")
    assert [p.scale for p in _panels(own, "after")] == [y[c].max() for c in range(4)]


def test_the_change_panel_is_after_minus_before_on_a_diverging_scale():
    x = SEED_INTER.astype(np.float64)
    y = lrn(x, k=0, alpha=1, beta=1, n=2)
    layout = layout_preview(split_samples("s", {"before": x, "after": y}), STAGES, title="t")
    change = _panels(layout, "after - before")
    assert len(change) == 4 and {p.kind for p in change} == {"diverging"}
    for p in change:
        np.testing.assert_array_equal(layout.maps[("s", p.stage, p.channel)],
                                      y[p.channel] - x[p.channel])
    assert [p.scale for p in change] == [float(np.abs(y - x)[c].max()) for c in range(4)]
    none = layout_preview(split_samples("s", {"before": x, "after": y}), STAGES, title="t",
                          change=False)
    assert _panels(none, "after - before") == []


def test_non_negative_data_gets_a_sequential_map_dark_at_zero():
    """A photo on the diverging map looked like an inverted heat map (0 white)."""
    photo = np.linspace(0, 1, 3 * 10 * 10).reshape(3, 10, 10)
    layout = layout_preview(split_samples("p", {"before": photo, "after": photo / 2}), STAGES,
                            title="t")
    assert {p.kind for p in layout.panels if p.stage in STAGES} == {"sequential"}
    assert [kind for kind, _ in layout.bars] == ["sequential", "diverging"]
    dark, bright = sequential_colors(np.array([0.0, 1.0]), 1.0).astype(int)
    assert dark.sum() < 200 < 500 < bright.sum()


def test_channels_and_samples_are_chosen_over_the_inputs_in_order(tmp_path):
    recorder = PreviewRecorder(tmp_path / "p.png", title="t", channels=[5, 1],
                               samples=[4, 0, 2])
    batch = np.arange(3 * 6 * 2 * 2, dtype=float).reshape(3, 6, 2, 2)
    # inputs of 2, 1 and 3 samples, arriving out of order as from threads
    recorder.add("c", {"before": np.stack([batch] * 1)[0], "after": batch}, 2)
    recorder.add("a", {"before": batch[:2], "after": batch[:2]}, 0)
    recorder.add("b", {"before": batch[0], "after": batch[0]}, 1)
    assert [i.label for i in recorder.items] == ["c[1]", "a[0]", "b"]  # samples 4, 0, 2
    assert recorder.items[0].channels == (5, 1)
    np.testing.assert_array_equal(recorder.items[0].maps["before"], batch[1][[5, 1]])
    assert recorder.total_samples() == 6
    assert sum(len(kept) for kept in recorder._kept.values()) == 3  # nothing else kept


def test_choices_are_checked(tmp_path):
    with pytest.raises(ParameterError, match="channel 6 does not exist: x has 6 channels"):
        PreviewRecorder(tmp_path / "p.png", title="t", channels=[6]).add(
            "x", {"before": np.zeros((6, 2, 2)), "after": np.zeros((6, 2, 2))}, 0)
    for bad in ([], [1, 1], [-1], list(range(17))):
        with pytest.raises(ParameterError) as e:
            PreviewRecorder(tmp_path / "p.png", title="t", channels=bad)
        assert e.value.param == "preview_channels"
    recorder = PreviewRecorder(tmp_path / "p.png", title="t", samples=[3])
    recorder.add("x", {"before": np.zeros((2, 6, 2, 2)), "after": np.zeros((2, 6, 2, 2))}, 0)
    with pytest.raises(ParameterError, match="sample 3 does not exist: the inputs hold 2"):
        recorder.image()


def test_preview_choices_on_the_command_line(invoke, sample_data, tmp_path):
    result = invoke("batchnorm", sample_data / "features", "--preview", "p.png",
                    "--preview-channels", "0,12-14", "--preview-samples", "3,7", "-q")
    assert result.exit_code == 0, result.stderr
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (695, 1094)
    line = usage_error(invoke("lrn", sample_data / "seed_inter.npy", "--preview", "q.png",
                              "--preview-channels", "4"))
    assert line == ("Error: Invalid value for '--preview-channels': channel 4 does not exist: "
                    f"{sample_data / 'seed_inter.npy'} has 4 channels (0..3)")
    line = usage_error(invoke("lrn", sample_data / "features", "--preview", "q.png",
                              "--preview-samples", "12"))
    assert "sample 12 does not exist: the inputs hold 12 samples (0..11)" in line
    assert "give --preview too" in usage_error(
        invoke("lrn", sample_data / "seed_inter.npy", "--preview-samples", "1"))
    assert "is not an index or a range" in usage_error(
        invoke("lrn", sample_data / "seed_inter.npy", "--preview", "q.png",
               "--preview-channels", "a"))
    assert not (tmp_path / "q.png").exists()
    result = invoke("compare", sample_data / "seed_batch", "--preview", "c.png",
                    "--preview-samples", "2", "--preview-scale", "panel")
    assert result.exit_code == 0, result.stderr


def test_compare_change_rows_share_one_scale_per_channel():
    x = SEED_INTER.astype(np.float64)
    stages = ("before", "LRN inter", "BN")
    arrays = {"before": x, "LRN inter": lrn(x, n=2), "BN": (x - x.mean(0)) / (x.std(0) + 1)}
    layout = layout_preview(split_samples("s", arrays), stages, title="t")
    for c in range(4):
        rows = [p for p in layout.panels if p.channel == c and " - " in p.stage]
        assert [p.stage for p in rows] == ["LRN inter - before", "BN - before"]
        assert rows[0].scale == rows[1].scale == max(
            float(np.abs(arrays[s][c] - x[c]).max()) for s in stages[1:])
