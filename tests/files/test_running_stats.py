"""Reading and writing each framework's stored batch-norm statistics (.npz)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from normcli.errors import InputError, OutputError, ParameterError
from normcli.files.running_stats import read_running_stats, write_running_stats
from normcli.ops.bn_conventions import BN_CONVENTIONS, initial_state, update_running
from normcli.ops.moments import batch_stats


@pytest.mark.parametrize("name", sorted(BN_CONVENTIONS))
def test_write_then_read(tmp_path, name):
    x = np.random.default_rng(0).normal(size=(4, 3, 2, 2))
    state = update_running(initial_state(name, (3,), dtype=np.float32),
                           batch_stats(x, per="channel"))
    path = tmp_path / "running.npz"
    write_running_stats(path, state)
    with np.load(path, allow_pickle=False) as f:  # the framework's own names
        assert set(BN_CONVENTIONS[name].keys) - {None} <= set(f.files)
        assert f[BN_CONVENTIONS[name].mean_key].dtype == np.float32
    back = read_running_stats(path)
    assert back.convention.name == name and back.dtype == np.float32
    assert np.array_equal(back.mean, state.mean) and back.extra == state.extra
    with pytest.raises(OutputError, match="exists"):
        write_running_stats(path, state)
    write_running_stats(path, state, force=True)


def test_reads_a_state_dict_saved_with_numpy(tmp_path):
    path = tmp_path / "bn1.npz"
    np.savez(path, running_mean=np.zeros(4, np.float32), running_var=np.ones(4, np.float32),
             num_batches_tracked=np.array(7), weight=np.ones(4), bias=np.zeros(4))
    state = read_running_stats(path, "PyTorch")
    assert state.extra == 7 and state.per == "channel" and state.shape == (4,)
    with pytest.raises(InputError, match="give the convention"):
        read_running_stats(path)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays,match", [
    ({"running_mean": np.zeros(2)}, "need running_var"),
    ({"running_mean": np.zeros(2), "running_var": np.array([1.0, -1.0])}, "negative"),
    ({"running_mean": np.zeros(2), "running_var": np.array([1.0, np.inf])}, "NaN or infinite"),
    ({"running_mean": np.zeros(2), "running_var": np.ones(2), "convention": np.array("caffe")},
     "stored in the caffe convention"),
])
def test_refuses_bad_statistics(tmp_path, arrays, match):
    path = _npz(tmp_path / "s.npz", **arrays)
    with pytest.raises(InputError, match=match) as e:
        read_running_stats(path, "pytorch")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_refuses_hostile_files(tmp_path):
    not_zip = tmp_path / "a.npz"
    not_zip.write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="not a valid .npz"):
        read_running_stats(not_zip, "keras")
    pickled = tmp_path / "p.npz"
    np.savez(pickled, moving_mean=np.array([object()], dtype=object),
             moving_variance=np.ones(1), allow_pickle=True)
    with pytest.raises(InputError, match="unsupported dtype"):
        read_running_stats(pickled, "keras")
    big = tmp_path / "big.npz"
    np.savez(big, moving_mean=np.zeros(1000), moving_variance=np.ones(1000))
    with pytest.raises(InputError, match="over the limit"):
        read_running_stats(big, "keras", max_bytes=100)
    stray = tmp_path / "stray.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("moving_mean.txt", "0")
    stray.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="not a .npy"):
        read_running_stats(stray, "keras")
    with pytest.raises(InputError, match="no such file"):
        read_running_stats(tmp_path / "missing.npz", "keras")


def test_unknown_convention_is_the_callers_error(tmp_path):
    path = _npz(tmp_path / "s.npz", moving_mean=np.zeros(1), moving_variance=np.ones(1))
    with pytest.raises(ParameterError):
        read_running_stats(path, "theano")
