"""Tests for normcli.files.png and normcli.files.pngcodec."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from normcli.errors import InputError
from normcli.files.png import (
    encode_png_bytes,
    read_png,
    read_png_bytes,
    rescale_channels,
    to_png_array,
    to_png_image,
)
from normcli.files.pngcodec import PNGFormatError, decode_png, encode_png, parse_chunks

RNG = np.random.default_rng(1234)


def pil_png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def chunk(ctype: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + ctype
        + payload
        + struct.pack(">I", zlib.crc32(ctype + payload))
    )


def set_ihdr(data: bytes, **fields) -> bytes:
    """Rewrite IHDR fields (keeping a valid CRC)."""
    names = ["width", "height", "depth", "colour", "compression", "filter", "interlace"]
    values = dict(zip(names, struct.unpack(">IIBBBBB", data[16:29]), strict=True))
    values.update(fields)
    ihdr = struct.pack(">IIBBBBB", *(values[n] for n in names))
    return data[:8] + chunk(b"IHDR", ihdr) + data[33:]


def with_idat(data: bytes, payload: bytes) -> bytes:
    """Replace the image data by `payload` in one IDAT chunk."""
    return data[:33] + chunk(b"IDAT", payload) + chunk(b"IEND", b"")


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------- reading modes


def test_gray8_float_and_raw(tmp_path):
    a = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    path = write(tmp_path, "g.png", pil_png(Image.fromarray(a)))
    raw = read_png(path, raw=True)
    assert raw.dtype == np.uint8 and raw.shape == (1, 5, 7)
    np.testing.assert_array_equal(raw[0], a)
    f = read_png(path)
    assert f.dtype == np.float32 and f.shape == (1, 5, 7)
    np.testing.assert_allclose(f[0], a / 255.0, rtol=1e-6)
    assert f.min() >= 0 and f.max() <= 1


def test_gray16(tmp_path):
    a = RNG.integers(0, 65536, (6, 4), dtype=np.uint16)
    a[0, 0], a[0, 1] = 0, 65535
    path = write(tmp_path, "g16.png", pil_png(Image.fromarray(a)))
    raw = read_png(path, raw=True)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw[0], a)
    f = read_png(path)
    assert f[0, 0, 0] == 0.0 and f[0, 0, 1] == 1.0
    np.testing.assert_allclose(f[0], a / 65535.0, rtol=1e-6)


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("RGBA", 4), ("LA", 2)])
def test_8bit_colour_modes(tmp_path, mode, channels):
    shape = (4, 5, channels)
    a = RNG.integers(0, 256, shape, dtype=np.uint8)
    path = write(tmp_path, "c.png", pil_png(Image.fromarray(a, mode=mode)))
    raw = read_png(path, raw=True)
    assert raw.shape == (channels, 4, 5) and raw.flags.c_contiguous
    np.testing.assert_array_equal(raw, a.transpose(2, 0, 1))


def test_palette_without_and_with_transparency(tmp_path):
    img = Image.new("P", (3, 2))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    img.putdata([0, 1, 2, 2, 1, 0])
    rgb = read_png(write(tmp_path, "p.png", pil_png(img)), raw=True)
    assert rgb.shape == (3, 2, 3)
    assert rgb[:, 0, 0].tolist() == [255, 0, 0] and rgb[:, 0, 2].tolist() == [0, 0, 255]
    rgba = read_png(write(tmp_path, "pt.png", pil_png(img, transparency=1)), raw=True)
    assert rgba.shape == (4, 2, 3)
    assert rgba[:, 0, 1].tolist() == [0, 255, 0, 0]  # index 1 is transparent
    assert rgba[:, 0, 0].tolist() == [255, 0, 0, 255]


def test_one_bit(tmp_path):
    img = Image.new("1", (4, 3))
    img.putpixel((1, 2), 1)
    path = write(tmp_path, "b.png", pil_png(img))
    raw = read_png(path, raw=True)
    assert raw.dtype == np.uint8 and raw.shape == (1, 3, 4)
    assert raw[0, 2, 1] == 255 and raw.sum() == 255
    f = read_png(path)
    assert f[0, 2, 1] == 1.0 and f.sum() == 1.0


def test_two_bit_gray_is_expanded(tmp_path):
    a = np.array([[0, 85, 170, 255]], dtype=np.uint8)
    path = write(tmp_path, "g2.png", pil_png(Image.fromarray(a), bits=2))
    assert parse_chunks(path.read_bytes())[0].bit_depth == 2
    np.testing.assert_array_equal(read_png(path, raw=True)[0], a)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_keeps_low_byte(tmp_path, channels):
    a = RNG.integers(0, 65536, (9, 11, channels), dtype=np.uint16)
    a[0, 0] = 65535
    a[0, 1] = 0
    a[1, 0] = 0x0102  # the low byte matters
    data = encode_png(a)
    header, _ = parse_chunks(data)
    assert header.bit_depth == 16
    # Pillow alone would keep only the high byte:
    with Image.open(io.BytesIO(data)) as im:
        assert np.asarray(im).dtype == np.uint8
    path = write(tmp_path, "c16.png", data)
    raw = read_png(path, raw=True)
    assert raw.dtype == np.uint16 and raw.shape == (channels, 9, 11)
    np.testing.assert_array_equal(raw, a.transpose(2, 0, 1))
    f = read_png(path)
    assert f.dtype == np.float32 and f[:, 0, 0].tolist() == [1.0] * channels
    np.testing.assert_allclose(f, a.transpose(2, 0, 1) / 65535.0, rtol=1e-6)


def test_interlaced_16bit_colour_refused(tmp_path):
    data = set_ihdr(encode_png(np.zeros((4, 4, 3), dtype=np.uint16)), interlace=1)
    with pytest.raises(InputError, match="interlaced 16-bit RGB PNG is not supported"):
        read_png(write(tmp_path, "i.png", data))


# ----------------------------------------------------------- codec details


@pytest.mark.parametrize("filters", [0, 1, 2, 3, 4, [0, 1, 2, 3, 4], None])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_codec_round_trip_all_filters(filters, dtype):
    top = np.iinfo(dtype).max
    a = RNG.integers(0, top + 1, (13, 17, 3), dtype=dtype)
    a[5:] = a[5]  # smooth part so the adaptive choice varies
    data = encode_png(a, filters=filters)
    np.testing.assert_array_equal(decode_png(data), a)


@pytest.mark.parametrize("mode, shape", [("RGB", (21, 30, 3)), ("L", (8, 9)), ("RGBA", (5, 40, 4))])
def test_decoder_agrees_with_pillow(mode, shape):
    a = RNG.integers(0, 256, shape, dtype=np.uint8)
    a[: shape[0] // 2] //= 16  # gives Pillow's encoder reason to use all filters
    data = pil_png(Image.fromarray(a, mode=mode))
    np.testing.assert_array_equal(decode_png(data).reshape(shape), a)


def test_encoder_output_readable_by_pillow():
    a = RNG.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    with Image.open(io.BytesIO(encode_png(a, filters=[4, 3, 1]))) as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), a)


def test_decoder_errors():
    data = encode_png(np.zeros((4, 4, 3), dtype=np.uint16))
    raw = zlib.decompress(data[41 : data.index(b"IEND") - 8])
    with pytest.raises(PNGFormatError, match="truncated PNG image data"):
        decode_png(with_idat(data, zlib.compress(raw[:-5])))
    with pytest.raises(PNGFormatError, match="more data than the header allows"):
        decode_png(with_idat(data, zlib.compress(raw + b"\0")))
    with pytest.raises(PNGFormatError, match="invalid PNG filter type 9 on row 0"):
        decode_png(with_idat(data, zlib.compress(b"\x09" + raw[1:])))
    with pytest.raises(PNGFormatError, match="corrupted PNG image data"):
        decode_png(with_idat(data, b"garbage!"))
    with pytest.raises(PNGFormatError, match="over the limit"):
        decode_png(data, max_bytes=10)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        encode_png(np.zeros((2, 2), dtype=np.float32))


# ------------------------------------------------------------- bad files


def test_truncated_png(tmp_path):
    data = pil_png(Image.fromarray(RNG.integers(0, 256, (50, 50, 3), dtype=np.uint8)))
    for cut in (20, len(data) // 2, len(data) - 6):
        path = write(tmp_path, f"t{cut}.png", data[:cut])
        with pytest.raises(InputError, match="truncated"):
            read_png(path)


@pytest.mark.parametrize("load_truncated", [False, True])
def test_truncated_image_data_in_valid_chunks(tmp_path, monkeypatch, load_truncated):
    """Cut zlib data inside well-formed chunks: refused before Pillow (which must
    not zero-fill) decodes anything."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    a = RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    data = encode_png(a)
    compressed = zlib.compress(zlib.decompress(data[41 : data.index(b"IEND") - 8]))
    path = write(tmp_path, "cut.png", with_idat(data, compressed[: len(compressed) // 2]))
    with pytest.raises(InputError, match=r"truncated PNG image data \(\d+ of 4840 bytes"):
        read_png(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is load_truncated  # restored


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((ctype, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def _join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(t, p) for t, p in chunks)


#: Images that Pillow decodes (8 bits and less, 16-bit gray), by Pillow mode.
PILLOW_DECODED = {
    "L": lambda: Image.fromarray(RNG.integers(0, 256, (10, 12), dtype=np.uint8)),
    "RGB": lambda: Image.fromarray(RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)),
    "RGBA": lambda: Image.fromarray(RNG.integers(0, 256, (10, 12, 4), dtype=np.uint8)),
    "P": lambda: Image.fromarray(RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)).quantize(
        100),  # 8 bits a pixel (with 16 colours or fewer Pillow writes 4 bits)
    "1": lambda: Image.fromarray(RNG.integers(0, 2, (10, 12), dtype=np.uint8) * 255).convert("1"),
    "I;16": lambda: Image.fromarray(RNG.integers(0, 65536, (10, 12), dtype=np.uint16)),
}


def interlaced_png(a: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit gray (H, W) or RGB (H, W, 3) PNG (Pillow writes none)."""
    from normcli.files.pngcodec import _ADAM7

    colour = 0 if a.ndim == 2 else 2
    rows = []
    for x, y, dx, dy in _ADAM7:
        part = a[y::dy, x::dx]
        if part.size:
            rows += [b"\0" + row.tobytes() for row in part]
    height, width = a.shape[:2]
    return _join([(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 1)),
                  (b"IDAT", zlib.compress(b"".join(rows))), (b"IEND", b"")])


@pytest.mark.parametrize("mode", [*PILLOW_DECODED, "L interlaced", "RGB interlaced"])
def test_image_data_of_more_rows_than_the_header_is_refused(tmp_path, mode):
    """An 8-bit PNG whose IDAT holds more rows than IHDR says was read: Pillow stops
    at the last row."""
    if mode.endswith("interlaced"):
        a = RNG.integers(0, 256, (10, 12, 3) if mode.startswith("RGB") else (10, 12),
                         dtype=np.uint8)
        data = interlaced_png(a)
        got = read_png(write(tmp_path, "ok.png", data), raw=True)
        np.testing.assert_array_equal(got, a.transpose(2, 0, 1) if a.ndim == 3 else a[None])
    else:
        data = pil_png(PILLOW_DECODED[mode]())
        assert read_png(write(tmp_path, "ok.png", data)).shape[1:] == (10, 12)
    short = set_ihdr(data, height=7)  # the data hold 10 rows
    with pytest.raises(InputError) as e:
        read_png(write(tmp_path, "rows.png", short))
    assert str(e.value).endswith("corrupted PNG image data (more data than the header allows)")


def test_palette_rules(tmp_path):
    """A palette PNG without PLTE was read (as gray); the other rules for PLTE are
    those of the PNG specification (11.2.3).  (An index past the palette's end is
    read, as libpng reads it: Pillow itself writes such files.)"""
    palette = PILLOW_DECODED["P"]()
    chunks = _chunks(pil_png(palette))
    plte = next(p for t, p in chunks if t == b"PLTE")
    assert parse_chunks(pil_png(palette))[0].bit_depth == 8
    without = [(t, p) for t, p in chunks if t != b"PLTE"]
    gray = _chunks(pil_png(PILLOW_DECODED["L"]()))
    idat = next(i for i, (t, _) in enumerate(chunks) if t == b"IDAT")
    cases = {
        "no PLTE": (without, "a palette image without a PLTE chunk"),
        "PLTE in gray": (gray[:1] + [(b"PLTE", b"\0" * 6)] + gray[1:],
                         "a PLTE chunk in a 8-bit gray image"),
        "two PLTE": (chunks[:idat] + [(b"PLTE", plte)] + chunks[idat:],
                     "more than one PLTE chunk"),
        "PLTE after IDAT": (without[:-1] + [(b"PLTE", plte), without[-1]],
                            "the PLTE chunk comes after the image data"),
        "PLTE of 7 bytes": ([(t, p[:7] if t == b"PLTE" else p) for t, p in chunks],
                            "PLTE of 7 bytes (need 3 per entry, 1 to 256 entries)"),
    }
    for name, (mutated, message) in cases.items():
        path = write(tmp_path, "p.png", _join(mutated))
        with pytest.raises(InputError) as e:
            read_png(path)
        assert str(e.value).startswith(f"{path}: invalid PNG "), (name, str(e.value))
        assert str(e.value).endswith(message), (name, str(e.value))
    four_bit = set_ihdr(_join([(t, b"\0" * 51 if t == b"PLTE" else p) for t, p in chunks]),
                        depth=4)  # 17 entries: more than 4 bits can index
    with pytest.raises(InputError, match=r"PLTE of 51 bytes \(need 3 per entry, 1 to 16 "):
        read_png(write(tmp_path, "p4.png", four_bit))


def test_corrupted_crc(tmp_path):
    data = bytearray(pil_png(Image.fromarray(np.zeros((8, 8), dtype=np.uint8))))
    data[-20] ^= 0xFF  # inside the IDAT chunk
    with pytest.raises(InputError, match="CRC mismatch in 'IDAT' chunk"):
        read_png(write(tmp_path, "crc.png", bytes(data)))


def test_fake_png(tmp_path):
    path = write(tmp_path, "fake.png", b"just some text pretending\n")
    with pytest.raises(InputError) as e:
        read_png(path)
    assert str(e.value) == f"{path}: not a PNG file (bad signature)"
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="JPEG")
    with pytest.raises(InputError, match=r"not a PNG file \(looks like JPEG\)"):
        read_png(write(tmp_path, "photo.png", buf.getvalue()))
    with pytest.raises(InputError, match=r"not a PNG file \(empty\)"):
        read_png(write(tmp_path, "empty.png", b""))


def test_missing_png(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_png(tmp_path / "missing.png")


def test_size_limit_checked_before_decoding(tmp_path, monkeypatch):
    """A 'bomb': tiny file, huge claimed size - refused from the header alone."""
    data = set_ihdr(pil_png(Image.new("L", (1, 1))), width=100_000, height=100_000)
    path = write(tmp_path, "bomb.png", data)
    monkeypatch.setattr(Image, "open", None)  # must not even reach Pillow
    with pytest.raises(InputError) as e:
        read_png(path)
    msg = str(e.value)
    assert "image 100000x100000 (10000000000 pixels, 1 channel)" in msg
    assert "needs 40000000000 bytes decoded, over the limit of 2147483648" in msg


def test_small_limit(tmp_path):
    path = write(tmp_path, "s.png", pil_png(Image.new("RGB", (20, 10))))
    assert read_png(path, max_bytes=2400).shape == (3, 10, 20)
    with pytest.raises(InputError, match="over the limit of 2399"):
        read_png(path, max_bytes=2399)
    assert read_png(path, raw=True, max_bytes=600).dtype == np.uint8
    with pytest.raises(InputError, match="file of .* bytes is over the limit of 10"):
        read_png(path, max_bytes=10)


@pytest.mark.parametrize("pixels", [150, 90])  # error range (> 2x) and warning range
def test_pillow_decompression_bomb_is_an_error(tmp_path, monkeypatch, pixels):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64)
    side = int(pixels**0.5)
    path = write(tmp_path, "b.png", pil_png(Image.new("L", (side, side + 1))))
    with pytest.raises(InputError, match="over Pillow's decompression-bomb limit of 64 pixels"):
        read_png(path)


def test_read_png_bytes():
    out = read_png_bytes(pil_png(Image.new("L", (2, 2), 255)), source="mem")
    assert out.tolist() == [[[1.0, 1.0], [1.0, 1.0]]]


# ------------------------------------------------------------------ writing


def test_rescale_each_channel_independently():
    x = np.stack([np.linspace(-1, 1, 6).reshape(2, 3), np.full((2, 3), 7.0),
                  np.arange(6.0).reshape(2, 3) * 1000])  # fmt: skip
    out = rescale_channels(x)
    assert out.dtype == np.uint8
    assert out[0].min() == 0 and out[0].max() == 255
    assert (out[1] == 0).all()  # constant channel
    assert out[2].tolist() == [[0, 51, 102], [153, 204, 255]]
    out16 = rescale_channels(x, bits=16)
    assert out16.dtype == np.uint16 and out16[2].max() == 65535


def test_rescale_nonfinite():
    x = np.array([[[np.nan, 0.0, 1.0, np.inf, -np.inf, 0.5]]])
    assert rescale_channels(x)[0, 0].tolist() == [0, 0, 255, 255, 0, 128]
    assert rescale_channels(np.array([[[np.nan, np.inf]]]))[0, 0].tolist() == [0, 255]


def test_rescale_ints_and_bools():
    assert rescale_channels(np.array([[[True, False]]]))[0, 0].tolist() == [255, 0]
    big = np.array([[[-(2**62), 2**62]]], dtype=np.int64)
    assert rescale_channels(big)[0, 0].tolist() == [0, 255]


def test_to_png_array_shapes():
    assert to_png_array(np.zeros((4, 5))).shape == (4, 5)
    assert to_png_array(np.zeros((1, 4, 5))).shape == (4, 5)
    rgb = to_png_array(RNG.random((3, 4, 5)), bits=16)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint16
    for bad in (np.zeros(3), np.zeros((2, 3, 4, 5)), np.zeros((0, 3, 3))):
        with pytest.raises(ValueError, match="expected"):
            to_png_array(bad)
    with pytest.raises(ValueError, match="bits must be 8 or 16"):
        to_png_array(np.zeros((2, 2)), bits=12)


@pytest.mark.parametrize("bits", [8, 16])
def test_grid_layout_and_labels(bits):
    c, h, w = 5, 6, 30
    x = np.stack([np.full((h, w), float(i)) for i in range(c)])
    x[:, 0, 0] = -1.0  # each tile: min at (0, 0), everything else max
    grid = to_png_array(x, bits=bits)
    top = 2**bits - 1
    assert grid.ndim == 2 and grid.dtype == (np.uint8 if bits == 8 else np.uint16)
    # 5 channels -> 3 columns x 2 rows; find the tiles: the max-valued blocks.
    rows_with_data = np.flatnonzero((grid == top).sum(axis=1) >= w - 1)
    assert len(rows_with_data) == 2 * h
    # A dark margin around everything.
    assert (grid[:2] == 0).all() and (grid[:, :2] == 0).all()
    assert (grid[-2:] == 0).all() and (grid[:, -2:] == 0).all()
    # Each tile's data is intact (not covered by the label) and has a label strip above it.
    first_data_row = rows_with_data[0]
    tile = grid[first_data_row : first_data_row + h, 2 : 2 + w]
    assert tile[0, 0] == 0 and (tile.ravel()[1:] == top).all()
    strip = grid[2:first_data_row, 2 : 2 + w]
    assert strip.shape[0] >= 6 and strip.max() > 0  # the text "0"
    assert 0 < (strip > 0).mean() < 0.5


def test_grid_labels_differ_per_channel():
    x = np.zeros((4, 8, 8))
    grid = to_png_array(x)
    assert grid.max() > 0  # only the labels are bright
    strips = []
    rows, cols = 2, 2
    h_cell = (grid.shape[0] - 2) // rows
    w_cell = (grid.shape[1] - 2) // cols
    for i in range(4):
        r, c = divmod(i, cols)
        strips.append(grid[2 + r * h_cell : 2 + r * h_cell + h_cell - 8 - 2,
                           2 + c * w_cell : 2 + c * w_cell + w_cell - 2].tobytes())  # fmt: skip
    assert len(set(strips)) == 4


def test_to_png_image_modes():
    assert to_png_image(np.zeros((4, 4))).mode == "L"
    assert to_png_image(np.zeros((3, 4, 4))).mode == "RGB"
    assert to_png_image(np.zeros((4, 4)), bits=16).mode == "I;16"
    assert to_png_image(np.zeros((2, 4, 4))).mode == "L"
    with pytest.raises(ValueError, match="16-bit RGB"):
        to_png_image(np.zeros((3, 4, 4)), bits=16)


@pytest.mark.parametrize("shape", [(7, 9), (3, 7, 9), (2, 7, 9)])
@pytest.mark.parametrize("bits", [8, 16])
def test_encode_png_bytes_round_trip(shape, bits):
    x = RNG.standard_normal(shape)
    data = encode_png_bytes(x, bits)
    back = read_png_bytes(data, raw=True)
    expected = to_png_array(x, bits)
    if expected.ndim == 3:
        expected = expected.transpose(2, 0, 1)
    else:
        expected = expected[None]
    np.testing.assert_array_equal(back, expected)
    assert back.dtype == (np.uint8 if bits == 8 else np.uint16)


# ----------------------------------------------------------------- fuzzing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    channels=st.sampled_from([1, 2, 3, 4]),
    sixteen=st.booleans(),
    filters=st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=1, max_size=5)),
    seed=st.integers(0, 2**32 - 1),
)
def test_codec_round_trip_property(h, w, channels, sixteen, filters, seed):
    dtype = np.uint16 if sixteen else np.uint8
    a = np.random.default_rng(seed).integers(
        0, np.iinfo(dtype).max + 1, (h, w, channels), dtype=dtype
    )
    np.testing.assert_array_equal(decode_png(encode_png(a, filters=filters)), a)


def unfilter_by_the_spec(raw: bytes, height: int, rowbytes: int, bpp: int) -> bytes:
    """PNG's reconstruction functions (ISO 15948, 9.2-9.4), one byte at a time."""
    out = bytearray(height * rowbytes)
    for y in range(height):
        ftype = raw[y * (rowbytes + 1)]
        for i in range(rowbytes):
            x = raw[y * (rowbytes + 1) + 1 + i]
            a = out[y * rowbytes + i - bpp] if i >= bpp else 0
            b = out[(y - 1) * rowbytes + i] if y else 0
            c = out[(y - 1) * rowbytes + i - bpp] if y and i >= bpp else 0
            if ftype == 1:
                x += a
            elif ftype == 2:
                x += b
            elif ftype == 3:
                x += (a + b) // 2
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                x += a if pa <= pb and pa <= pc else b if pb <= pc else c
            out[y * rowbytes + i] = x & 0xFF
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 9), bpp=st.sampled_from([1, 2, 3, 4, 6, 8]),
       filters=st.lists(st.integers(0, 4), min_size=1, max_size=7),
       seed=st.integers(0, 2**32 - 1))
def test_unfiltering_follows_the_spec(h, w, bpp, filters, seed):
    """Any filtered bytes (not only an encoder's), every filter type, every number of
    bytes per pixel the decoder meets: as the PNG specification reconstructs them."""
    from normcli.files.pngcodec import _unfilter

    rowbytes = w * bpp
    raw = np.random.default_rng(seed).integers(0, 256, (h, rowbytes + 1), dtype=np.uint8)
    raw[:, 0] = np.resize(filters, h)
    got = _unfilter(raw, h, rowbytes, bpp)
    assert got.shape == (h, rowbytes) and got.dtype == np.uint8
    assert got.tobytes() == unfilter_by_the_spec(raw.tobytes(), h, rowbytes, bpp)


_SAMPLE = encode_png(np.arange(48, dtype=np.uint16).reshape(4, 4, 3) * 1000)


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(0, len(_SAMPLE) - 1), value=st.integers(0, 255), cut=st.booleans())
def test_mutated_png_only_raises_input_error(pos, value, cut):
    data = bytearray(_SAMPLE)
    data[pos] = value
    if cut:
        data = data[:pos]
    try:
        out = read_png_bytes(bytes(data), raw=True, source="fuzz")
    except InputError:
        return
    assert out.ndim == 3
