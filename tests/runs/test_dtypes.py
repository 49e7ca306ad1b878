"""The type of the results written: one rule (floats keep theirs, images give float32), --dtype."""

from __future__ import annotations

import numpy as np
import pytest

from normcli import batch_norm, lrn, runs
from normcli.errors import ParameterError

RULE = [("float16", "float16"), ("float32", "float32"), ("float64", "float64"),
        ("uint8", "float32"), ("uint16", "float32"), ("int16", "float32"), ("bool", "float32"),
        ("int32", "float64"), ("int64", "float64")]


def _data(dtype: str, shape=(3, 5, 6), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, 200, shape).astype(dtype)


@pytest.mark.parametrize(("given", "written"), RULE)
def test_lrn_writes_the_rule_s_type_with_the_values_computed_as_before(tmp_path, given, written):
    x = _data(given)
    np.save(tmp_path / "x.npy", x)
    report = runs.lrn([tmp_path / "x.npy"], output=tmp_path / "y.npy")
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == written and report.inputs[0].after.dtype == written
    np.testing.assert_array_equal(y, lrn(x).astype(written))  # computed as before, then cast


@pytest.mark.parametrize(("given", "written"), RULE[:4])
def test_batchnorm_in_memory_and_streamed(tmp_path, given, written):
    batch = _data(given, (4, 3, 5, 6))
    np.save(tmp_path / "batch.npy", batch)
    (tmp_path / "d").mkdir()
    for i, x in enumerate(batch):
        np.save(tmp_path / "d" / f"{i}.npy", x)
    runs.batchnorm([tmp_path / "batch.npy"], output=tmp_path / "one.npy")
    runs.batchnorm([tmp_path / "d"], output=f"{tmp_path}/out/", jobs=2)
    want = batch_norm(batch).astype(written)
    one = np.load(tmp_path / "one.npy")
    assert one.dtype == written
    np.testing.assert_array_equal(one, want)
    for i in range(4):
        got = np.load(tmp_path / "out" / f"{i}.npy")
        assert got.dtype == written
        np.testing.assert_allclose(got.astype(np.float64), want[i].astype(np.float64),
                                   rtol=1e-3 if written == "float16" else 1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dtype_chooses(tmp_path, dtype, invoke):
    x = _data("uint8")
    np.save(tmp_path / "x.npy", x)
    result = invoke("lrn", "x.npy", "-o", "y.npy", "--dtype", dtype)
    assert result.exit_code == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, lrn(x).astype(dtype))  # computed in float64 all the same
    result = invoke("batchnorm", "x.npy", "-o", "b.npy", "--dtype", dtype)
    assert np.load(tmp_path / "b.npy").dtype == dtype


def test_a_bad_dtype_is_refused_before_anything(tmp_path, invoke):
    with pytest.raises(ParameterError) as e:
        runs.lrn(["missing.npy"], dtype="int8")
    assert e.value.param == "dtype"
    assert invoke("lrn", "x.npy", "--dtype", "int8").exit_code == 2
