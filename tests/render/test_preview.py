"""--preview FILE.png: colour scale, layout, pixels, and the option on lrn, batchnorm, compare."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from normcli import lrn
from normcli.ops.explain import SEED_INTER
from normcli.render.preview import (
    MIN_PANEL,
    PreviewRecorder,
    diverging_colors,
    layout_preview,
    render_preview,
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
        [0, 0, 0], [5, 48, 97], [103, 0, 31]]


def test_split_samples_layouts():
    assert [i.label for i in split_samples("b", {"x": np.zeros((7, 2, 3, 3))})] == [
        "b[0]", "b[1]", "b[2]"]
    item, = split_samples("m", {"x": np.zeros((5, 6))})
    assert item.channels == (0,) and item.maps["x"].shape == (1, 5, 6)
    item, = split_samples("cl", {"x": np.zeros((5, 6, 9))}, channels_last=True)
    assert item.channels == (0, 1, 2, 3) and item.maps["x"].shape == (4, 5, 6)


def test_layout_panels_and_labels():
    layout = layout_preview(seed_items(), STAGES, title=TITLE, subtitle=SUBTITLE)
    assert (layout.width, layout.height) == (605, 403)
    assert [(p.stage, p.channel) for p in layout.panels] == [
        (s, c) for s in STAGES for c in range(4)]
    first = layout.panels[0]
    assert first.box == (63, 99, 159, 195)  # 3x3 maps enlarged 32 times: 96 px
    assert first.zoom == 32 and first.box[2] - first.box[0] >= MIN_PANEL
    assert [p.label for p in layout.panels] == [
        "-4 .. 3", "0 .. 4", "0 .. 3", "0 .. 5", "-0.16 .. 1", "0 .. 0.5", "0 .. 0.5", "0 .. 1"]
    assert layout.panels[4].scale == 1.0 and layout.panels[0].scale == 4.0
    texts = [t.text for t in layout.texts]
    for wanted in (TITLE, SUBTITLE, "seed_inter.npy", "before", "after", "channel 0",
                   "channel 3", "-max|v|", "+max|v|"):
        assert wanted in texts
    # panels do not overlap, and everything is inside the image
    boxes = [p.box for p in layout.panels]
    for a in boxes:
        assert 0 < a[0] < a[2] <= layout.width and 0 < a[1] < a[3] <= layout.height
        assert sum(not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])
                   for b in boxes) == 1


def test_pixels_are_stable():
    image = render_preview(seed_items(), STAGES, title=TITLE, subtitle=SUBTITLE)
    assert image.mode == "RGB" and image.size == (605, 403)
    pixels = np.asarray(image)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == (
        "bac6e4e323fdcf406d7dc33661183620bce80beb06678ecc34b7d9cd1b0b744a")
    # the panel of before/channel 2 at (row 0, col 1) holds 0: white
    x0, y0 = 275, 99
    assert pixels[y0 + 16, x0 + 32 + 16].tolist() == [255, 255, 255]


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
    assert "preview: wrote p.png (605x403 px)" in result.stderr
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (605, 403)
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
        assert im.size == (605, 979)  # three samples, before over after
    result = invoke("compare", sample_data / "seed_inter.npy", "--preview", "c.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == (605, 641)  # before, LRN inter, LRN intra, BN


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
