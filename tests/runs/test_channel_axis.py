"""--channel-axis: the kernels see the channels moved last; outputs keep the
input's layout and equal, byte for byte, a run on the array transposed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from clihelp import one_line_error, usage_error

from normcli import runs


def _pair(save, x, axis):
    save("a.npy", x)
    save("l.npy", np.ascontiguousarray(np.moveaxis(x, axis, -1)))


@pytest.mark.parametrize("shape, axis", [((5, 3, 4), 1), ((2, 5, 7, 6), 2), ((2, 5, 7, 6), -2),
                                         ((2, 3, 5, 4, 4), 3)])
def test_lrn_equals_the_transposed_run(save, tmp_path, shape, axis):
    x = np.random.default_rng(len(shape)).uniform(0, 2, shape).astype(np.float32)
    _pair(save, x, axis)
    report = runs.lrn([tmp_path / "a.npy"], output=tmp_path / "ya.npy", channel_axis=axis,
                      convention="pytorch", n=3)
    runs.lrn([tmp_path / "l.npy"], output=tmp_path / "yl.npy", channels_last=True,
             convention="pytorch", n=3)
    got, want = np.load(tmp_path / "ya.npy"), np.load(tmp_path / "yl.npy")
    assert got.shape == x.shape and report.params["channel_axis"] == axis
    assert got.tobytes() == np.ascontiguousarray(np.moveaxis(want, -1, axis)).tobytes()


@pytest.mark.parametrize("per", ["channel", "activation"])
@pytest.mark.parametrize("shape, axis", [((6, 5, 3, 4), 2), ((6, 5, 3), -2), ((8, 3), 1)])
def test_batchnorm_in_memory_equals_the_transposed_run(save, tmp_path, per, shape, axis):
    x = np.random.default_rng(len(shape)).normal(1, 2, shape).astype(np.float32)
    _pair(save, x, axis)
    runs.batchnorm([tmp_path / "a.npy"], output=tmp_path / "ya.npy", channel_axis=axis, per=per,
                   save_stats=tmp_path / "sa.npz")
    runs.batchnorm([tmp_path / "l.npy"], output=tmp_path / "yl.npy", channels_last=True,
                   per=per, save_stats=tmp_path / "sl.npz")
    got, want = np.load(tmp_path / "ya.npy"), np.load(tmp_path / "yl.npy")
    assert got.tobytes() == np.ascontiguousarray(np.moveaxis(want, -1, axis)).tobytes()
    if per == "channel":
        with np.load(tmp_path / "sa.npz") as a, np.load(tmp_path / "sl.npz") as b:
            assert a["mean"].tobytes() == b["mean"].tobytes()
            assert a["var"].tobytes() == b["var"].tobytes()


def test_batchnorm_streamed_and_with_saved_stats_equal_the_transposed_run(tmp_path):
    x = np.random.default_rng(9).normal(-1, 3, (7, 5, 3, 4)).astype(np.float32)
    for d in ("a", "l"):
        (tmp_path / d).mkdir()
    for i, sample in enumerate(x):  # samples (5, 3, 4) with channels on axis 1
        np.save(tmp_path / "a" / f"s{i}.npy", sample)
        np.save(tmp_path / "l" / f"s{i}.npy", np.ascontiguousarray(np.moveaxis(sample, 1, -1)))
    runs.batchnorm([tmp_path / "a"], output=f"{tmp_path}/oa/", channel_axis=-2, per="channel",
                   save_stats=tmp_path / "sa.npz")
    runs.batchnorm([tmp_path / "l"], output=f"{tmp_path}/ol/", channels_last=True, per="channel",
                   save_stats=tmp_path / "sl.npz")
    runs.batchnorm([tmp_path / "a"], output=f"{tmp_path}/pa/", channel_axis=1,
                   stats=tmp_path / "sa.npz")
    for i in range(len(x)):
        want = np.ascontiguousarray(np.moveaxis(np.load(tmp_path / "ol" / f"s{i}.npy"), -1, 1))
        assert np.load(tmp_path / "oa" / f"s{i}.npy").tobytes() == want.tobytes()
        assert np.load(tmp_path / "pa" / f"s{i}.npy").tobytes() == want.tobytes()


@pytest.mark.parametrize("how", [{"keep_going": True}, {"resume": True}])
def test_batchnorm_input_by_input_equals_the_transposed_run(tmp_path, how):
    """--keep-going (both passes) and --resume (saved statistics) work input by input."""
    x = np.random.default_rng(13).normal(2, 3, (5, 4, 3, 6)).astype(np.float32)
    for d in ("a", "l"):
        (tmp_path / d).mkdir()
    for i, sample in enumerate(x):  # samples (4, 3, 6) with channels on axis 1
        np.save(tmp_path / "a" / f"s{i}.npy", sample)
        np.save(tmp_path / "l" / f"s{i}.npy", np.ascontiguousarray(np.moveaxis(sample, 1, -1)))
    runs.batchnorm([tmp_path / "l"], channels_last=True, per="channel",
                   save_stats=tmp_path / "sl.npz")
    stats = {"stats": tmp_path / "sl.npz"} if "resume" in how else {"per": "channel"}
    runs.batchnorm([tmp_path / "a"], output=f"{tmp_path}/oa/", channel_axis=1, **stats, **how)
    runs.batchnorm([tmp_path / "l"], output=f"{tmp_path}/ol/", channels_last=True, **stats,
                   **how)
    for i in range(len(x)):
        want = np.ascontiguousarray(np.moveaxis(np.load(tmp_path / "ol" / f"s{i}.npy"), -1, 1))
        assert np.load(tmp_path / "oa" / f"s{i}.npy").tobytes() == want.tobytes()


def test_keep_going_reports_a_bad_axis_and_does_the_rest(tmp_path):
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "a.npy", np.ones((2, 3, 4), np.float32))
    np.save(tmp_path / "d" / "b.npy", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    np.save(tmp_path / "d" / "c.npy", np.ones(3, np.float32))
    report = runs.batchnorm([tmp_path / "d"], output=f"{tmp_path}/o/", per="channel",
                            channel_axis=-2, keep_going=True)
    assert [f.label for f in report.failures] == [str(tmp_path / "d" / "c.npy")]
    assert "--channel-axis -2 is not one of them" in report.failures[0].message
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.npy", "b.npy"]


def test_bad_axes_exit_1_naming_the_file_and_conflicts_exit_2(invoke, save, tmp_path):
    save("x.npy", np.ones((4, 3, 2, 2), np.float32))
    line = one_line_error(invoke("batchnorm", "x.npy", "--per", "channel", "--channel-axis",
                                 "4", "-o", "y.npy"))
    assert line == ("normcli: error: x.npy: has 4 axes (4, 3, 2, 2): --channel-axis 4 is not "
                    "one of them")
    line = one_line_error(invoke("batchnorm", "x.npy", "--per", "channel", "--channel-axis",
                                 "-4"))
    assert line == ("normcli: error: x.npy: has shape (4, 3, 2, 2): --channel-axis -4 is its "
                    "batch axis")
    line = one_line_error(invoke("lrn", "x.npy", "--channel-axis", "0", "-o", "y.npy"))
    assert line.endswith("--channel-axis 0 is its batch axis")
    save("m.npy", np.ones((3, 3), np.float32))
    line = one_line_error(invoke("lrn", "m.npy", "--channel-axis", "0"))
    assert line == ("normcli: error: m.npy: has shape (3, 3): --channel-axis needs LRN inputs "
                    "of 3 or more axes")
    assert not (tmp_path / "y.npy").exists()
    for command in ("lrn", "batchnorm"):
        line = usage_error(invoke(command, "x.npy", "--channel-axis", "1", "--channels-last"))
        assert line.startswith("Error: --channel-axis and --channels-last exclude each other")
    line = usage_error(invoke("batchnorm", "x.npy", "--channel-axis", "x"))
    assert "'x' is not a valid integer" in line


def test_images_are_refused(invoke, tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 3)).save(tmp_path / "p.png")
    for command in ("lrn", "batchnorm"):
        line = one_line_error(invoke(command, "p.png", "--channel-axis", "0"))
        assert line == ("normcli: error: p.png: is an image: its channels are known; "
                        "--channel-axis is for arrays")
