"""What every normalization accepts and returns: the array rules, in one place.

:func:`check_array` turns an argument into the array the kernels work on (or
refuses it with a :class:`~normcli.errors.ParameterError`), and
:func:`compute_dtype` is the one rule for the floating type they compute and
return in (scikit-image's ``_supported_float_type``, with float16 widened);
:func:`output_dtype` is the type the commands write their results in.
"""

from __future__ import annotations

import numpy as np

from normcli.errors import ParameterError

__all__ = ["compute_dtype", "output_dtype", "OUTPUT_DTYPES", "check_array"]

#: The types a result may be asked for in (``--dtype``).
OUTPUT_DTYPES = ("float16", "float32", "float64")


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
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        _refuse(name, arr, f"has dtype {arr.dtype}; use bool, integer or floating-point data")
    if arr.ndim < min_ndim:
        _refuse(name, arr, f"has shape {arr.shape}; it needs at least {min_ndim} dimensions")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        _refuse(name, arr, f"has dtype {arr.dtype}; use float16, float32 or float64")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


def _refuse(name: str, arr: np.ndarray, problem: str) -> None:
    raise ParameterError(f"{name} {problem}", param=name, value=arr, problem=problem)
