"""Runs over images: mixed sizes, alpha carried through, pixel mappings, keep going."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from normcli import runs
from normcli.errors import InputError
from normcli.files.images import read_image


def _photo(path, h, w, seed, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    a = (rng.random((h, w, 4)) * 255).astype(np.uint8)
    im = Image.fromarray(a, "RGBA").convert(mode) if mode != "RGBA" else Image.fromarray(a, "RGBA")
    im.save(path)
    return path


@pytest.fixture
def mixed(tmp_path):
    d = tmp_path / "photos"
    for i, (h, w) in enumerate([(5, 7), (9, 4), (3, 3), (8, 11)]):
        _photo(d / f"p{i}.png", h, w, i)
    return d


def _pixels(paths):
    return [read_image(p).colour.reshape(3, -1).astype(np.float64) for p in paths]


def test_dataset_statistics_weigh_every_pixel_equally(mixed):
    report = runs.stats([mixed], per="channel")
    every = np.concatenate(_pixels(sorted(mixed.iterdir())), axis=1)
    s = report.dataset
    np.testing.assert_allclose(s.mean, every.mean(axis=1), rtol=1e-12, atol=0)
    np.testing.assert_allclose(s.std, every.std(axis=1), rtol=1e-12, atol=0)
    np.testing.assert_allclose(s.std_unbiased, every.std(axis=1, ddof=1), rtol=1e-12, atol=0)
    assert s.images == 4 and s.count.tolist() == [every.shape[1]] * 3
    assert s.channel_names() == ["R", "G", "B"]


def test_batchnorm_per_channel_over_mixed_sizes(mixed, tmp_path):
    out = tmp_path / "out"
    report = runs.batchnorm([mixed], per="channel", output=f"{out}/", out_format="npy")
    paths = sorted(mixed.iterdir())
    every = np.concatenate(_pixels(paths), axis=1)
    mean, var = every.mean(axis=1), every.var(axis=1)
    np.testing.assert_allclose(report.stats.mean, mean, rtol=1e-12)
    for p in paths:
        x = read_image(p).colour.astype(np.float64)
        want = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
        np.testing.assert_allclose(np.load(out / (p.stem + ".npy")), want, rtol=1e-5,
                                   atol=1e-5)


def test_per_activation_needs_one_shape_and_says_so(mixed):
    with pytest.raises(InputError, match=r"per-activation statistics need one shape \(use "
                                         r"--per channel"):
        runs.batchnorm([mixed], per="activation")


def test_mixed_gray_and_colour_refused_naming_both(tmp_path):
    d = tmp_path / "d"
    _photo(d / "a.png", 4, 4, 0)
    _photo(d / "b.png", 4, 4, 1, mode="L")
    with pytest.raises(InputError) as e:
        runs.stats([d], per="channel")
    assert str(e.value) == (f"{d}/b.png: has 1 channel (L) but {d}/a.png has 3 channels (RGB); "
                            "give --color rgb or --color gray to convert every image first")
    assert runs.stats([d], per="channel", color="gray").dataset.channels == 1
    assert runs.stats([d], per="channel", color="rgb").dataset.channels == 3


def test_alpha_carried_through_outputs(tmp_path):
    src = _photo(tmp_path / "in" / "a.png", 6, 5, 3, mode="RGBA")
    alpha = np.asarray(Image.open(src))[..., 3]
    for run in (runs.lrn, runs.batchnorm):
        out = tmp_path / run.__name__
        kwargs = {"per": "channel"} if run is runs.batchnorm else {}
        run([src], output=f"{out}/", **kwargs)
        with Image.open(out / "a.png") as im:
            assert im.mode == "RGBA"
            np.testing.assert_array_equal(np.asarray(im)[..., 3], alpha)
    stats = runs.stats([src], per="channel").dataset
    assert stats.channels == 3
    assert runs.stats([src], per="channel", include_alpha=True).dataset.channel_names() == [
        "R", "G", "B", "alpha"]


def test_default_pixel_mappings_and_the_report_says(tmp_path):
    src = _photo(tmp_path / "in" / "a.png", 6, 5, 4)
    x = np.asarray(Image.open(src))
    report = runs.lrn([src], output=f"{tmp_path}/lrn/", k=1.0, alpha=0.0, beta=1.0)
    assert report.pixels == ["PNG pixels: input scale, 0..1 → 0..255"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "lrn" / "a.png")), x)
    report = runs.batchnorm([src], output=f"{tmp_path}/bn/", per="channel")
    assert report.pixels == ["PNG pixels: centred, -3..3 → 0..255 (0 is 128)"]
    y = np.asarray(Image.open(tmp_path / "bn" / "a.png")).astype(float)
    assert abs(y.mean() - 127.5) < 3  # zero-mean results: mid-gray on average
    report = runs.lrn([src], output=f"{tmp_path}/s/", pixels="stretch")
    assert report.pixels == ["PNG pixels: stretch, each channel's min..max → 0..255"]
    report = runs.lrn([src], output=f"{tmp_path}/t/", out_format="tif")
    assert report.pixels == ["TIFF: the values, float32"]
    assert read_image(tmp_path / "t" / "a.tif").colour.dtype == np.float32


def test_jpeg_inputs_give_png_outputs(tmp_path):
    src = _photo(tmp_path / "in" / "a.jpg", 6, 5, 5)
    report = runs.lrn([src], output=f"{tmp_path}/out/")
    assert report.written == [f"{tmp_path}/out/a.png"]


def test_keep_going_skips_bad_inputs_and_writes_the_good(mixed, tmp_path):
    (mixed / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (mixed / "zz.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError, match="p1.png"):
        runs.lrn([mixed], output=f"{tmp_path}/none/")
    assert not (tmp_path / "none").exists()  # all or nothing
    report = runs.lrn([mixed], output=f"{tmp_path}/out/", keep_going=True)
    assert [f.label for f in report.failures] == [f"{mixed}/p1.png", f"{mixed}/zz.jpg"]
    assert report.failed_text == "2 of 5 inputs failed"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p2.png",
                                                                     "p3.png"]
    assert len(report.written) == 3
    stats = runs.stats([mixed], per="channel", keep_going=True)
    assert stats.dataset.images == 3 and len(stats.failures) == 2
    bn = runs.batchnorm([mixed], per="channel", output=f"{tmp_path}/bn/", keep_going=True)
    assert len(bn.failures) == 2 and len(bn.inputs) == 3
    every = np.concatenate(_pixels([mixed / f"p{i}.png" for i in (0, 2, 3)]), axis=1)
    np.testing.assert_allclose(bn.stats.mean, every.mean(axis=1), rtol=1e-12)


def test_skipped_entries_are_in_the_report(mixed):
    (mixed / "labels.csv").write_text("x")
    (mixed / "sub").mkdir()
    report = runs.stats([mixed])
    assert report.skipped == {".csv files": 1, "subfolders (use -r to include them)": 1}


def test_resume_skips_what_an_earlier_run_did(mixed, tmp_path):
    from normcli.errors import UsageError

    with pytest.raises(UsageError, match="--resume needs -o DIR/"):
        runs.lrn([mixed], output=f"{tmp_path}/x.npz", resume=True)
    with pytest.raises(UsageError, match="--resume needs work done input by input"):
        runs.batchnorm([mixed], per="channel", output=f"{tmp_path}/o/", resume=True)
    saved = tmp_path / "s.npz"
    runs.stats([mixed], per="channel", save_stats=saved)
    out = f"{tmp_path}/bn/"
    first = runs.batchnorm([mixed], stats=saved, output=out, resume=True)
    assert len(first.written) == 4 and first.resumed == 0
    (tmp_path / "bn" / "p2.png").unlink()  # as if the run had stopped before it
    again = runs.batchnorm([mixed], stats=saved, output=out, resume=True)
    assert again.resumed == 3 and again.written == [f"{tmp_path}/bn/p2.png"]
    assert runs.batchnorm([mixed], stats=saved, output=out, resume=True).written == []
    import os
    os.utime(mixed / "p1.png", ns=(1, 1))  # an input that changed is redone
    assert runs.batchnorm([mixed], stats=saved, output=out, resume=True).written == [
        f"{tmp_path}/bn/p1.png"]


def test_notes_keep_a_few_labels_and_count_all(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 3
    for i in range(5):
        a = (np.random.default_rng(i).random((4, 4, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(tmp_path / f"r{i}.jpg", exif=exif.tobytes())
    for report in (runs.stats([tmp_path], per="channel"), runs.lrn([tmp_path]),
                   runs.batchnorm([tmp_path], per="channel")):
        ((note, labels),) = report.notes.items()
        assert note.startswith("EXIF orientation 3 (rotated 180°)")
        assert labels == [f"{tmp_path}/r{i}.jpg" for i in range(3)]
        assert report.notes.total(note) == 5
