"""Safe reading and writing of ``.npz`` files: zip archives of ``.npy`` members.

Every member is checked like a ``.npy`` file (:mod:`normcli.files.npy`); the
zip directory is trusted for nothing but where a member is and how large it
claims to be, and that size is checked against the limit before anything is
decompressed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from numpy.lib import format as npformat

from normcli.errors import InputError
from normcli.files.limits import MAX_BYTES_ENV, resolve_max_bytes
from normcli.files.npy import (
    MAX_HEADER_BYTES,
    _check_writable,
    _short,
    open_error,
    open_input,
    read_npy_stream,
)

if TYPE_CHECKING:  # zipfile is imported only for .npz files: start-up time
    import zipfile

__all__ = ["npz_members", "read_npz_member", "write_npz"]



def _zip_errors() -> tuple[type[Exception], ...]:
    import zipfile
    import zlib

    return zipfile.BadZipFile, zlib.error


@contextlib.contextmanager
def _open_zip(path: str | os.PathLike[str], source: object) -> Iterator[zipfile.ZipFile]:
    import zipfile

    fd, _ = open_input(path, source)
    with os.fdopen(fd, "rb") as fp:
        try:
            zf = zipfile.ZipFile(fp)
        except OSError as e:
            raise open_error(source, e) from None
        except Exception as e:  # BadZipFile, LargeZipFile, ValueError, EOFError, ...
            raise InputError(
                source, f"not a valid .npz file ({_short(str(e) or type(e).__name__)})"
            ) from None
        with zf:
            yield zf


def npz_members(path: str | os.PathLike[str], *, source: object = None) -> list[str]:
    """List the arrays of a ``.npz`` file without decompressing anything.

    Parameters
    ----------
    path : path-like
    source : object, optional
        Names the file in error messages (default: `path`).

    Returns
    -------
    list of str
        Array names in archive order (zip member names without ``.npy``).

    Raises
    ------
    InputError
        If the file is not a zip, is empty, has a member that is not a
        ``.npy`` file, or has duplicate members.
    """
    source = path if source is None else source
    with _open_zip(path, source) as zf:
        infos = zf.infolist()
    names: list[str] = []
    for info in infos:
        if info.filename.endswith("/"):  # a directory; is_dir() fails on an empty name
            continue
        if not info.filename.endswith(".npy"):
            raise InputError(
                f"{source}:{info.filename}",
                "member is not a .npy array (only .npy members allowed)",
            )
        name = info.filename[: -len(".npy")]
        if name in names:
            raise InputError(f"{source}:{name}", "duplicate member in .npz file")
        names.append(name)
    if not names:
        raise InputError(source, "the .npz file contains no arrays")
    return names


def read_npz_member(
    path: str | os.PathLike[str],
    name: str,
    *,
    max_bytes: int | None = None,
    source: object = None,
    metadata: bool = False,
) -> np.ndarray:
    """Read one array of a ``.npz`` file with all the ``.npy`` checks.

    The member's uncompressed size recorded in the zip directory is checked
    against the limit before anything is decompressed, and decompression
    never produces more than that size, so a zip bomb is refused cheaply.

    Parameters
    ----------
    path : path-like
    name : str
        Array name as returned by :func:`npz_members`.
    max_bytes : int, optional
        Size limit for the data (default: ``NORMCLI_MAX_BYTES`` or 2 GiB).
    source : object, optional
        Names the member in error messages (default: ``"path:name"``).

    Returns
    -------
    numpy.ndarray
        Native-endian, C-contiguous.

    Raises
    ------
    InputError
    """
    source = f"{path}:{name}" if source is None else source
    limit = resolve_max_bytes(max_bytes)
    with _open_zip(path, source) as zf:
        try:
            info = zf.getinfo(name + ".npy")
        except KeyError:
            raise InputError(source, "no such array in the .npz file") from None
        if info.flag_bits & 0x1:
            raise InputError(source, "encrypted .npz members are not supported")
        if info.file_size > limit + MAX_HEADER_BYTES + 16:
            raise InputError(
                source,
                f"uncompressed size {info.file_size} bytes is over the limit of {limit} "
                f"(set {MAX_BYTES_ENV} to raise it)",
            )
        try:
            with zf.open(info) as fp:
                return read_npy_stream(fp, source=source, max_bytes=limit, metadata=metadata)
        except InputError:
            raise
        except (_zip_errors() + (EOFError, NotImplementedError, RuntimeError)) as e:
            raise InputError(source, f"corrupted .npz member ({_short(str(e))})") from None
        except OSError as e:
            raise open_error(source, e) from None



# ----------------------------------------------------------------- writing


def write_npz(fp: BinaryIO, arrays: np.ndarray | Mapping[str, np.ndarray]) -> None:
    """Write one array (as ``arr_0``) or a mapping of name to array as ``.npz``.

    Members are stored uncompressed, like :func:`numpy.savez`.

    Raises
    ------
    ValueError
        If a name is not a non-empty string or an array has dtype object.
    """
    if isinstance(arrays, Mapping):
        items = dict(arrays)
        if not items:
            raise ValueError("write_npz: the mapping of arrays is empty")
        for key in items:
            if not isinstance(key, str) or not key or key.startswith("/"):
                raise ValueError(
                    f"write_npz: array names must be relative non-empty str, got {key!r}"
                )
    else:
        items = {"arr_0": arrays}
    import zipfile

    with zipfile.ZipFile(fp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in items.items():
            a = _check_writable(value, f"write_npz[{key!r}]")
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                npformat.write_array(member, a, allow_pickle=False)
