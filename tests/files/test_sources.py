"""Tests for normcli.files.sources: expanding and loading inputs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npformat
from PIL import Image

from normcli.errors import InputError, OutputError, UsageError
from normcli.files import (
    Source,
    check_not_input,
    count_nonfinite,
    expand_inputs,
    load_inputs,
    output_path_for,
    plan_outputs,
)


@pytest.fixture
def features(tmp_path):
    d = tmp_path / "features"
    d.mkdir()
    np.save(d / "b.npy", np.arange(6, dtype=np.float32).reshape(1, 2, 3))
    np.save(d / "a.npy", np.ones((2, 2, 2)))
    np.savez(d / "x.npz", conv1=np.zeros((1, 2, 2)), conv2=np.ones((3, 1, 1)))
    Image.new("RGB", (4, 3), (255, 0, 0)).save(d / "c.PNG")
    (d / "notes.txt").write_text("ignored")
    (d / ".hidden.npy").write_bytes(b"junk, skipped")
    (d / "sub").mkdir()
    np.save(d / "sub" / "deep.npy", np.ones(3))
    return d


def test_directory_expansion(features):
    sources = expand_inputs([str(features)])
    labels = [s.label for s in sources]
    base = str(features)
    assert labels == [f"{base}/a.npy", f"{base}/b.npy", f"{base}/c.PNG",
                      f"{base}/x.npz:conv1", f"{base}/x.npz:conv2"]  # fmt: skip
    assert [s.relname for s in sources] == ["a.npy", "b.npy", "c.PNG", "x/conv1.npy", "x/conv2.npy"]
    assert [s.kind for s in sources] == ["npy", "npy", "png", "npz", "npz"]
    assert sources[3].path == features / "x.npz" and sources[3].member == "conv1"
    arrays = [s.load() for s in sources]
    assert arrays[2].shape == (3, 3, 4) and arrays[2].dtype == np.float32
    assert arrays[2][0].max() == 1.0 and arrays[2][1].max() == 0.0
    assert arrays[4].shape == (3, 1, 1)
    assert sources[2].load(raw_png=True).dtype == np.uint8


def test_relative_labels_as_given(features, monkeypatch):
    monkeypatch.chdir(features.parent)
    sources = expand_inputs(["features", "features/a.npy"])
    assert sources[0].label == "features/a.npy"
    assert sources[-1].label == "features/a.npy" and sources[-1].relname == "a.npy"


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        expand_inputs([str(tmp_path / "nope.npy")])
    assert str(e.value) == f"{tmp_path / 'nope.npy'}: no such file"


def test_broken_symlink(tmp_path):
    (tmp_path / "link.npy").symlink_to(tmp_path / "gone.npy")
    with pytest.raises(InputError, match=r"no such file \(broken symlink\)"):
        expand_inputs([tmp_path / "link.npy"])


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "data.csv"
    p.write_text("1,2,3")
    with pytest.raises(InputError) as e:
        expand_inputs([str(p)])
    assert str(e.value) == (f"{p}: unsupported file type '.csv' (supported: .npy, .npz, .png, "
                            ".jpg, .jpeg, .tif, .tiff, .webp, .bmp, .gif)")
    q = tmp_path / "README"
    q.write_text("x")
    with pytest.raises(InputError, match=r"unsupported file type '\(no suffix\)'"):
        expand_inputs([str(q)])


def test_empty_directory(tmp_path):
    with pytest.raises(InputError, match=": directory is empty$"):
        expand_inputs([str(tmp_path)])


def test_directory_without_supported_files(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "deep.npy", np.ones(3))
    with pytest.raises(InputError) as e:
        expand_inputs([str(tmp_path)])
    assert "directory has no .npy, .npz or image files" in str(e.value)
    assert "1 .txt file, 1 subfolder (use -r to include it)" in str(e.value)


def test_bad_npz_found_at_expand_time(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_text("not a zip")
    with pytest.raises(InputError, match=r"bad\.npz: not a valid \.npz file"):
        expand_inputs([str(p)])


def test_npz_member_names_are_sanitised(tmp_path):
    p = tmp_path / "evil.npz"
    with zipfile.ZipFile(p, "w") as zf:
        for name in ("../../etc/passwd.npy", "/abs.npy", "ok/sub.npy"):
            with zf.open(name, "w") as f:
                npformat.write_array(f, np.ones(2))
    sources = expand_inputs([str(p)])
    assert [s.relname for s in sources] == [
        "evil/_/_/etc/passwd.npy", "evil/_/abs.npy", "evil/ok/sub.npy"
    ]  # fmt: skip
    out = tmp_path / "out"
    for s in sources:
        target = output_path_for(s, out)
        assert out.resolve() in target.resolve().parents
    assert sources[0].load().tolist() == [1.0, 1.0]


def test_stdin(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=">i4"))
    stream = io.BytesIO(buf.getvalue())
    (src,) = expand_inputs(["-"], stdin=stream)
    assert (src.label, src.relname, src.path, src.kind) == ("<stdin>", "stdin.npy", None, "stdin")
    out = src.load()
    assert out.dtype == np.int32 and out.tolist() == [0, 1, 2, 3]
    with pytest.raises(UsageError, match="standard input can only be read once"):
        expand_inputs(["-", "-"], stdin=stream)


def test_stdin_rejects_garbage_and_terminals():
    (src,) = expand_inputs(["-"], stdin=io.BytesIO(b"hello"))
    with pytest.raises(InputError, match=r"^<stdin>: not a \.npy file \(bad magic\)"):
        src.load()

    class Tty(io.BytesIO):
        def isatty(self):
            return True

    (src,) = expand_inputs(["-"], stdin=Tty())
    with pytest.raises(InputError, match="is a terminal"):
        src.load()


def test_load_inputs_and_options(features, monkeypatch):
    pairs = load_inputs([features / "a.npy", features / "c.PNG"], raw_png=True)
    assert [a.dtype for _, a in pairs] == [np.float64, np.uint8]
    with pytest.raises(InputError, match="over the limit of 10"):
        load_inputs([features / "a.npy"], max_bytes=10)
    monkeypatch.setenv("NORMCLI_MAX_BYTES", "10")
    (src,) = expand_inputs([features / "a.npy"])
    with pytest.raises(InputError, match="over the limit of 10"):
        src.load()
    with pytest.raises(ValueError, match="no inputs"):
        expand_inputs([])
    with pytest.raises(ValueError, match="sequence"):
        expand_inputs(str(features))


def test_mmap_option(features):
    (src,) = expand_inputs([features / "b.npy"])
    arr = src.load(mmap=True)
    assert isinstance(arr, np.memmap) and arr.shape == (1, 2, 3)
    del arr


def test_file_deleted_after_expansion(features):
    (src,) = expand_inputs([features / "a.npy"])
    (features / "a.npy").unlink()
    with pytest.raises(InputError, match="a.npy: no such file"):
        src.load()


def test_count_nonfinite():
    assert count_nonfinite(np.array([1.0, np.nan, np.inf, -np.inf], dtype=np.float32)) == 3
    assert count_nonfinite(np.arange(10)) == 0
    assert count_nonfinite(np.ones(3, dtype=bool)) == 0
    x = np.zeros((100, 7))
    x[::3, 2] = np.nan
    assert count_nonfinite(x, chunk=50) == 34
    assert count_nonfinite(x[:, ::2], chunk=13) == 34  # non-contiguous view
    with pytest.raises(ValueError, match="unsupported dtype"):
        count_nonfinite(np.array(["a"]))


# ---------------------------------------------------------- output naming


def test_output_path_for(features, tmp_path):
    sources = expand_inputs([features])
    out = tmp_path / "out"
    assert output_path_for(sources[0], out) == out / "a.npy"
    assert output_path_for(sources[3], out, ".png") == out / "x" / "conv1.png"
    assert output_path_for(sources[2], out, ".npy") == out / "c.npy"
    assert not (out / "x").exists()
    output_path_for(sources[3], out, mkdir=True)
    assert (out / "x").is_dir()
    with pytest.raises(ValueError, match="suffix must be one of"):
        output_path_for(sources[0], out, ".txt")
    stdin = Source("<stdin>", "stdin.npy", None, "stdin")
    assert output_path_for(stdin, out, ".png") == out / "stdin.png"


def test_plan_outputs_collisions_and_inputs(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        np.save(tmp_path / d / "x.npy", np.ones(2))
    sources = expand_inputs([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(OutputError, match=r"both .*a/x\.npy and .*b/x\.npy would be written here"):
        plan_outputs(sources, tmp_path / "out")
    # Writing into the input directory with the same name: refused.
    (src,) = expand_inputs([tmp_path / "a"])
    with pytest.raises(OutputError, match="is also an input"):
        plan_outputs([src], tmp_path / "a")
    assert plan_outputs([src], tmp_path / "a", ".png") == [tmp_path / "a" / "x.png"]


def test_check_not_input_links(tmp_path):
    np.save(tmp_path / "in.npy", np.ones(2))
    sources = expand_inputs([tmp_path / "in.npy"])
    (tmp_path / "hard.npy").hardlink_to(tmp_path / "in.npy")
    (tmp_path / "soft.npy").symlink_to(tmp_path / "in.npy")
    for name in ("in.npy", "hard.npy", "soft.npy", "sub/../in.npy"):
        with pytest.raises(OutputError, match="is also an input .*even with --force"):
            check_not_input(tmp_path / name, sources)
    check_not_input(tmp_path / "other.npy", sources)
    check_not_input(Path("-"), [Source("<stdin>", "stdin.npy", None, "stdin")])
