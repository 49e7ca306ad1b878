"""Settings resolved once: LRNParams and BNParams, and errors that name their parameter."""

from __future__ import annotations

import numpy as np
import pytest

from normcli.errors import ParameterError
from normcli.ops.batchnorm import BatchNormalizer, batch_norm, resolve_batchnorm
from normcli.ops.conventions import resolve_lrn
from normcli.ops.explain import SEED_BATCH, explain_batch_norm, explain_lrn
from normcli.ops.lrn import lrn
from normcli.ops.moments import RunningStats, batch_stats

X = np.random.default_rng(3).standard_normal((3, 5, 4, 4)).astype(np.float32)


@pytest.mark.parametrize("settings", [
    {"mode": "inter", "convention": "pytorch", "n": 4},
    {"mode": "intra", "convention": "caffe", "n": 3, "alpha": 2.0},
    {"mode": "inter", "convention": "tensorflow", "n": 2, "k": 0.5, "beta": 1.5},
])
def test_lrn_with_resolved_params_is_the_same_computation(settings):
    p = resolve_lrn(**settings)
    assert np.array_equal(lrn(X, params=p), lrn(X, **settings))
    e = explain_lrn(X, (1, 2, 1, 1), params=p)
    assert e.params == p


def test_params_and_other_settings_are_not_both_given():
    p = resolve_lrn(convention="onnx", n=3)
    for extra in ({"n": 3}, {"k": 1.0}, {"convention": "caffe"}, {"mode": "intra"}):
        with pytest.raises(ParameterError) as e:
            lrn(X, params=p, **extra)
        assert e.value.param == "params"
    assert np.array_equal(lrn(X, params=p, convention="onnx"), lrn(X, params=p))
    with pytest.raises(ParameterError, match="LRNParams"):
        lrn(X, params={"n": 3})
    b = resolve_batchnorm(per="channel", eps=1e-3)
    with pytest.raises(ParameterError, match="give params or eps, not both"):
        batch_norm(X, params=b, eps=1e-2)
    assert np.array_equal(batch_norm(X, params=b, per="channel"),
                          batch_norm(X, per="channel", eps=1e-3))


def test_resolve_batchnorm_checks_every_setting_once():
    p = resolve_batchnorm(per="channel", eps=1e-3, gamma=np.arange(5.0).reshape(5, 1, 1),
                          beta=2)
    assert (p.per, p.eps, p.beta) == ("channel", 1e-3, 2.0) and p.gamma.dtype == np.float64
    gamma, beta = p.broadcast((5, 1, 1))
    assert gamma.shape == beta.shape == (5, 1, 1)
    cases = [({"per": "pixel"}, "per"), ({"eps": 0}, "eps"), ({"eps": float("nan")}, "eps"),
             ({"eps": "x"}, "eps"), ({"gamma": np.nan}, "gamma"),
             ({"beta": np.array(["a"])}, "beta"), ({"gamma": [1, np.inf]}, "gamma")]
    for kwargs, param in cases:
        with pytest.raises(ParameterError) as e:
            resolve_batchnorm(**kwargs)
        assert e.value.param == param, kwargs
    with pytest.raises(ParameterError) as e:
        resolve_batchnorm(beta=np.zeros(3)).broadcast((5,))
    assert e.value.param == "beta" and e.value.problem.startswith("has shape (3,)")


def test_every_batch_norm_entry_point_refuses_what_batch_norm_refuses():
    """explain_batch_norm once accepted eps=0, which batch_norm refused."""
    s = batch_stats(X, per="channel")
    for call in (lambda **kw: batch_norm(X, **kw),
                 lambda **kw: BatchNormalizer(s.mean, s.var, per="channel", **kw),
                 lambda **kw: explain_batch_norm(SEED_BATCH, (0, 0, 0, 0), **kw)):
        with pytest.raises(ParameterError) as e:
            call(eps=0)
        assert e.value.param == "eps"
        with pytest.raises(ParameterError) as e:
            call(gamma=np.nan)
        assert e.value.param == "gamma"


def test_data_errors_name_the_data():
    for call in (lambda: lrn(np.ones(3)), lambda: batch_norm(np.ones((1, 3))),
                 lambda: batch_stats(np.ones((0, 3))), lambda: lrn(np.array([["a"]]))):
        with pytest.raises(ParameterError) as e:
            call()
        assert e.value.param == "x"
    running = RunningStats(per="channel")
    running.add(np.ones((2, 3, 1)))
    with pytest.raises(ParameterError) as e:
        running.add(np.ones((2, 4, 1)))
    assert e.value.param == "batch"


def test_an_empty_batch_gives_an_empty_output():
    """As PyTorch and TensorFlow: batch norm of an empty batch is empty, not an error
    (its statistics still are: there are none)."""
    for x in (np.ones((0, 3, 4, 4), np.float32), np.ones((5, 0, 2, 2))):
        y = batch_norm(x, per="channel")
        assert y.shape == x.shape and y.dtype == (np.float32 if x.dtype == np.float32
                                                   else np.float64)
    s = batch_stats(X, per="channel")
    assert BatchNormalizer(s.mean, s.var, per="channel")(np.ones((0, 5, 4, 4))).shape == (
        0, 5, 4, 4)
    with pytest.raises(ParameterError) as e:
        batch_norm(np.ones((0, 3)), gamma=np.ones(4))
    assert e.value.param == "gamma"
    with pytest.raises(ParameterError):
        batch_stats(np.ones((0, 3)))


@pytest.mark.parametrize("convention, mode", [("seed", "inter"), ("seed", "intra"),
                                              ("tensorflow", "inter"), ("caffe", "intra")])
