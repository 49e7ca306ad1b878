"""Tests for normcli.files.atomic and normcli.files.output (writing)."""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile

import numpy as np
import pytest
from faulty import FullDisk
from PIL import Image

import normcli.files.atomic as atomic
from normcli.errors import OutputError
from normcli.files import (
    atomic_write,
    cleanup_stale_temps,
    read_npy,
    read_npy_stream,
    read_npz_member,
    read_png,
    same_file,
    to_png_array,
    write_array,
    write_npy_stream,
)


def temps(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_and_temp_name(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_write(target) as f:
        names = temps(tmp_path)
        assert len(names) == 1 and names[0].startswith(".out.bin.normcli-")
        f.write(b"hello")
        assert not target.exists()  # only appears when complete
    assert target.read_bytes() == b"hello"
    assert temps(tmp_path) == []


def test_exists_without_force(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputError) as e:
        with atomic_write(target) as f:  # pragma: no cover - body not reached
            f.write(b"new")
    assert str(e.value) == f"{target}: exists (use --force to replace it)"
    assert target.read_bytes() == b"old"
    with atomic_write(target, force=True) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"


def test_target_appearing_during_write_is_not_clobbered(tmp_path):
    target = tmp_path / "race.bin"
    with pytest.raises(OutputError, match="exists"):
        with atomic_write(target) as f:
            f.write(b"mine")
            target.write_bytes(b"theirs")
    assert target.read_bytes() == b"theirs"
    assert temps(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_mid_write_keeps_old_file(tmp_path, exc):
    target = tmp_path / "out.npy"
    target.write_bytes(b"old contents")
    with pytest.raises(type(exc)):
        with atomic_write(target, force=True) as f:
            f.write(b"partial new contents")
            raise exc
    assert target.read_bytes() == b"old contents"
    assert temps(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_exception_with_new_file_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "new.npy") as f:
            f.write(b"x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_bad_targets(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        with atomic_write(tmp_path):
            pass  # pragma: no cover
    with pytest.raises(OutputError, match="missing/x.npy: directory does not exist"):
        with atomic_write(tmp_path / "missing" / "x.npy"):
            pass  # pragma: no cover


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX, non-root")
def test_read_only_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            with atomic_write(d / "x.bin"):
                pass  # pragma: no cover
    finally:
        d.chmod(0o700)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o640
    existing = tmp_path / "keep.bin"
    existing.write_bytes(b"x")
    existing.chmod(0o604)
    with atomic_write(existing, force=True) as f:
        f.write(b"y")
    assert existing.stat().st_mode & 0o777 == 0o604


def test_cleanup_stale_temps(tmp_path):
    old = tmp_path / ".a.npy.normcli-abc123.tmp"
    new = tmp_path / ".b.npy.normcli-def456.tmp"
    other = tmp_path / ".c.npy.other.tmp"
    keep = tmp_path / "data.normcli-x.tmp"  # not hidden: not ours
    for p in (old, new, other, keep):
        p.write_bytes(b"x")
    past = time.time() - 7200
    for p in (old, other, keep):
        os.utime(p, (past, past))
    assert cleanup_stale_temps(tmp_path) == [old]
    assert not old.exists() and new.exists() and other.exists() and keep.exists()
    assert cleanup_stale_temps(tmp_path, older_than=-1) == [new]
    assert cleanup_stale_temps(tmp_path / "missing") == []


def test_same_file(tmp_path):
    a = tmp_path / "a.npy"
    a.write_bytes(b"x")
    (tmp_path / "link.npy").symlink_to(a)
    (tmp_path / "hard.npy").hardlink_to(a)
    (tmp_path / "d").mkdir()
    assert same_file(a, tmp_path / "link.npy")
    assert same_file(a, tmp_path / "hard.npy")
    assert same_file(a, tmp_path / "d" / ".." / "a.npy")
    assert same_file(tmp_path / "new.npy", tmp_path / "d" / ".." / "new.npy")  # neither exists
    assert not same_file(a, tmp_path / "new.npy")
    b = tmp_path / "b.npy"
    b.write_bytes(b"x")
    assert not same_file(a, b)


# ------------------------------------------------------------ write_array


def test_write_npy(tmp_path):
    arr = np.asfortranarray(np.arange(12, dtype=">f4").reshape(3, 4))
    write_array(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy"), arr)
    with pytest.raises(OutputError, match="exists"):
        write_array(tmp_path / "a.npy", arr)
    write_array(tmp_path / "a.npy", arr * 2, force=True)
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy"), arr * 2)
    with pytest.raises(ValueError, match="object"):
        write_array(tmp_path / "o.npy", np.array([None]))
    assert temps(tmp_path) == []
    assert not (tmp_path / "o.npy").exists()


def test_write_npz(tmp_path):
    write_array(tmp_path / "one.npz", np.ones(3))
    np.testing.assert_array_equal(read_npz_member(tmp_path / "one.npz", "arr_0"), np.ones(3))
    write_array(tmp_path / "many.NPZ", {"conv1": np.zeros((2, 2)), "fc": np.arange(3)})
    with zipfile.ZipFile(tmp_path / "many.NPZ") as zf:
        assert zf.namelist() == ["conv1.npy", "fc.npy"]
    with np.load(tmp_path / "many.NPZ") as z:
        assert z["fc"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="array names"):
        write_array(tmp_path / "bad.npz", {"": np.ones(2)})
    with pytest.raises(ValueError, match="only be written to .npz"):
        write_array(tmp_path / "bad.npy", {"a": np.ones(2)})


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("shape", [(5, 6), (3, 5, 6), (4, 5, 6)])
def test_write_png(tmp_path, bits, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    write_array(tmp_path / "o.png", x, png_bits=bits)
    back = read_png(tmp_path / "o.png", raw=True)
    expected = to_png_array(x, bits)
    expected = expected.transpose(2, 0, 1) if expected.ndim == 3 else expected[None]
    np.testing.assert_array_equal(back, expected)
    if bits == 16 and len(shape) == 3 and shape[0] == 3:
        with Image.open(tmp_path / "o.png") as im:  # a real PNG for other tools too
            assert im.size == (6, 5)


def test_write_unsupported_suffix(tmp_path):
    with pytest.raises(OutputError) as e:
        write_array(tmp_path / "a.csv", np.ones(2))
    assert (
        str(e.value)
        == f"{tmp_path / 'a.csv'}: unsupported output type '.csv' (supported: .npy, .npz, .png, "
        ".tif, .tiff)"
    )
    with pytest.raises(ValueError, match="png_bits"):
        write_array(tmp_path / "a.png", np.ones((2, 2)), png_bits=4)
    assert list(tmp_path.iterdir()) == []


def test_write_disk_error_becomes_output_error(tmp_path, monkeypatch):
    import normcli.files.output as output

    def full(fp, arr):
        fp.write(b"\x93NUMPY")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "write_npy", full)
    with pytest.raises(OutputError, match="a.npy: No space left on device"):
        write_array(tmp_path / "a.npy", np.ones(2))
    assert list(tmp_path.iterdir()) == []


def test_write_npy_stream_to_pipe():
    arr = np.arange(100_000, dtype=np.float32).reshape(10, -1)  # > pipe buffer
    r, w = os.pipe()
    with os.fdopen(r, "rb") as reader, os.fdopen(w, "wb") as writer:
        result = {}

        def consume():
            result["arr"] = read_npy_stream(reader)

        t = threading.Thread(target=consume)
        t.start()
        write_npy_stream(writer, arr)
        writer.close()
        t.join(10)
    np.testing.assert_array_equal(result["arr"], arr)


def test_write_npy_stream_bytesio():
    buf = io.BytesIO()
    write_npy_stream(buf, np.ones((2, 3), dtype=np.int8))
    assert np.load(io.BytesIO(buf.getvalue())).shape == (2, 3)


@pytest.mark.parametrize("name", ["\U0001F600" * 60 + ".npy",  # 244 bytes of UTF-8
                                  "é" * 125 + ".npy",  # 254 bytes
                                  "a" * 251 + ".npy"],  # 255: the most a name may have
                         ids=["emoji", "accents", "ascii"])
def test_long_names_in_any_script(tmp_path, name):
    """The temporary name kept 100 characters of the target's (400 bytes of emoji):
    "File name too long" for a valid name.  It keeps 100 bytes, whole characters."""
    target = tmp_path / name
    with atomic_write(target) as f:
        (tmp,) = temps(tmp_path)
        assert len(os.fsencode(tmp)) <= 255
        assert tmp.encode("utf-8").decode("utf-8") == tmp  # whole characters
        f.write(b"x")
    assert target.read_bytes() == b"x"
    from normcli.files import StagedWrites

    with StagedWrites() as staged:
        with staged.open(target, force=True) as f:
            f.write(b"y")
        staged.commit()
    assert target.read_bytes() == b"y"
    assert temps(tmp_path) == []


# ------------------------------------------------------------ disk full


def _writers():
    """Every way normcli writes a file: name -> (write(path), file name)."""
    from normcli.files import StagedWrites, stage_array

    x = np.ones((3, 4, 5), np.float32)

    def staged(path, raw=False):
        with StagedWrites() as s:
            with s.open(path, raw=raw) as f:
                f.write(b"x" * 10000)
            s.commit()

    def staged_array(path):
        with StagedWrites() as s:
            stage_array(s, path, {"mean": x, "var": x} if path.suffix == ".npz" else x)
            s.commit()

    def atomic(path):
        with atomic_write(path) as f:
            f.write(b"x" * 10000)

    return {"atomic_write": (atomic, "o.bin"),
            "write_array .npz": (lambda p: write_array(p, {"a": x}), "o.npz"),
            "write_array .png": (lambda p: write_array(p, x), "o.png"),
            "write_array .npy": (lambda p: write_array(p, x), "o.npy"),
            "staged": (staged, "p.png"), "staged raw": (lambda p: staged(p, True), "r.bin"),
            "stage_array .npz": (staged_array, "s.npz"),
            "stage_array .npy": (staged_array, "s.npy")}


@pytest.mark.parametrize("where", FullDisk.STAGES)
@pytest.mark.parametrize("writer", list(_writers()))
def test_disk_full_names_the_file(tmp_path, monkeypatch, writer, where):
    """Writing o.npz, s.npz or a preview on a full disk said "No space left on device"
    without the file: the close after the error failed again and replaced it."""
    import normcli.files.atomic as atomic

    real = atomic._create
    monkeypatch.setattr(atomic, "_create", lambda *a, **k: FullDisk(real(*a, **k), where))
    write, name = _writers()[writer]
    with pytest.raises(OutputError) as e:
        write(tmp_path / name)
    assert str(e.value) == f"{tmp_path / name}: No space left on device"
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------- commit: all or nothing


def _outputs(folder) -> dict[str, bytes]:
    """Every entry of ``folder`` (temporary files too): name -> bytes, or "dir"."""
    return {p.name: ("dir" if p.is_dir() else p.read_bytes()) for p in folder.iterdir()}


def _stage_all(staged, folder, count: int, force: bool) -> list:
    targets = [folder / f"a{i:03d}.npy" for i in range(count)]
    for t in targets:
        with staged.open(t, force=force) as f:
            f.write(b"new " + t.name.encode())
    return targets


@pytest.fixture
def old_outputs(tmp_path):
    """A folder with 60 old outputs (for --force runs)."""
    out = tmp_path / "out"
    out.mkdir()
    for i in range(60):
        (out / f"a{i:03d}.npy").write_bytes(f"old {i}".encode())
    return out


@pytest.mark.parametrize("force, plant", [(False, "file"), (True, "directory")])
def test_commit_checks_every_target_first(tmp_path, old_outputs, force, plant):
    """Another process plants out/a059.npy after the outputs were staged: the commit
    moved 59 outputs into place, then failed (without --force); with --force and a
    directory there, it replaced 59 outputs, then failed.  Now nothing moves."""
    from normcli.files import StagedWrites

    out = old_outputs if force else tmp_path / "fresh"
    out.mkdir(exist_ok=True)
    planted = out / "a059.npy"
    with StagedWrites() as staged:
        targets = _stage_all(staged, out, 60, force)
        if plant == "directory":
            planted.unlink()
            planted.mkdir()
        else:
            planted.write_bytes(b"theirs")
        before = {k: v for k, v in _outputs(out).items() if atomic.TEMP_MARKER not in k}
        with pytest.raises(OutputError) as e:
            staged.commit()
        problem = "is a directory" if plant == "directory" else "exists (use --force"
        assert str(e.value).startswith(f"{planted}: {problem}")
    assert _outputs(out) == before
    assert len(targets) == 60


def _plant_at(monkeypatch, when, where, what: str) -> list:
    """Plant ``where`` once the commit's links and renames reach the target ``when``:
    another process racing the commit, after every target was checked (``what``:
    "file", "directory", or "interrupt" for a Ctrl-C at that point instead)."""
    fired = []
    for name in ("link", "replace", "rename"):
        real = getattr(os, name)

        def step(*args, _real=real, **kwargs):
            if not fired and os.fspath(when) in map(os.fspath, args):
                fired.append(args)
                if what == "file":
                    where.write_bytes(b"theirs")
                elif what == "directory":
                    where.unlink(missing_ok=True)
                    where.mkdir()
                else:
                    raise KeyboardInterrupt  # a Ctrl-C in the middle of the commit
            return _real(*args, **kwargs)

        monkeypatch.setattr(atomic.os, name, step)
    return fired


@pytest.mark.parametrize("hard_links", [True, False])
@pytest.mark.parametrize("force, what", [(False, "file"), (True, "directory"),
                                         (True, "interrupt"), (False, "interrupt")])
def test_a_failed_commit_undoes_its_moves(tmp_path, old_outputs, monkeypatch, force, what,
                                          hard_links):
    """A conflict planted during the commit itself (after the checks), or a Ctrl-C:
    the moves done are undone, each replaced output put back, each new one removed.
    Also where the file system has no hard links (the replaced files are moved aside)."""
    from normcli.files import StagedWrites

    out = old_outputs if force else tmp_path / "fresh"
    out.mkdir(exist_ok=True)
    before = _outputs(out)
    planted = out / "a059.npy"
    with StagedWrites(sync=False) as staged:
        _stage_all(staged, out, 60, force)
        if not hard_links:
            def no_links(*args, **kwargs):
                raise PermissionError(1, "Operation not permitted")

            monkeypatch.setattr(atomic.os, "link", no_links)
        fired = _plant_at(monkeypatch, out / "a030.npy", planted, what)
        with pytest.raises(KeyboardInterrupt if what == "interrupt" else OutputError) as e:
            staged.commit()
        assert fired  # when half the outputs were in place
        if what != "interrupt":
            problem = "is a directory" if what == "directory" else "exists (use --force"
            assert str(e.value).startswith(f"{planted}: {problem}"), str(e.value)
    after = _outputs(out)
    if what == "file":  # the planted file is theirs: kept
        assert after.pop("a059.npy") == b"theirs"
    elif what == "directory":
        assert after.pop("a059.npy") == "dir"
        before.pop("a059.npy")
    assert after == before


@pytest.mark.parametrize("force", [False, True])
def test_a_commit_keeps_nothing_aside(tmp_path, old_outputs, force):
    """Once every target is in place the replaced files kept aside are gone, and
    each output is the new file (same inode as staged, mode kept)."""
    from normcli.files import StagedWrites

    out = old_outputs if force else tmp_path / "fresh"
    out.mkdir(exist_ok=True)
    if force:
        (out / "a000.npy").chmod(0o640)
    (out / "link.npy").symlink_to("a001.npy") if force else None
    with StagedWrites() as staged:
        targets = _stage_all(staged, out, 60, force)
        if force:
            with staged.open(out / "link.npy", force=True) as f:
                f.write(b"replaces the symlink, not a001.npy")
        staged.commit()
    assert temps(out) == []
    assert all(t.read_bytes() == b"new " + t.name.encode() for t in targets)
    if force:
        assert (out / "a000.npy").stat().st_mode & 0o777 == 0o640
        assert not (out / "link.npy").is_symlink()
        assert (out / "a001.npy").read_bytes() == b"new a001.npy"
