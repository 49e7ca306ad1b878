"""Inputs and outputs on the command line: formats, refusals, atomic all-or-nothing writes."""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib

import numpy as np
import pytest
from clihelp import one_line_error, usage_error
from PIL import Image

import normcli

IDENTITY = ["--k", "1", "--alpha", "0", "--beta", "1"]  # lrn that returns its input


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload))


def raw_png(pixels: np.ndarray, colour: int) -> bytes:
    """A PNG written by hand (filter 0): ``(H, W, C)`` uint8/uint16 pixels."""
    depth = 16 if pixels.dtype == np.uint16 else 8
    h, w = pixels.shape[:2]
    rows = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    data = b"".join(b"\x00" + rows[r].tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b""))


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG claiming a huge size, with a few bytes of data (a bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + _chunk(b"IEND", b""))


# ------------------------------------------------------------------ .npy inputs


@pytest.mark.parametrize(
    "make, message",
    [
        (None, "missing.npy: no such file"),
        (lambda p: p.write_text("just some text\n"), "missing.npy: not a .npy file (bad magic)"),
        (lambda p: np.save(p, np.array([1, "a", None], dtype=object), allow_pickle=True),
         "missing.npy: unsupported dtype object (pickled Python objects); allowed: bool, "
         "signed or unsigned integers, floats"),
        (lambda p: p.write_bytes(_npy_bytes(np.ones((4, 4), np.float32))[:-7]),
         "missing.npy: truncated: header claims 64 bytes of data, file has 57"),
        (lambda p: p.write_bytes(_npy_bytes(np.ones((4, 4), np.float32))[:20]),
         "missing.npy: truncated: file ends inside the .npy header (10 of 118 header bytes)"),
        (lambda p: np.save(p, np.float32(3.0)),
         "missing.npy: 0-d array (a single scalar); need at least 1 dimension"),
        (lambda p: np.save(p, np.zeros((0, 3), np.float32)),
         "missing.npy: empty array (shape (0, 3)); need at least one element"),
        (lambda p: np.save(p, np.ones(3, np.complex64)),
         "missing.npy: unsupported dtype complex64 (complex); allowed: bool, signed or unsigned "
         "integers, floats"),
        (lambda p: np.save(p, np.array([[1.0, np.nan], [np.inf, 2]], np.float32)),
         "missing.npy: holds 2 NaN/Inf values (pass --allow-nonfinite to process it anyway)"),
        (lambda p: p.write_bytes(b""), "missing.npy: not a .npy file (empty)"),
    ],
    ids=["missing", "text", "pickled", "truncated", "truncated header", "0-d", "empty",
         "complex", "nan", "empty file"],
)
@pytest.mark.parametrize("command", ["lrn", "batchnorm", "stats"])
def test_bad_npy_is_one_line_exit_1(invoke, tmp_path, files_in, make, message, command):
    if command == "stats" and "NaN" in message:
        pytest.skip("stats counts NaN and Inf (tests/cli/test_stats.py)")
    if make is not None:
        make(tmp_path / "missing.npy")
    before = files_in(tmp_path)
    args = ["-o", "out/"] if command != "stats" else []
    result = invoke(command, "missing.npy", *args)
    assert one_line_error(result) == "normcli: error: " + message
    assert files_in(tmp_path) == before


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_size_limit(invoke, save):
    save("x.npy", np.ones((10, 10), np.float32))
    result = invoke("stats", "x.npy", env={"NORMCLI_MAX_BYTES": "399"})
    assert one_line_error(result) == (
        "normcli: error: x.npy: array of shape (10, 10) float32 needs 400 bytes, over the "
        "limit of 399 (set NORMCLI_MAX_BYTES to raise it)")
    assert invoke("stats", "x.npy", env={"NORMCLI_MAX_BYTES": "400"}).exit_code == 0


def test_nonfinite_allowed(invoke, save, tmp_path):
    x = np.array([[[1.0, np.nan], [np.inf, 2.0]]], np.float32)
    save("x.npy", x)
    result = invoke("lrn", "x.npy", "--allow-nonfinite", "-o", "y.npy", "-q")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), normcli.lrn(x))


