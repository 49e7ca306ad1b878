"""Resource limits: sizes are checked from headers, before anything is allocated.

* bytes per input: ``NORMCLI_MAX_BYTES`` (default 2 GiB), for the decoded array
  of a .npy, .npz member or PNG, and for a PNG file itself;
* ``.npy`` header text: at most ``MAX_HEADER_BYTES`` (64 KiB);
* PNG pixels: width x height x channels x itemsize against the same limit,
  and Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).

Each refusal is measured with :mod:`tracemalloc` (numpy reports its array
allocations to it): the peak must stay far below the size that was claimed.
"""

from __future__ import annotations

import contextlib
import io
import struct
import sys
import time
import tracemalloc
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run alone, too (importlib mode)
from test_fuzz_readers import npy_with_header, png_chunks, png_join  # noqa: E402

from normcli.errors import InputError
from normcli.files import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    expand_inputs,
    read_npy,
    read_npy_stream,
    read_png,
)
from normcli.files.limits import parse_size, resolve_max_bytes
from normcli.files.npy import MAX_HEADER_BYTES
from normcli.files.png import read_png_bytes

pytestmark = pytest.mark.filterwarnings(
    "ignore:'get_binary_stream' is deprecated:DeprecationWarning"
)
COUNTS: Counter[str] = Counter()
SMALL_PEAK = 4 << 20  # bytes: what a refusal may allocate at most (4 MiB)


@contextlib.contextmanager
def measured():
    """Yield a dict that gets ``peak`` (bytes traced) and ``seconds``."""
    out: dict[str, float] = {}
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start
        out["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def refused_cheaply(fn, *args, match: str, **kwargs) -> str:
    COUNTS["limit: oversized input"] += 1
    with measured() as m:
        with pytest.raises(InputError, match=match) as info:
            fn(*args, **kwargs)
    assert m["peak"] < SMALL_PEAK, f"allocated {m['peak']} bytes before refusing"
    assert m["seconds"] < 2.0, f"took {m['seconds']:.2f} s to refuse"
    return str(info.value)


TERA_HEADER = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"


def test_documented_limits():
    assert DEFAULT_MAX_BYTES == 2 * 1024**3
    assert MAX_BYTES_ENV == "NORMCLI_MAX_BYTES"
    assert MAX_HEADER_BYTES == 65536
    assert parse_size("64K") == 65536 and parse_size("2G") == 2 * 1024**3


@pytest.mark.parametrize("env", [None, "1M", "2G"])
def test_npy_claiming_1e12_elements_is_refused_before_allocation(tmp_path, monkeypatch, env):
    if env is None:
        monkeypatch.delenv(MAX_BYTES_ENV, raising=False)
    else:
        monkeypatch.setenv(MAX_BYTES_ENV, env)
    path = tmp_path / "tera.npy"
    data = npy_with_header(TERA_HEADER, b"\x00" * 64)  # a 200-byte file
    path.write_bytes(data)
    for mmap in (False, True):
        message = refused_cheaply(read_npy, path, mmap=mmap, match="over the limit")
        assert "8000000000000 bytes" in message and MAX_BYTES_ENV in message
    refused_cheaply(read_npy_stream, io.BytesIO(data), source="s", match="over the limit")
    npz = tmp_path / "tera.npz"
    with zipfile.ZipFile(npz, "w") as zf:
        zf.writestr("x.npy", data)
    (source,) = expand_inputs([npz])
    refused_cheaply(source.load, match="over the limit")


def test_limit_is_exact(tmp_path):
    path = tmp_path / "k.npy"
    np.save(path, np.zeros(128))  # 1024 bytes of data
    assert read_npy(path, max_bytes=1024).shape == (128,)
    refused_cheaply(read_npy, path, max_bytes=1023,
                    match="needs 1024 bytes, over the limit of 1023")


def test_huge_header_length_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "hdr.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{" * 100)
    refused_cheaply(read_npy, path, match="length 4294967295 is over 65536")


