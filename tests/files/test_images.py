"""Reading images of every format: values, modes, alpha, oddities, and refusals."""

from __future__ import annotations

import io
import struct
from collections import Counter

import numpy as np
import pytest
import tifffile
from PIL import Image

from normcli.errors import InputError
from normcli.files.images import decode_image, image_histogram, read_image, sniff, to_gray
from normcli.files.pixels import PixelMap, encode_image, to_pixels
from normcli.files.tiff import encode_tiff

RNG = np.random.default_rng(7)
RGBA = (RNG.random((12, 17, 4)) * 255).astype(np.uint8)


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _pillow_says(data: bytes, mode: str) -> np.ndarray:
    """What Pillow itself decodes, as (C, H, W) in ``mode``."""
    with Image.open(io.BytesIO(data)) as im:
        a = np.asarray(im.convert(mode))
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


@pytest.mark.parametrize("fmt, mode, colour", [
    ("PNG", "RGB", "RGB"), ("PNG", "L", "L"), ("PNG", "P", "RGB"),
    ("JPEG", "RGB", "RGB"), ("JPEG", "L", "L"), ("WEBP", "RGB", "RGB"),
    ("BMP", "RGB", "RGB"), ("BMP", "L", "L"), ("GIF", "P", "RGB"), ("TIFF", "RGB", "RGB"),
])
def test_every_format_reads_the_pixels_pillow_decodes(fmt, mode, colour):
    data = _save(Image.fromarray(RGBA[..., :3]).convert(mode), fmt,
                 **({"lossless": True} if fmt == "WEBP" else {}))
    d = decode_image(data, raw=True)
    np.testing.assert_array_equal(d.colour, _pillow_says(data, colour))
    assert d.alpha is None
    scaled = decode_image(data)
    assert scaled.colour.dtype == np.float32 and scaled.full == 1.0
    np.testing.assert_array_equal(scaled.colour, d.colour / np.float32(255))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_alpha_is_apart_and_can_be_a_channel(fmt):
    data = _save(Image.fromarray(RGBA, "RGBA"), fmt, **({"lossless": True} if fmt == "WEBP"
                                                         else {}))
    d = decode_image(data, raw=True)
    want = _pillow_says(data, "RGBA")
    np.testing.assert_array_equal(d.colour, want[:3])
    np.testing.assert_array_equal(d.alpha, want[3])
    both = decode_image(data, raw=True, with_alpha=True)
    np.testing.assert_array_equal(both.colour, want)
    assert both.alpha is None


