"""Hints on stderr for inputs probably read the wrong way: (H, W, C) arrays, an image as a batch."""

from __future__ import annotations

import numpy as np
from PIL import Image

from normcli import runs


def _hints(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("hint: ")]


def _photo_hwc(sample_data):
    return np.asarray(Image.open(sample_data / "images" / "landscape_rgb8.png"))  # (128, 128, 3)


def test_an_image_saved_channels_last_gets_a_hint(invoke, save, sample_data):
    save("hwc.npy", _photo_hwc(sample_data))
    result = invoke("lrn", "hwc.npy", "-o", "hwc.png")
    assert result.exit_code == 0, result.stderr
    assert _hints(result) == ["hint: hwc.npy has shape (128, 128, 3), read as 128 channels of "
                              "128×3 (channels first); if it is an image stored (H, W, C), pass "
                              "--channels-last"]
    assert _hints(invoke("lrn", "hwc.npy", "--channels-last")) == []
    assert invoke("lrn", "hwc.npy", "-q").stderr == ""


def test_feature_maps_and_images_get_none(invoke, sample_data):
    for path in (sample_data / "features", sample_data / "images" / "landscape_rgb8.png"):
        assert _hints(invoke("lrn", path)) == []
    assert _hints(invoke("batchnorm", sample_data / "features")) == []
    assert _hints(invoke("batchnorm", sample_data / "seed_batch", "--json")) == []


def test_a_single_image_taken_as_a_batch_of_its_channels(invoke, sample_data, save):
    # An image is one sample (of its colour channels), never a batch of its channels:
    # per activation, one sample has no variance, and the error says what to give.
    result = invoke("batchnorm", sample_data / "images" / "landscape_rgb8.png")
    assert result.exit_code == 1
    assert "give more inputs, --per channel (statistics over its pixels), or --stats" in (
        result.stderr)
    # the same pixels stored as a (3, H, W) array are taken as a batch of 3: the hint says so
    from PIL import Image

    with Image.open(sample_data / "images" / "landscape_rgb8.png") as im:
        save("rgb.npy", np.asarray(im).transpose(2, 0, 1).astype(np.float32))
    result = invoke("batchnorm", "rgb.npy")
    assert result.exit_code == 0, result.stderr
    (hint,) = _hints(result)
    assert "is the only input, so its first axis is the batch: its 3 channels are the " \
        "samples (each of shape 128×128)" in hint
    # an (N, C, H, W) batch in one file is what the rule is for: no hint
    assert _hints(invoke("batchnorm", sample_data / "seed_inter.npy")) != []
    (hint,) = _hints(invoke("batchnorm", sample_data / "seed_inter.npy", "--json"))
    assert "its 4 channels are the samples" in hint


def test_streamed_batch_of_channels_last_arrays_names_the_first(tmp_path, sample_data):
    photo = _photo_hwc(sample_data)
    for i in range(3):
        np.save(tmp_path / f"p{i}.npy", photo)
    report = runs.batchnorm([tmp_path], jobs=2)
    assert report.hints == [f"{tmp_path / 'p0.npy'} has shape (128, 128, 3), read as 128 "
                            "channels of 128×3 (channels first); if it is an image stored "
                            "(H, W, C), pass --channels-last (2 more inputs like it)"]
    assert runs.batchnorm([tmp_path], channels_last=True).hints == []
    batch = np.stack([photo.transpose(2, 0, 1)] * 2)
    np.save(tmp_path / "batch.npy", batch)
    assert runs.batchnorm([tmp_path / "batch.npy"]).hints == []