def test_big_endian_and_fortran_inputs(invoke, save, tmp_path):
    x = np.arange(24, dtype=">f8").reshape(2, 3, 4)
    save("be.npy", x)
    save("f.npy", np.asfortranarray(x.astype(np.float32)))
    result = invoke("lrn", "be.npy", "f.npy", *IDENTITY, "-o", "out/", "-q")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out/be.npy"), x)
    np.testing.assert_array_equal(np.load(tmp_path / "out/f.npy"), x.astype(np.float32))


# ------------------------------------------------------------ .npz, dirs, stdin


def test_npz_each_array_is_an_input(invoke, tmp_path):
    a, b = np.ones((2, 3, 3), np.float32), np.arange(18, dtype=np.float32).reshape(2, 3, 3)
    np.savez(tmp_path / "x.npz", conv1=a, conv2=b)
    result = invoke("lrn", "x.npz", "-o", "out/", "--json")
    assert result.exit_code == 0, result.stderr
    labels = [e["label"] for e in json.loads(result.stdout)["inputs"]]
    assert labels == ["x.npz:conv1", "x.npz:conv2"]
    np.testing.assert_array_equal(np.load(tmp_path / "out/x/conv1.npy"), normcli.lrn(a))
    np.testing.assert_array_equal(np.load(tmp_path / "out/x/conv2.npy"), normcli.lrn(b))


def test_npz_to_npz_keeps_member_names(invoke, tmp_path):
    a, b = np.ones((2, 3, 3), np.float32), np.full((2, 3, 3), 2, np.float32)
    np.savez(tmp_path / "x.npz", conv1=a, conv2=b)
    result = invoke("lrn", "x.npz", "-o", "y.npz", "-q")
    assert result.exit_code == 0, result.stderr
    with np.load(tmp_path / "y.npz") as y:
        # members are named like the output directory's relative paths: stem/member
        assert sorted(y.files) == ["x/conv1", "x/conv2"]
        np.testing.assert_array_equal(y["x/conv2"], normcli.lrn(b))


def test_directory_sorted_skips_hidden_and_others(invoke, save, tmp_path):
    for name in ("b.npy", "a.npy", "C.npy", ".hidden.npy"):
        save(f"d/{name}", np.ones((1, 2, 2), np.float32))
    (tmp_path / "d/notes.txt").write_text("x")
    (tmp_path / "d/sub").mkdir()
    save("d/sub/z.npy", np.ones((1, 2, 2), np.float32))
    result = invoke("stats", "d", "--json")
    assert result.exit_code == 0, result.stderr
    labels = [e["label"] for e in json.loads(result.stdout)["inputs"]]
    assert labels == ["d/C.npy", "d/a.npy", "d/b.npy"]