def test_la_palette_and_one_bit():
    la = _save(Image.fromarray(RGBA[..., :2], "LA"), "PNG")
    d = decode_image(la, raw=True)
    assert d.colour.shape == (1, 12, 17) and d.alpha.shape == (12, 17)
    pal = Image.fromarray(RGBA[..., 0] // 32).convert("P")
    pal.info["transparency"] = 0
    d = decode_image(_save(pal, "PNG", transparency=0), raw=True)
    assert d.colour.shape[0] == 3 and d.alpha is not None and d.alpha.min() == 0
    bit = _save(Image.fromarray(RGBA[..., 0] > 128).convert("1"), "PNG")
    d = decode_image(bit, raw=True)
    assert set(np.unique(d.colour)) <= {0, 255} and d.mode == "1"


def test_cmyk_jpeg_has_four_channels_and_converts_like_pillow():
    data = _save(Image.fromarray(RGBA[..., :3]).convert("CMYK"), "JPEG", quality=95)
    d = decode_image(data, raw=True)
    assert d.mode == "CMYK" and d.colour.shape == (4, 12, 17)
    np.testing.assert_array_equal(decode_image(data, raw=True, color="rgb").colour,
                                  _pillow_says(data, "RGB"))
    gray = decode_image(data, raw=True, color="gray").colour
    np.testing.assert_array_equal(gray, to_gray(_pillow_says(data, "RGB")))


def test_progressive_jpeg():
    data = _save(Image.fromarray(RGBA[..., :3]), "JPEG", progressive=True, quality=90)
    assert decode_image(data).notes == ()
    np.testing.assert_array_equal(decode_image(data, raw=True).colour, _pillow_says(data, "RGB"))


def test_exif_orientation_left_as_stored_and_said_so():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _save(Image.fromarray(RGBA[..., :3]), "JPEG", exif=exif.tobytes())
    d = decode_image(data, raw=True)
    assert d.colour.shape == (3, 12, 17)  # not rotated to 17 x 12
    assert d.notes == ("EXIF orientation 6 (rotated 90° clockwise) left as stored: the pixels "
                       "are not rotated",)


def test_gray_luma_is_pillows_exactly():
    rgb = (RNG.random((3, 40, 40)) * 255).astype(np.uint8)
    pil = np.asarray(Image.fromarray(rgb.transpose(1, 2, 0)).convert("L"))
    np.testing.assert_array_equal(to_gray(rgb)[0], pil)
    data = _save(Image.fromarray(rgb.transpose(1, 2, 0)), "PNG")
    np.testing.assert_array_equal(decode_image(data, raw=True, color="gray").colour[0], pil)
    gray = _save(Image.fromarray(rgb[0]), "PNG")
    d = decode_image(gray, raw=True, color="rgb").colour
    assert d.shape == (3, 40, 40) and (d == rgb[0]).all()


def test_tiff_16_bit_colour_float_multichannel_and_pages():
    rgb16 = (RNG.random((2, 9, 11, 3)) * 65535).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgb16, photometric="rgb", compression="lzw")
    for page in (0, 1):
        d = decode_image(buf.getvalue(), raw=True, page=page)
        assert d.mode == "RGB;16"
        np.testing.assert_array_equal(d.colour, rgb16[page].transpose(2, 0, 1))
    scaled = decode_image(buf.getvalue(), page=1)
    np.testing.assert_array_equal(scaled.colour,
                                  rgb16[1].transpose(2, 0, 1) / np.float32(65535))
    assert decode_image(buf.getvalue()).notes == ("TIFF of 2 pages: page 0 read",)
    floats = RNG.standard_normal((5, 9, 11)).astype(np.float32)
    buf = io.BytesIO()
    tifffile.imwrite(buf, floats, photometric="minisblack", planarconfig="separate")
    d = decode_image(buf.getvalue())
    assert d.full is None and d.mode == "5 samples;F32"
    np.testing.assert_array_equal(d.colour, floats)


def test_tiff_written_keeps_values_and_alpha():
    x = RNG.standard_normal((3, 6, 7)).astype(np.float32)
    alpha = RNG.random((6, 7)).astype(np.float32)
    d = decode_image(encode_tiff(x, alpha))
    np.testing.assert_array_equal(d.colour, x)
    np.testing.assert_array_equal(d.alpha, alpha)


