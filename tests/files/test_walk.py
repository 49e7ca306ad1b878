"""Folders walked, lists of paths read, stdin sniffed, and nothing skipped without a word."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from normcli.errors import InputError, UsageError
from normcli.files.walk import read_stdin, walk_inputs


def _jpeg(path, h=6, w=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(path, "JPEG")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "photos"
    _jpeg(root / "a.jpg")
    _jpeg(root / "sub" / "b.JPEG")
    _jpeg(root / "sub" / "deeper" / "c.jpg")
    (root / "notes.txt").write_text("x")
    (root / "meta.json").write_text("{}")
    (root / "more.json").write_text("{}")
    (root / ".hidden.jpg").write_bytes(b"junk")
    (root / ".cache").mkdir()
    _jpeg(root / ".cache" / "x.jpg")
    (root / "gone.jpg").symlink_to(root / "nowhere.jpg")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    return root


def test_not_recursive_counts_what_it_skips(tree):
    found = walk_inputs([str(tree)])
    assert [s.label for s in found.sources] == [f"{tree}/a.jpg"]
    assert found.skipped_text() == ("2 .json files, 1 .txt file, 1 broken symlink, 1 hidden "
                                    "file, 1 hidden folder, 1 subfolder (use -r to include it)")


def test_recursive_mirrors_the_tree_and_stops_at_symlink_loops(tree):
    found = walk_inputs([str(tree)], recursive=True)
    assert [s.relname for s in found.sources] == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    assert found.skipped["symlink loops"] == 1
    assert "subfolders (use -r to include them)" not in found.skipped


def test_files_from_lines_and_nul(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text("photos/a.jpg\n\nphotos/sub/b.JPEG\r\n")
    found = walk_inputs([], files_from=str(listing))
    assert [s.relname for s in found.sources] == ["photos/a.png", "photos/sub/b.png"]
    stdin = io.BytesIO(b"photos/sub/deeper/c.jpg\0" + os.fsencode(tree / "a.jpg") + b"\0")
    found = walk_inputs([], files_from="-", null=True, stdin=stdin)
    assert [s.relname for s in found.sources] == ["photos/sub/deeper/c.png", "a.png"]
    with pytest.raises(InputError, match="lists no paths"):
        walk_inputs([], files_from="-", stdin=io.BytesIO(b"\n\n"))
    with pytest.raises(UsageError, match="standard input can only be read once"):
        walk_inputs(["-"], files_from="-", stdin=io.BytesIO(b""))
    with pytest.raises(UsageError, match="no inputs given"):
        walk_inputs([])


def test_files_from_nul_without_0_a_device_list_and_0_alone_are_refused(tree, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(os.fsencode(tree / "a.jpg") + b"\0" + os.fsencode(tree / "a.jpg"))
    with pytest.raises(InputError, match="list.txt: holds NUL characters.*-0"):
        walk_inputs([], files_from=str(listing))
    with pytest.raises(InputError, match="/dev/zero: is a device"):  # would never end
        walk_inputs([], files_from="/dev/zero")
    with pytest.raises(UsageError, match="-0/--null needs --files-from"):
        walk_inputs([str(tree)], null=True)


class _Endless(io.RawIOBase):
    """A pipe that never ends (``yes LINE |``), counting what was read of it."""

    def __init__(self, line: bytes) -> None:
        self.line, self.read_bytes = line, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b)
        b[:n] = (self.line * (n // len(self.line) + 1))[:n]
        self.read_bytes += n
        return n


def test_an_endless_list_ends_in_one_line(tree, monkeypatch):
    """``yes y | normcli ... --files-from -`` stops at its first missing path, an
    endless line at MAX_ENTRY bytes, an endless list of one real file at
    MAX_LISTED paths, having read no more than it needed."""
    from normcli.files import walk

    missing = _Endless(b"y\n")
    with pytest.raises(InputError, match="y: no such file"):
        walk_inputs([], files_from="-", stdin=io.BufferedReader(missing))
    assert missing.read_bytes <= 2 * walk._CHUNK
    one_line = _Endless(b"y")
    with pytest.raises(InputError, match="entry longer than 65,536 bytes: not a list"):
        walk_inputs([], files_from="-", stdin=io.BufferedReader(one_line))
    assert one_line.read_bytes <= 2 * walk._CHUNK
    monkeypatch.setattr(walk, "MAX_LISTED", 1000)
    with pytest.raises(InputError, match="^--files-from -: lists more than 1,000 paths: run "):
        walk_inputs([], files_from="-",
                    stdin=io.BufferedReader(_Endless(os.fsencode(tree / "a.jpg") + b"\n")))
    listed = (os.fsencode(tree / "a.jpg") + b"\r\n") * 1000
    monkeypatch.setattr(walk, "_CHUNK", 7)  # entries and their \r\n cut across reads
    found = walk_inputs([], files_from="-", stdin=io.BytesIO(listed))
    assert [s.label for s in found.sources] == [str(tree / "a.jpg")] * 1000


def test_folder_without_inputs_says_what_it_holds(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_text("1")
    with pytest.raises(InputError, match=r"no \.npy, \.npz or image files \(it holds 1 \.csv "):
        walk_inputs([str(tmp_path / "d")])


def test_multipage_tiff_is_one_input_per_page(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 4, 5), np.uint16),
                     photometric="minisblack")
    found = walk_inputs([str(tmp_path / "stack.tif")])
    assert [s.label for s in found.sources] == [f"{tmp_path}/stack.tif:page{i}" for i in range(3)]
    assert [s.relname for s in found.sources] == [f"stack/page{i}.tif" for i in range(3)]


def test_explicit_file_without_a_known_suffix_is_sniffed(tmp_path):
    _jpeg(tmp_path / "photo")
    (src,) = walk_inputs([str(tmp_path / "photo")]).sources
    assert src.kind == "image" and src.load().shape == (3, 6, 8)


@pytest.mark.parametrize("kind", ["npy", "npz", "png", "jpeg", "tiff"])
def test_stdin_type_told_by_its_bytes(kind):
    x = (np.arange(24).reshape(4, 6) * 10).astype(np.uint8)
    buf = io.BytesIO()
    if kind == "npy":
        np.save(buf, x)
    elif kind == "npz":
        np.savez(buf, a=x, b=x + 1)
    elif kind == "tiff":
        tifffile.imwrite(buf, x)
    else:
        Image.fromarray(x).save(buf, "PNG" if kind == "png" else "JPEG", quality=100)
    (stdin,) = walk_inputs(["-"], stdin=io.BytesIO(buf.getvalue())).sources
    sources = read_stdin(stdin)
    if kind == "npz":
        assert [s.label for s in sources] == ["<stdin>:a", "<stdin>:b"]
        np.testing.assert_array_equal(sources[1].load(), x + 1)
        return
    (s,) = sources
    arr = s.load()
    if kind == "npy":
        np.testing.assert_array_equal(arr, x)
    else:
        assert s.is_image and arr.shape == (1, 4, 6) and arr.dtype == np.float32
        if kind != "jpeg":
            np.testing.assert_array_equal(arr[0], x / np.float32(255))
        assert s.relname == {"png": "stdin.png", "jpeg": "stdin.png", "tiff": "stdin.tif"}[kind]