def test_directory_without_arrays(invoke, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/readme.txt").write_text("x")
    assert one_line_error(invoke("stats", "d")) == (
        "normcli: error: d: directory has no .npy, .npz or image files (it holds 1 .txt "
        "file)")


def test_unsupported_input_suffix(invoke, tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    assert one_line_error(invoke("stats", "x.csv")) == (
        "normcli: error: x.csv: unsupported file type '.csv' (supported: .npy, .npz, .png, "
        ".jpg, .jpeg, .tif, .tiff, .webp, .bmp, .gif)")


def test_stdin_npy(invoke, tmp_path):
    x = np.random.default_rng(1).random((3, 4, 4), dtype=np.float32)
    result = invoke("lrn", "-", "-o", "out/", "-q", input=_npy_bytes(x))
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out/stdin.npy"), normcli.lrn(x))


def test_stdin_truncated(invoke):
    data = _npy_bytes(np.ones((4, 4), np.float32))[:-4]
    assert one_line_error(invoke("stats", "-", input=data)) == (
        "normcli: error: <stdin>: truncated: header claims 64 bytes of data, file has 60")


def test_stdin_twice(invoke):
    """Standard input named twice, or as an input and the --files-from list: a usage error."""
    for args in (["-", "-"], ["--files-from", "-", "-"]):
        result = invoke("stats", *args, input=_npy_bytes(np.ones(3)))
        assert result.exit_code == 2, result.stderr
        assert "standard input can only be read once" in result.stderr
        assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ PNG inputs


def _pil(tmp_path, name, img):
    img.save(tmp_path / name)
    return name


GRAY = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20


@pytest.mark.parametrize(
    "name, build, raw",
    [
        ("gray8.png", lambda: Image.fromarray(GRAY, "L"), GRAY[None]),
        ("rgb.png", lambda: Image.fromarray(np.dstack([GRAY, GRAY // 2, 255 - GRAY]), "RGB"),
         np.stack([GRAY, GRAY // 2, 255 - GRAY])),
        # alpha is not data: left out (see test_png_alpha_read_as_a_channel_when_asked)
        ("rgba.png", lambda: Image.fromarray(np.dstack([GRAY, GRAY, GRAY, GRAY // 3]), "RGBA"),
         np.stack([GRAY, GRAY, GRAY])),
        ("la.png", lambda: Image.fromarray(np.dstack([GRAY, 255 - GRAY]), "LA"),
         GRAY[None]),
        ("one_bit.png", lambda: Image.fromarray(GRAY > 100).convert("1"),
         ((GRAY > 100) * 255).astype(np.uint8)[None]),
    ],
)
def test_png_8bit_reads_as_chw_in_unit_range(invoke, tmp_path, name, build, raw):
    _pil(tmp_path, name, build())
    result = invoke("lrn", name, *IDENTITY, "-o", "y.npy", "-q")
    assert result.exit_code == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == raw.shape
    np.testing.assert_array_equal(y, raw.astype(np.float32) / np.float32(255))
    result = invoke("lrn", name, *IDENTITY, "--raw-png", "-o", "raw.npy", "-q")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "raw.npy"), raw)


def test_png_alpha_read_as_a_channel_when_asked(invoke, tmp_path):
    _pil(tmp_path, "rgba.png", Image.fromarray(np.dstack([GRAY, GRAY, GRAY, GRAY // 3]), "RGBA"))
    result = invoke("lrn", "rgba.png", *IDENTITY, "--raw-png", "--include-alpha", "-o", "y.npy",
                    "-q")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"),
                                  np.stack([GRAY, GRAY, GRAY, GRAY // 3]))


def test_png_palette_reads_as_rgb(invoke, tmp_path):
    img = Image.fromarray((GRAY // 20).astype(np.uint8), "P")
    palette = [(i, 255 - i, i // 2) for i in range(256)]
    img.putpalette([v for rgb in palette for v in rgb])
    _pil(tmp_path, "p.png", img)
    result = invoke("lrn", "p.png", *IDENTITY, "--raw-png", "-o", "y.npy", "-q")
    assert result.exit_code == 0, result.stderr
    idx = GRAY // 20
    want = np.stack([idx, 255 - idx, idx // 2]).astype(np.uint8)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_png_16bit_gray(invoke, tmp_path):
    px = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000 + 257)
    (tmp_path / "g16.png").write_bytes(raw_png(px[:, :, None], colour=0))
    result = invoke("lrn", "g16.png", *IDENTITY, "-o", "y.npy", "-q")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"),
                                  px[None].astype(np.float32) / np.float32(65535))


def test_png_16bit_rgb_keeps_low_byte(invoke, tmp_path):
    px = np.array([[[0x1234, 0x00FF, 0xFF01], [1, 2, 65535]]], np.uint16)  # (1, 2, 3)
    (tmp_path / "rgb16.png").write_bytes(raw_png(px, colour=2))
    result = invoke("lrn", "rgb16.png", *IDENTITY, "--raw-png", "-o", "y.npy", "-q")
    assert result.exit_code == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, px.transpose(2, 0, 1).astype(y.dtype))


def test_sample_png(invoke, sample_data, tmp_path):
    result = invoke("stats", sample_data / "images" / "nuclei_gray16.png", "--raw-png", "--json")
    assert result.exit_code == 0, result.stderr
    s = json.loads(result.stdout)["inputs"][0]["before"]
    assert s["shape"] == [1, 128, 128] and s["dtype"] == "uint16"
    assert (s["min"], s["max"]) == (1285, 59932)


def test_png_bomb_refused_by_size_limit(invoke, tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    assert one_line_error(invoke("lrn", "bomb.png", "-o", "y.npy")) == (
        "normcli: error: bomb.png: image 100000x100000 (10000000000 pixels, 1 channel) needs "
        "40000000000 bytes decoded, over the limit of 2147483648 (set NORMCLI_MAX_BYTES to "
        "raise it)")
    assert not (tmp_path / "y.npy").exists()


def test_png_over_tiny_limit(invoke, tmp_path):
    (tmp_path / "g.png").write_bytes(raw_png(np.zeros((8, 8, 1), np.uint8), colour=0))
    result = invoke("stats", "g.png", env={"NORMCLI_MAX_BYTES": "100"})
    line = one_line_error(result)
    assert line.startswith("normcli: error: g.png: ")
    assert "over the limit of 100 (set NORMCLI_MAX_BYTES to raise it)" in line


def test_png_truncated(invoke, tmp_path):
    data = raw_png(np.zeros((8, 8, 3), np.uint8), colour=2)
    (tmp_path / "t.png").write_bytes(data[:-20])
    line = one_line_error(invoke("lrn", "t.png", "-o", "y.npy"))
    assert line.startswith("normcli: error: t.png: truncated PNG file")
    assert not (tmp_path / "y.npy").exists()


def test_png_that_is_not_a_png(invoke, tmp_path):
    (tmp_path / "x.png").write_bytes(b"\xff\xd8\xff\xe0 a jpeg really")
    assert one_line_error(invoke("stats", "x.png")).startswith(
        "normcli: error: x.png: not a PNG file (looks like JPEG: ")


# -------------------------------------------------------------------- outputs


@pytest.fixture
def three(save):
    rng = np.random.default_rng(4)
    xs = [rng.random((3, 4, 4), dtype=np.float32) for _ in range(3)]
    for i, x in enumerate(xs):
        save(f"in/x{i}.npy", x)
    return xs


def test_several_inputs_into_one_npy_are_stacked(invoke, three, tmp_path):
    result = invoke("lrn", "in", "-o", "all.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "all.npy"),
                                  np.stack([normcli.lrn(x) for x in three]))
    assert result.stderr.strip().splitlines()[-1] == "wrote all.npy"


def test_several_inputs_into_npz_one_member_each(invoke, three, tmp_path):
    result = invoke("lrn", "in", "-o", "all.npz", "-q")
    assert result.exit_code == 0, result.stderr
    with np.load(tmp_path / "all.npz") as z:
        assert sorted(z.files) == ["x0", "x1", "x2"]
        np.testing.assert_array_equal(z["x1"], normcli.lrn(three[1]))


def test_several_inputs_into_one_png_refused(invoke, three, tmp_path):
    result = invoke("lrn", "in", "-o", "all.png")
    assert usage_error(result) == (
        "Error: Invalid value for '-o': 3 inputs cannot share one PNG; use -o DIR/ or a "
        ".npy/.npz")
    assert not (tmp_path / "all.png").exists()


def test_png_output(invoke, save, tmp_path):
    save("rgb.npy", np.random.default_rng(0).random((3, 5, 6)))
    save("many.npy", np.random.default_rng(0).random((5, 5, 6)))
    result = invoke("lrn", "rgb.npy", "-o", "rgb.png", "-q")
    assert result.exit_code == 0, result.stderr
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB" and im.size == (6, 5)
        px = np.asarray(im)
    assert px.min() == 0 and px.max() == 255  # each channel rescaled to the full range
    assert invoke("lrn", "many.npy", "-o", "grid.png", "--png-bits", "16", "-q").exit_code == 0
    with Image.open(tmp_path / "grid.png") as im:
        assert im.mode.startswith("I")


def test_directory_output_same_relative_names(invoke, three, tmp_path):
    np.savez(tmp_path / "in2.npz", m=np.ones((2, 2, 2), np.float32))
    result = invoke("lrn", "in", "in2.npz", "-o", "out/")
    assert result.exit_code == 0, result.stderr
    names = sorted(p.relative_to(tmp_path / "out").as_posix()
                   for p in (tmp_path / "out").rglob("*.npy"))
    assert names == ["in2/m.npy", "x0.npy", "x1.npy", "x2.npy"]
    assert result.stderr.strip().splitlines()[-1] == "wrote 4 files to out"


def test_existing_output_needs_force(invoke, three, tmp_path):
    (tmp_path / "y.npy").write_bytes(b"old")
    result = invoke("lrn", "in/x0.npy", "-o", "y.npy")
    assert one_line_error(result) == "normcli: error: y.npy: exists (use --force to replace it)"
    assert (tmp_path / "y.npy").read_bytes() == b"old"
    result = invoke("lrn", "in/x0.npy", "-o", "y.npy", "--force", "-q")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), normcli.lrn(three[0]))


def test_existing_file_in_output_dir_needs_force(invoke, three, tmp_path, files_in):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/x1.npy").write_bytes(b"old")
    result = invoke("lrn", "in", "-o", "out/")
    assert one_line_error(result) == (
        "normcli: error: out/x1.npy: exists (use --force to replace it)")
    assert files_in(tmp_path / "out") == ["x1.npy"]
    assert invoke("lrn", "in", "-o", "out/", "--force", "-q").exit_code == 0
    assert files_in(tmp_path / "out") == ["x0.npy", "x1.npy", "x2.npy"]


@pytest.mark.parametrize("out", ["in/x0.npy", "./in/../in/x0.npy", "link.npy", "in/"])
def test_output_that_is_an_input_refused_even_with_force(invoke, three, tmp_path, out):
    (tmp_path / "link.npy").symlink_to(tmp_path / "in/x0.npy")
    before = (tmp_path / "in/x0.npy").read_bytes()
    result = invoke("lrn", "in/x0.npy", "-o", out, "--force")
    line = one_line_error(result)
    assert line.endswith(": is also an input (refusing to overwrite it, even with --force)")
    assert (tmp_path / "in/x0.npy").read_bytes() == before


@pytest.mark.parametrize("out", ["out/", "all.npy", "all.npz", "-"])
@pytest.mark.parametrize("command", ["lrn", "batchnorm"])
def test_any_failing_input_writes_nothing(invoke, three, save, tmp_path, files_in, out,
                                          command):
    save("in/x9.npy", np.array([[[np.nan]]], np.float32))  # the last one fails
    result = invoke(command, "in", "-o", out)
    assert one_line_error(result) == (
        "normcli: error: in/x9.npy: holds 1 NaN/Inf value (pass --allow-nonfinite to process "
        "it anyway)")
    assert result.stdout_bytes == b""
    assert files_in(tmp_path / "out") == []
    assert files_in(tmp_path) == [f"in/x{i}.npy" for i in (0, 1, 2, 9)]


def test_stacking_different_shapes_writes_nothing(invoke, three, save, tmp_path, files_in):
    save("in/x3.npy", np.ones((2, 4, 4), np.float32))
    result = invoke("lrn", "in", "-o", "all.npy")
    line = one_line_error(result)
    assert line.startswith("normcli: error: in/x3.npy: has shape (2, 4, 4) but in/x0.npy has "
                           "(3, 4, 4)")
    assert files_in(tmp_path) == [f"in/x{i}.npy" for i in range(4)]


def test_missing_output_directory_parent(invoke, three, tmp_path):
    line = one_line_error(invoke("lrn", "in/x0.npy", "-o", "nope/y.npy"))
    assert line == "normcli: error: nope/y.npy: directory does not exist"


# ----------------------------------------------------------- stdout and streams


def test_stdout_carries_npy_and_stderr_the_table(invoke, three):
    result = invoke("lrn", "in/x0.npy", "-o", "-")
    assert result.exit_code == 0, result.stderr
    y = np.load(io.BytesIO(result.stdout_bytes))
    np.testing.assert_array_equal(y, normcli.lrn(three[0]))
    assert result.stderr.splitlines()[0].startswith("LRN inter-channel")
    assert result.stderr.strip().splitlines()[-1] == "wrote .npy to stdout"


def test_stdout_several_inputs_stacked(invoke, three):
    result = invoke("batchnorm", "in", "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    np.testing.assert_allclose(np.load(io.BytesIO(result.stdout_bytes)),
                               normcli.batch_norm(np.stack(three)), rtol=1e-6, atol=1e-6)


def test_json_and_stdout_data_conflict(invoke, three):
    assert usage_error(invoke("lrn", "in/x0.npy", "-o", "-", "--json")) == (
        "Error: --json and -o - both write to stdout; choose one")


def test_without_output_nothing_is_written(invoke, three, tmp_path, files_in):
    result = invoke("lrn", "in")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        "nothing written: add -o FILE, -o DIR/ or -o - to save the results")
    assert files_in(tmp_path) == ["in/x0.npy", "in/x1.npy", "in/x2.npy"]


def test_no_deprecated_click_api(save, tmp_path, monkeypatch):
    """Warnings are errors in this test suite; normcli must not trigger click's."""
    from click.testing import CliRunner

    from normcli.cli.main import cli

    monkeypatch.chdir(tmp_path)
    save("x.npy", np.ones((2, 3, 3), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        result = CliRunner().invoke(cli, ["lrn", "x.npy", "-o", "-", "-q"])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == 0


# ------------------------------------------------------------------------ bugs


def test_npz_output_member_names_collide(invoke, save, tmp_path):
    save("d1/a.npy", np.ones((2, 3, 3), np.float32))
    save("d2/a.npy", np.full((2, 3, 3), 2, np.float32))
    result = invoke("lrn", "d1/a.npy", "d2/a.npy", "-o", "all.npz", "-q")
    if result.exit_code == 0:
        with np.load(tmp_path / "all.npz") as z:
            assert len(z.files) == 2  # both results kept
    else:  # or refused up front, naming both inputs, writing nothing
        assert result.exit_code in (1, 2)
        assert "d1/a.npy" in result.stderr and "d2/a.npy" in result.stderr
        assert not (tmp_path / "all.npz").exists()


def test_png_with_channels_last_is_read_and_written_as_hwc(invoke, tmp_path):
    """--channels-last makes a PNG (H, W, C), so that LRN runs across its colours."""
    rgb = np.random.default_rng(5).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "x.png")
    result = invoke("lrn", "x.png", "--channels-last", "--n", "3", "--alpha", "1",
                    "-o", "y.npy", "-q")
    assert result.exit_code == 0, result.stderr
    want = normcli.lrn(rgb.astype(np.float32) / 255, n=3, alpha=1, channels_last=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    result = invoke("lrn", "x.png", "--channels-last", "-o", "y.png", "-q")
    assert result.exit_code == 0, result.stderr
    with Image.open(tmp_path / "y.png") as img:
        assert img.size == (7, 6) and img.mode == "RGB"


def test_format_npy_keeps_the_values_of_png_inputs(invoke, tmp_path, files_in):
    """PNG inputs into -o DIR/ are PNGs (each channel rescaled to 0..255); with
    --format npy the normalized float32 values themselves are kept."""
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(5)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(
            tmp_path / "img" / f"{name}.png")
    assert invoke("lrn", "img", "-o", "asis/", "-q").exit_code == 0
    assert files_in(tmp_path / "asis") == ["a.png", "b.png"]
    assert invoke("lrn", "img", "-o", "vals/", "-q", "--format", "npy").exit_code == 0
    assert files_in(tmp_path / "vals") == ["a.npy", "b.npy"]
    with Image.open(tmp_path / "img" / "a.png") as image:
        x = np.asarray(image).transpose(2, 0, 1) / np.float32(255)
    got = np.load(tmp_path / "vals" / "a.npy")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, normcli.lrn(x.astype(np.float32)), rtol=1e-6)


def test_format_png_and_its_limits(invoke, three, tmp_path, files_in):
    """--format png turns .npy inputs into images; it applies to -o DIR/ only."""
    assert invoke("batchnorm", "in", "-o", "pics/", "-q", "--format", "png").exit_code == 0
    assert files_in(tmp_path / "pics") == ["x0.png", "x1.png", "x2.png"]
    with Image.open(tmp_path / "pics" / "x0.png") as image:
        assert image.size == (4, 4)
    for out in ("y.npy", "-"):
        line = usage_error(invoke("lrn", "in/x0.npy", "-o", out, "--format", "npy"))
        assert line == "Error: --format is for -o DIR/; a file's suffix gives its type"
    assert "--format" in usage_error(invoke("lrn", "in", "-o", "d/", "--format", "jpg"))