def test_windows_as_wide_as_a_64_bit_integer_are_the_whole_axis_and_wider_are_refused(
        convention, mode):
    """A window wider than the data is the whole axis: up to 2**63 - 1 (the
    frameworks' C integers) it is computed, whatever the kernel (a band product's
    matrix of offsets overflowed int64 beyond 2**63: a traceback); wider, a
    ParameterError naming n, even for a number too long to print."""
    x = np.random.default_rng(3).standard_normal((2, 6, 5, 7))
    wide = lrn(x, convention=convention, mode=mode, n=(1 << 63) - 1)
    assert np.isfinite(wide).all() and wide.shape == x.shape
    if convention in ("seed", "tensorflow"):  # (alpha undivided: the same as any n that covers all)
        assert np.array_equal(wide, lrn(x, convention=convention, mode=mode, n=31))
    for n in (1 << 63, 10**5000):
        with pytest.raises(ParameterError, match="beyond a 64-bit integer") as e:
            lrn(x, convention=convention, mode=mode, n=n)
        assert e.value.param == "n"


# What a library review found: arguments that were taken for something else, or
# failed deep inside with another exception than a ParameterError naming them.
X4 = np.ones((2, 3, 4, 4), np.float32)
_CALLS = {
    "lrn": lambda **kw: lrn(X4, **kw),
    "batch_norm": lambda **kw: batch_norm(X4, **kw),
    "batch_stats": lambda **kw: batch_stats(X4, **kw),
    "normalizer": lambda **kw: BatchNormalizer(np.zeros((3, 4, 4)), np.ones((3, 4, 4)))(
        X4, **kw),
}


@pytest.mark.parametrize("call", list(_CALLS))
@pytest.mark.parametrize("kw, param", [
    ({"threads": "x"}, "threads"), ({"threads": 0}, "threads"), ({"threads": -1}, "threads"),
    ({"threads": 1.5}, "threads"), ({"threads": True}, "threads"), ({"threads": [2]}, "threads"),
    ({"threads": float("nan")}, "threads"),
    ({"channels_last": "no"}, "channels_last"), ({"channels_last": [True]}, "channels_last"),
    ({"channels_last": 1}, "channels_last"),
])
def test_threads_and_flags_are_checked_whatever_the_size(call, kw, param):
    """``channels_last="no"`` was True; a bad ``threads`` was refused only by inputs
    large enough to use threads, and then as a TypeError or OverflowError."""
    if call == "normalizer" and param == "channels_last":
        with pytest.raises(ParameterError) as e:
            BatchNormalizer(np.zeros(3), np.ones(3), per="channel", **kw)
    else:
        with pytest.raises(ParameterError) as e:
            _CALLS[call](**kw)
    assert e.value.param == param
    _CALLS[call](threads=np.int64(2))  # (numpy ints are ints)


@pytest.mark.parametrize("kw, param", [
    ({"mode": np.array(["inter"])}, "mode"), ({"mode": np.array(["inter", "x"])}, "mode"),
    ({"convention": np.array(["seed"])}, "convention"),
    ({"params": resolve_lrn(), "n": np.array([1, 2])}, "params"),
    ({"params": resolve_lrn(), "mode": np.array(["inter"])}, "params"),
])
def test_array_valued_lrn_settings_are_refused(kw, param):
    """(an ambiguous truth value, or unhashable, from deep inside)"""
    with pytest.raises(ParameterError) as e:
        lrn(X4, **kw)
    assert e.value.param == param


def test_what_is_not_an_array_is_refused_naming_it():
    with pytest.raises(ParameterError, match="x is not an array") as e:
        lrn([[1.0, 2.0], [3.0]])
    assert e.value.param == "x"
    with pytest.raises(ParameterError, match="masked array, whose mask would be ignored"):
        batch_stats(np.ma.masked_array(np.ones((2, 3)), mask=[[1, 0, 0], [0, 0, 0]]))
    with pytest.raises(ParameterError, match="per=array"):
        batch_stats(np.ones((2, 3)), per=np.array(["channel"]))
    with pytest.warns(PendingDeprecationWarning), pytest.raises(ParameterError) as e:
        batch_norm(np.ones((2, 3)), out=np.matrix(np.empty((2, 3))))  # (stays 2-D: reshaped)
    assert e.value.param == "out"
    with pytest.raises(ParameterError, match="give both mean and var"):
        batch_norm(np.ones((0, 3)), mean=np.zeros(3))  # (checked before an empty batch returns)


def test_running_stats_merge_only_their_own_kind():
    """Merging into an empty side took the other's per silently; a non-RunningStats
    was an AttributeError."""
    channel, activation = RunningStats(per="channel"), RunningStats()
    activation.add(np.ones((2, 3)))
    with pytest.raises(ParameterError, match="cannot merge statistics per activation into "
                       "per channel"):
        channel.merged(activation)
    with pytest.raises(ParameterError, match="other is a str"):
        activation.merged("x")


@pytest.mark.parametrize("kw", [{"k": "3"}, {"alpha": True}, {"beta": np.True_}, {"k": b"2"}])
def test_strings_and_bools_are_no_lrn_numbers(kw):
    """float() read "3" as 3 and True as 1, while n=True was refused."""
    with pytest.raises(ParameterError, match="must be a number") as e:
        lrn(X4, **kw)
    assert e.value.param == next(iter(kw))


@pytest.mark.parametrize("eps", ["1e-3", True])
def test_strings_and_bools_are_no_eps(eps):
    with pytest.raises(ParameterError, match="must be a number > 0"):
        batch_norm(X4, eps=eps)