def test_zip_bomb_member_is_refused_from_the_directory(tmp_path, monkeypatch):
    """A member declaring 256 MiB, deflated to 256 KiB: refused before decompressing."""
    monkeypatch.setenv(MAX_BYTES_ENV, "64M")
    header = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (33554432,), }")
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb.npy", "w", force_zip64=True) as f:
            f.write(header)
            for _ in range(64):
                f.write(b"\x00" * (4 << 20))
    assert path.stat().st_size < 2 << 20
    (source,) = expand_inputs([path])
    refused_cheaply(source.load, match="over the limit")


def ihdr_png(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return png_join([(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b"")])


@pytest.mark.parametrize("depth, colour", [(8, 2), (16, 2), (16, 6), (8, 0), (1, 0), (8, 3)])
def test_png_of_100000_by_100000_is_refused_before_decoding(tmp_path, monkeypatch, depth, colour):
    monkeypatch.delenv(MAX_BYTES_ENV, raising=False)
    data = ihdr_png(100000, 100000, depth, colour)
    if colour == 3:  # a palette image needs a PLTE chunk to get that far
        chunks = png_chunks(data)
        chunks.insert(1, (b"PLTE", b"\x00\x00\x00"))
        data = png_join(chunks)
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    message = refused_cheaply(read_png, path, match="100000x100000")
    assert "over the limit" in message
    refused_cheaply(read_png, path, raw=True, match="100000x100000")


@pytest.mark.parametrize("width, height", [(1_500_000, 1), (1, 1_500_000)])
def test_png_decoding_costs_the_data_not_its_shape(width, height):
    """A 16-bit RGB PNG of 1,500,000 x 1 with one Paeth row (8.8 KB) took 31-34 s:
    the numpy un-filtering made one step per anti-diagonal (H + W - 1 of them), and
    a tall image one step per row.  Decoded now in a pass over the data."""
    from normcli.files.pngcodec import encode_png

    COUNTS["limit: PNG of extreme shape"] += 1
    data = encode_png(np.zeros((height, width, 3), np.uint16), filters=4, compresslevel=9)
    assert len(data) < 20_000
    with measured() as m:
        out = read_png_bytes(data, raw=True)
    assert out.shape == (3, height, width) and not out.any()
    assert m["seconds"] < 10, f"took {m['seconds']:.1f} s"  # was 30+ s; now well under 1 s


def test_png_pixel_limit_of_pillow_applies_when_bytes_allow(tmp_path):
    """With a huge byte limit, Pillow's MAX_IMAGE_PIXELS still refuses a bomb, before decoding."""
    from PIL import Image

    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 10
    data = ihdr_png(side, side, 8, 0)
    refused_cheaply(read_png_bytes, data, max_bytes=1 << 40, source="bomb.png",
                    match="decompression-bomb limit")


def test_png_file_over_the_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(ihdr_png(4, 4) + b"\x00" * 5000)
    refused_cheaply(read_png, path, max_bytes=4096, match="file of .* bytes is over the limit")


@pytest.mark.parametrize("value", ["0", "-1", "lots", "1.5G", "12X"])
def test_bad_limit_setting_is_one_error_line(tmp_path, value):
    COUNTS["limit: bad NORMCLI_MAX_BYTES"] += 1
    from normcli.cli.main import cli

    np.save(tmp_path / "x.npy", np.ones((2, 3, 4)))
    result = CliRunner().invoke(cli, ["stats", str(tmp_path / "x.npy"), "-q"],
                                env={MAX_BYTES_ENV: value})
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"normcli: error: {MAX_BYTES_ENV}: ")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MAX_BYTES_ENV, value)
        with pytest.raises(InputError, match=MAX_BYTES_ENV):
            resolve_max_bytes(None)


def test_cli_refuses_oversized_input_with_one_line(tmp_path):
    from normcli.cli.main import cli

    COUNTS["limit: oversized input (cli)"] += 1
    path = tmp_path / "tera.npy"
    path.write_bytes(npy_with_header(TERA_HEADER, b"\x00" * 64))
    result = CliRunner().invoke(cli, ["lrn", str(path), "-o", str(tmp_path / "o.npy"), "-q"],
                                env={MAX_BYTES_ENV: None})
    assert result.exit_code == 1, result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"normcli: error: {path}: ")
    assert "over the limit" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tera.npy"]
