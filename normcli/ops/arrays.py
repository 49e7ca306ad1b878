"""What every normalization accepts and returns: the array rules, in one place.

:func:`check_array` turns an argument into the array the kernels work on (or
refuses it with a :class:`~normcli.errors.ParameterError`), and
:func:`compute_dtype` is the one rule for the floating type they compute and
return in (scikit-image's ``_supported_float_type``, with float16 widened);
:func:`output_dtype` is the type the commands write their results in.
"""

from __future__ import annotations

import numpy as np

from normcli.checks import is_bool
from normcli.errors import ParameterError
from normcli.ops import _memory

__all__ = ["compute_dtype", "output_dtype", "OUTPUT_DTYPES", "check_array", "check_out",
           "check_threads"]

#: The types a result may be asked for in (``--dtype``).
OUTPUT_DTYPES = ("float16", "float32", "float64")


def check_threads(threads: object) -> int | None:
    """``threads`` as an int >= 1, or None (the default: ``NORMCLI_THREADS`` or the
    usable cores); anything else is refused, whatever the data's size (a small
    input, done in the calling thread, never looked at it)."""
    if threads is None:
        return None
    if is_bool(threads) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ParameterError(f"threads={threads!r} must be a whole number >= 1, or None for "
                             "the default", param="threads", value=threads)
    return int(threads)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The floating type a normalization computes (and returns) in.

    float16 and float32 compute in float32, float64 in float64; integers and
    booleans are converted to float64 before any arithmetic (so uint8 cannot
    wrap when squared).

    Byte order does not matter (a big-endian ``>f4`` computes in float32).

    >>> [str(compute_dtype(np.dtype(t))) for t in ("float16", "float32", "uint8", "bool", ">f4")]
    ['float32', 'float32', 'float64', 'float64', 'float32']
    """
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def output_dtype(dtype: np.dtype, requested: str | None = None) -> np.dtype:
    """The type the commands write a result in (the computing type is :func:`compute_dtype`).

    ``requested`` (one of :data:`OUTPUT_DTYPES`) if given; else floating input
    keeps its own type (float16 comes back as float16, as from PyTorch), and
    integers and booleans become the smallest float type that holds each of
    their values exactly: float32 for bool and 8- or 16-bit integers (images),
    float64 for 32- and 64-bit integers.

    >>> [str(output_dtype(np.dtype(t))) for t in ("float16", "float32", "uint8", "uint16",
    ...                                          "bool", "int32", ">f8")]
    ['float16', 'float32', 'float32', 'float32', 'float32', 'float64', 'float64']
    >>> str(output_dtype(np.dtype("uint8"), "float64"))
    'float64'
    """
    if requested is not None:
        return np.dtype(requested)
    if dtype.kind == "f":
        return dtype.newbyteorder("=")
    return np.promote_types(dtype, np.float32)


def check_array(x: object, *, name: str = "x", min_ndim: int = 2) -> np.ndarray:
    """Return ``x`` as a native-endian, C-contiguous numeric array.

    Raises
    ------
    ParameterError
        (a ``ValueError``, ``.param`` = ``name``) for a dtype other than bool,
        integer or float up to 64 bits, or fewer than ``min_ndim`` dimensions.

    >>> check_array([[1, 2]]).dtype.kind
    'i'
    >>> check_array([1.0])
    Traceback (most recent call last):
    ...
    normcli.errors.ParameterError: x has shape (1,); it needs at least 2 dimensions
    """
    if type(x) is np.ndarray:
        arr = x
        dtype = arr.dtype
        # the common case, in a few attribute reads: a native numeric C-contiguous array
        if (dtype.kind in "biuf" and dtype.isnative and arr.ndim >= min_ndim
                and dtype.itemsize <= 8 and arr.flags.c_contiguous):
            return arr
    else:
        if isinstance(x, np.ma.MaskedArray):  # (np.asarray drops the mask, silently)
            raise ParameterError(f"{name} is a masked array, whose mask would be ignored: "
                                 f"give {name}.filled(value) or the unmasked data",
                                 param=name, value=x)
        try:
            arr = np.asarray(x)
        except ValueError as e:  # a ragged nested list
            raise ParameterError(f"{name} is not an array: {e}", param=name, value=x) from None
    if arr.dtype.kind not in "biuf":
        _refuse(name, arr, f"has dtype {arr.dtype}; use bool, integer or floating-point data")
    if arr.ndim < min_ndim:
        _refuse(name, arr, f"has shape {arr.shape}; it needs at least {min_ndim} dimensions")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        _refuse(name, arr, f"has dtype {arr.dtype}; use float16, float32 or float64")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


def check_out(out: object, arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The array to write a result of ``arr``'s shape into: ``out`` if given and
    fit, else a new one.

    ``out`` must be a writeable, C-contiguous ``dtype`` array of ``arr``'s
    shape, and either ``arr`` itself (the kernels read each value before they
    overwrite it) or memory apart from it.

    Raises
    ------
    ParameterError
        ``.param`` ``"out"``, for anything else.

    >>> x = np.ones((2, 3))
    >>> check_out(x, x, np.dtype(np.float64)) is x
    True
    >>> check_out(x[:, :2], x[:, :2].copy(), np.dtype(np.float64))
    Traceback (most recent call last):
    ...
    normcli.errors.ParameterError: out must be a C-contiguous float64 array of shape (2, 2), \
writeable; got a float64 array of shape (2, 2) (not C-contiguous)
    """
    if out is None:  # (large results in recycled memory: see normcli.ops._memory)
        return _memory.empty(arr.shape, dtype)
    if not (type(out) is np.ndarray or isinstance(out, np.memmap)):
        # (a subclass such as np.matrix stays 2-D when the kernels reshape it)
        _refuse_out(out, arr, dtype, f"got {type(out).__name__}")
    if (out.shape != arr.shape or out.dtype != dtype or not out.flags.c_contiguous
            or not out.flags.writeable):
        why = [w for w, bad in (("not C-contiguous", not out.flags.c_contiguous),
                                ("read-only", not out.flags.writeable)) if bad]
        _refuse_out(out, arr, dtype, f"got a {out.dtype} array of shape {out.shape}"
                    + (f" ({', '.join(why)})" if why else ""))
    if np.may_share_memory(out, arr) and not (
            out.dtype == arr.dtype
            and out.__array_interface__["data"][0] == arr.__array_interface__["data"][0]):
        problem = "overlaps x without being x itself; give x (in place) or separate memory"
        raise ParameterError(f"out {problem}", param="out", value=out, problem=problem)
    return out


def _refuse_out(out: object, arr: np.ndarray, dtype: np.dtype, got: str) -> None:
    problem = f"must be a C-contiguous {dtype} array of shape {arr.shape}, writeable; {got}"
    raise ParameterError(f"out {problem}", param="out", value=out, problem=problem)


def _refuse(name: str, arr: np.ndarray, problem: str) -> None:
    raise ParameterError(f"{name} {problem}", param=name, value=arr, problem=problem)
