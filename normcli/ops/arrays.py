"""What every normalization accepts and returns: the array rules, in one place.

:func:`check_array` turns an argument into the array the kernels work on (or
refuses it with a :class:`~normcli.errors.ParameterError`), and
:func:`compute_dtype` is the one rule for the floating type they compute and
return in (scikit-image's ``_supported_float_type``, with float16 widened).
"""

from __future__ import annotations

import numpy as np

from normcli.errors import ParameterError

__all__ = ["compute_dtype", "check_array"]


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