def test_tiff_bomb_and_missing_strips_refused_before_decoding():
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((8, 8), np.uint8))
    data = bytearray(buf.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = tif.pages[0].tags
        width_at = tags["ImageWidth"].valueoffset
        length_at = tags["ImageLength"].valueoffset
        dtype = tags["ImageWidth"].dtype
        offsets_at = tags["StripOffsets"].valueoffset
    fmt = "<I" if int(dtype) == 4 else "<H"
    bomb = bytearray(data)
    struct.pack_into(fmt, bomb, width_at, 60000)
    struct.pack_into(fmt, bomb, length_at, 60000)
    with pytest.raises(InputError, match="over the limit|decompression-bomb"):
        decode_image(bytes(bomb), source="bomb.tif")
    cut = bytearray(data)
    struct.pack_into("<I", cut, offsets_at, len(data) + 100)
    with pytest.raises(InputError, match="truncated TIFF"):
        decode_image(bytes(cut), source="cut.tif")


def test_tiff_of_complex_samples_is_the_files_error_not_a_crash():
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((4, 4), np.complex64))
    with pytest.raises(InputError, match="c.tif: .*complex64"):
        decode_image(buf.getvalue(), source="c.tif")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_truncated_files_are_errors_never_padded(fmt):
    im = Image.fromarray((RNG.random((64, 64, 3)) * 255).astype(np.uint8))
    data = _save(im, fmt)
    with pytest.raises(InputError):
        decode_image(data[: len(data) // 2], source="t")


def test_jpeg_over_pillows_bomb_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = _save(Image.fromarray(RGBA[..., :3]), "JPEG")
    with pytest.raises(InputError, match="decompression-bomb limit of 100 pixels"):
        decode_image(data, source="big.jpg")


def test_a_file_named_for_another_type_is_read_and_said_so(tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_bytes(_save(Image.fromarray(RGBA[..., :3]), "PNG"))
    d = read_image(p, raw=True)
    assert d.notes == ("a PNG file named as JPEG",)
    np.testing.assert_array_equal(d.colour, RGBA[..., :3].transpose(2, 0, 1))


def test_special_files_refused(tmp_path):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_image(fifo)


def test_sniff():
    assert sniff(b"\x93NUMPY\x01\x00") == "npy"
    assert sniff(b"PK\x03\x04") == "npz"
    assert sniff(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff(b"II*\x00") == sniff(b"MM\x00*") == "tiff"
    assert sniff(b"GIF89a") == "gif" and sniff(b"BM....") == "bmp"


def test_histogram_route_counts_what_decoding_reads():
    for im, fmt in [(Image.fromarray(RGBA, "RGBA"), "PNG"),
                    (Image.fromarray(RGBA[..., :3]), "JPEG"),
                    (Image.fromarray(RGBA[..., 0]).convert("P"), "GIF")]:
        data = _save(im, fmt)
        for color in (None, "gray", "rgb"):
            counts, _, _ = image_histogram(data, color=color)
            stored = decode_image(data, raw=True, color=color).colour
            want = np.stack([np.bincount(c.ravel(), minlength=256) for c in stored])
            np.testing.assert_array_equal(counts, want)


def test_pixel_mappings():
    x = np.array([[[0.0, 0.25, 1.0, 1.5, -1.0, np.nan]]])
    assert to_pixels(x, PixelMap("input")).tolist() == [[[0, 64, 255, 255, 0, 0]]]
    assert to_pixels(x * 255, PixelMap("input", 255.0)).tolist() == [[[0, 64, 255, 255, 0, 0]]]
    assert to_pixels(np.array([[[-3.0, 0.0, 3.0, 9.0]]]), PixelMap("centred"), 16).tolist() == \
        [[[0, 32768, 65535, 65535]]]
    assert to_pixels(np.array([[[2.0, 4.0]]]), PixelMap("stretch")).tolist() == [[[0, 255]]]


def test_an_image_output_equal_to_its_input_is_the_same_picture_alpha_included():
    data = _save(Image.fromarray(RGBA, "RGBA"), "PNG")
    d = decode_image(data)
    out = encode_image(d.colour, suffix=".png", mapping=PixelMap("input"), alpha=d.alpha)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out))), RGBA)
    raw = decode_image(data, raw=True)
    out16 = encode_image(raw.colour.astype(np.float32), suffix=".png", bits=16,
                         mapping=PixelMap("input", 255.0), alpha=raw.alpha, alpha_full=255.0)
    back = decode_image(out16, raw=True)
    want = RGBA[..., :3].transpose(2, 0, 1).astype(np.uint16) * 257
    np.testing.assert_array_equal(back.colour, want)
    np.testing.assert_array_equal(back.alpha, RGBA[..., 3].astype(np.uint16) * 257)


COUNTS: Counter = Counter()  # (added to the run's robustness summary by conftest)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "WEBP", "BMP", "GIF", "PNG"])
def test_mutated_images_are_read_or_refused_in_one_line(fmt):
    """Flipped, deleted and inserted bytes: every outcome is an image or an InputError."""
    rng = np.random.default_rng(11)
    im = Image.fromarray((rng.random((24, 20, 3)) * 255).astype(np.uint8))
    good = _save(im, fmt, **({"compression": "tiff_lzw"} if fmt == "TIFF" else {}))
    for trial in range(150):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, len(data)))
            what = trial % 3
            if what == 0:
                data[at] ^= 1 << int(rng.integers(0, 8))
            elif what == 1:
                del data[at: at + int(rng.integers(1, 64))]
            else:
                data[at:at] = rng.integers(0, 256, int(rng.integers(1, 16)),
                                           dtype=np.uint8).tobytes()
        COUNTS[f"mutated {fmt}"] += 1
        try:
            d = decode_image(bytes(data), source="m")
        except InputError as e:
            assert "\n" not in str(e) and str(e).startswith("m: ")
        else:
            assert d.colour.ndim == 3 and d.colour.dtype == np.float32
