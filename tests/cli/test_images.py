"""The command line over a folder of photos: dataset statistics, keep going, what is said."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from clihelp import one_line_error
from PIL import Image

from normcli.files.images import read_image


def _photo(path, h, w, seed, mode="RGB", **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).convert(mode).save(path, **save)


@pytest.fixture
def photos(tmp_path):
    for i, (h, w) in enumerate([(12, 9), (7, 15), (10, 10)]):
        _photo(tmp_path / "photos" / f"im{i}.jpg", h, w, i)
    _photo(tmp_path / "photos" / "sub" / "deep.png", 5, 6, 9)
    (tmp_path / "photos" / "readme.txt").write_text("x")
    return tmp_path / "photos"


def test_stats_per_channel_is_the_result_on_stdout(invoke, photos):
    result = invoke("stats", "photos", "-r", "--per", "channel")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "# per-channel statistics of 4 inputs, 343 pixels per channel"
    assert lines[1].split() == ["channel", "pixels", "mean", "std", "std", "(n-1)", "min",
                                "max", "nan/inf"]
    assert [line.split()[0] for line in lines[2:5]] == ["R", "G", "B"]
    assert lines[5].startswith("transforms.Normalize(mean=[")
    assert result.stderr == "normcli: skipped, in the input folders: 1 .txt file\n"


def test_stats_json_and_save_stats_feed_batchnorm(invoke, photos, tmp_path):
    result = invoke("stats", "photos", "-r", "--per", "channel", "--json", "--save-stats",
                    "s.npz")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    every = np.concatenate([read_image(p).colour.reshape(3, -1).astype(np.float64)
                            for p in sorted(photos.rglob("*.*")) if p.suffix != ".txt"], 1)
    np.testing.assert_allclose(doc["mean"], every.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(doc["std"], every.std(axis=1), rtol=1e-12)
    assert [c["name"] for c in doc["channels"]] == ["R", "G", "B"] and doc["images"] == 4
    with np.load(tmp_path / "s.npz") as npz:
        saved = dict(npz)
    assert str(saved["per"]) == "channel" and int(saved["count"]) == every.shape[1]
    result = invoke("batchnorm", "photos", "-r", "--stats", "s.npz", "-o", "normed/",
                    "--format", "tif", "-q")
    assert result.exit_code == 0, result.stderr
    y = read_image(tmp_path / "normed" / "sub" / "deep.tif").colour
    x = read_image(photos / "sub" / "deep.png").colour.astype(np.float64)
    want = (x - saved["mean"][:, None, None]) / np.sqrt(saved["var"][:, None, None] + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_keep_going_reports_each_failure_and_exits_1(invoke, photos, tmp_path):
    (photos / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    result = invoke("stats", "photos", "--per", "channel")
    assert one_line_error(result).startswith("normcli: error: photos/bad.jpg: ")
    result = invoke("lrn", "photos", "-o", "out/", "--keep-going", "-q")
    assert result.exit_code == 1
    err = result.stderr.splitlines()
    assert err[0].startswith("normcli: skipped, in the input folders: ")
    assert err[1].startswith("normcli: error: photos/bad.jpg: ")
    assert err[2] == "normcli: 1 of 4 inputs failed; the others were processed and written"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.png", "im1.png",
                                                                     "im2.png"]


def test_subfolders_not_ignored_without_a_word(invoke, photos):
    result = invoke("stats", "photos", "-q")
    assert result.stderr == ("normcli: skipped, in the input folders: 1 .txt file, 1 subfolder "
                             "(use -r to include it)\n")


def test_notes_name_the_inputs(invoke, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    _photo(tmp_path / "r.jpg", 4, 6, 1, exif=exif.tobytes())
    result = invoke("stats", "r.jpg")
    assert result.exit_code == 0
    assert result.stderr == ("normcli: note: EXIF orientation 8 (rotated 90° counter-clockwise) "
                             "left as stored: the pixels are not rotated: r.jpg\n")


def test_stdin_image(invoke, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 5, 3), 51, np.uint8)).save(buf, "PNG")
    result = invoke("stats", "-", "--per", "channel", "--json", input=buf.getvalue())
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["mean"] == [float(np.float32(51) / np.float32(255))] * 3


def test_files_from_nul_separated(invoke, photos):
    listing = b"photos/im0.jpg\0photos/sub/deep.png\0"
    result = invoke("stats", "--files-from", "-", "-0", "--per", "channel", "--json",
                    input=listing)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 2
