"""TIFF files, read and written with ``tifffile`` (``imagecodecs`` for LZW and friends).

Every TIFF is read by tifffile, whatever it holds: 1, 8 and 16-bit integers,
float32 and float64, gray, RGB, CMYK, palette, any number of samples,
several pages, strips or tiles.  Pillow would keep only 8 bits of a 16-bit
colour TIFF, and cannot hold float data with several channels.

Before a pixel is decoded, the page's header is checked: its shape and
sample type against the size limit (and Pillow's ``MAX_IMAGE_PIXELS``, as
for every image), and every strip or tile against the file: one that lies
past the end of the file, or is missing (no bytes), makes the file
"truncated" (tifffile would fill it with zeros), and uncompressed data
shorter than the image is refused the same way.  A TIFF bomb (a huge
declared image in a small file) therefore costs nothing.

Pages: each full-resolution page of a multi-page TIFF is an input of its
own (:func:`tiff_pages`); reduced-resolution pages (thumbnails, pyramid
levels) are left out.

Writing (:func:`encode_tiff`): the values themselves, float32 (float64 for
float64 results), uncompressed; 1 channel gray, 3 RGB, any other number of
channels one sample each; an alpha channel is one more sample marked as
alpha.
"""

from __future__ import annotations

import io
import logging
import os

import numpy as np

from normcli.errors import InputError

# tifffile logs what it finds wrong in a file; the error normcli raises says it
# in one line, so its log must not reach stderr through logging's last resort.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

__all__ = ["tiff_pages", "decode_tiff", "encode_tiff"]


def _tifffile():
    import tifffile

    return tifffile


def _open(data_or_path, source: object):
    tifffile = _tifffile()
    try:
        return tifffile.TiffFile(data_or_path)
    except Exception as e:  # tifffile raises TiffFileError, ValueError, struct.error...
        raise InputError(source, f"cannot read TIFF ({_text(e)})") from None


def _text(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def _full_pages(tif) -> list[int]:
    """Indices of the pages that are images of their own (not reduced-resolution)."""
    pages = []
    for i, page in enumerate(tif.pages):
        if not getattr(page, "is_reduced", False):
            pages.append(i)
    return pages


def tiff_pages(path: str | os.PathLike[str], *, source: object = None) -> list[int]:
    """The page indices of a TIFF file that are inputs (see the module docstring)."""
    from normcli.files.images import read_file_bytes

    source = path if source is None else source
    data = read_file_bytes(path, source=source)
    with _open(io.BytesIO(data), source) as tif:
        try:
            pages = _full_pages(tif)
        except Exception as e:
            raise InputError(source, f"cannot read TIFF pages ({_text(e)})") from None
    if not pages:
        raise InputError(source, "TIFF holds no image")
    return pages


def _check_strips(page, size: int, source: object) -> None:
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets or len(offsets) != len(counts):
        raise InputError(source, "TIFF page has no image data")
    for offset, count in zip(offsets, counts, strict=True):
        if count <= 0 or offset <= 0:
            raise InputError(source, "truncated TIFF: a strip or tile has no data")
        if offset + count > size:
            raise InputError(source, f"truncated TIFF: a strip or tile ends at byte "
                             f"{offset + count} of a {size}-byte file")
    if int(page.compression) == 1:  # uncompressed: the strips must hold the whole image
        need = int(np.prod(page.shaped, dtype=np.int64)) * page.dtype.itemsize
        if page.dtype == np.bool_ or page.bitspersample < 8:
            need = -(-page.imagewidth * page.bitspersample // 8) * page.imagelength
        if sum(counts) < need:
            raise InputError(source, f"truncated TIFF: {sum(counts)} bytes of image data "
                             f"for a {page.imagewidth}x{page.imagelength} image of {need}")


def decode_tiff(data: bytes, *, page: int | None, limit: int, source: object
                ) -> tuple[np.ndarray, str, tuple[str, ...], bool]:
    """``(stored, mode, notes, has_alpha)``: one page's stored values as
    ``(C, H, W)``, alpha (if any) last, the mode in Pillow's words with the
    sample type (``"RGB;16"``, ``"L;F32"``, ``"5 samples;16"``)."""
    from normcli.files.images import _check_size

    tifffile = _tifffile()
    notes: list[str] = []
    with _open(io.BytesIO(data), source) as tif:
        try:
            count = len(tif.pages)
        except Exception as e:
            raise InputError(source, f"cannot read TIFF pages ({_text(e)})") from None
        index = 0 if page is None else page
        if not 0 <= index < count:
            raise InputError(source, f"TIFF has no page {index} ({count} pages)")
        try:
            p = tif.pages[index]
            shape, axes, dtype = tuple(int(n) for n in p.shape), str(p.axes), np.dtype(p.dtype)
            photometric = int(p.photometric)
        except Exception as e:
            raise InputError(source, f"cannot read TIFF page {index} ({_text(e)})") from None
        if page is None and count > 1:
            notes.append(f"TIFF of {count} pages: page 0 read")
        if (any(a not in "YXS" for a in axes) or "Y" not in axes or "X" not in axes
                or len(axes) != len(shape) or len(set(axes)) != len(axes)):
            raise InputError(source, f"TIFF page of shape {shape} (axes {axes}) is not a 2-D "
                             "image")
        if dtype.kind not in "uifb":
            raise InputError(source, f"TIFF samples of type {dtype} are not supported")
        height, width = shape[axes.index("Y")], shape[axes.index("X")]
        samples = shape[axes.index("S")] if "S" in axes else 1
        _check_size(width, height, samples, dtype.itemsize, limit, source, "TIFF")
        try:
            _check_strips(p, len(data), source)
        except InputError:
            raise
        except Exception as e:
            raise InputError(source, f"cannot read TIFF strips ({_text(e)})") from None
        try:
            arr = p.asarray()
        except Exception as e:
            raise InputError(source, f"cannot decode TIFF ({_text(e)})") from None
        colormap = p.colormap if photometric == 3 else None
        extras = tuple(int(e) for e in (p.extrasamples or ()))
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise InputError(source, f"cannot decode TIFF (its data decode to shape {arr.shape}, "
                         f"not the {shape} of its header)")
    chw = np.moveaxis(arr, axes.index("S"), 0) if "S" in axes else arr[None]
    chw = np.ascontiguousarray(chw)
    P = tifffile.PHOTOMETRIC
    if photometric == P.MINISWHITE:
        chw = ~chw if chw.dtype == np.bool_ else (
            np.iinfo(chw.dtype).max - chw if chw.dtype.kind == "u" else -chw)
        notes.append("MinIsWhite TIFF: inverted (0 is black)")
    elif photometric == P.PALETTE:
        if colormap is None or chw.shape[0] != 1 or chw.dtype.kind != "u":
            raise InputError(source, "palette TIFF without a usable colour map")
        cmap = np.asarray(colormap)
        if cmap.ndim != 2 or cmap.shape[0] != 3 or chw.max(initial=0) >= cmap.shape[1]:
            raise InputError(source, "palette TIFF indexes past its colour map")
        rgb = cmap[:, chw[0]]
        chw = (rgb // 257).astype(np.uint8) if np.all(rgb % 257 == 0) else rgb.astype(np.uint16)
    elif photometric not in (P.MINISBLACK, P.RGB, P.SEPARATED, P.YCBCR):
        try:
            name = P(photometric).name
        except ValueError:
            name = str(photometric)
        raise InputError(source, f"TIFF photometric interpretation {name} is not supported")
    colour_samples = chw.shape[0] - len(extras)
    alpha_at = [colour_samples + i for i, e in enumerate(extras) if e in (1, 2)]
    has_alpha = bool(alpha_at)
    if has_alpha and alpha_at[0] != chw.shape[0] - 1:  # alpha last
        order = [i for i in range(chw.shape[0]) if i != alpha_at[0]] + [alpha_at[0]]
        chw = np.ascontiguousarray(chw[order])
    c = chw.shape[0] - has_alpha
    if photometric == P.SEPARATED and c == 4:
        base = "CMYK"
    elif photometric in (P.RGB, P.YCBCR, P.PALETTE) and c == 3:
        base = "RGB"
    elif c == 1:
        base = "L"
    else:
        base = f"{c} samples"
    if has_alpha:
        base = {"L": "LA", "RGB": "RGBA"}.get(base, base + "+alpha")
    bits = chw.dtype.itemsize * 8
    if chw.dtype == np.uint8:
        kind = ""
    elif chw.dtype == np.bool_:
        kind = ";1"
    else:
        kind = {"u": ";", "f": ";F", "i": ";I"}[chw.dtype.kind] + str(bits)
    return chw, base + kind, tuple(notes), has_alpha


def encode_tiff(chw: np.ndarray, alpha: np.ndarray | None = None) -> bytes:
    """A TIFF of ``(C, H, W)`` values (and an ``(H, W)`` alpha), as float32
    (float64 for float64 data) unless they are unsigned integers."""
    tifffile = _tifffile()
    x = np.asarray(chw)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"expected a non-empty (H, W) or (C, H, W) array, got shape {x.shape}")
    dtype = x.dtype if x.dtype.kind == "u" or x.dtype == np.float64 else np.dtype(np.float32)
    planes = [x.astype(dtype, copy=False)]
    if alpha is not None:
        planes.append(np.asarray(alpha).astype(dtype, copy=False)[None])
    data = np.concatenate(planes) if len(planes) > 1 else planes[0]
    c = x.shape[0]
    extras = ["unassalpha"] if alpha is not None else None
    buf = io.BytesIO()
    if c in (1, 3) and data.shape[0] <= 4:
        photometric = "rgb" if c == 3 else "minisblack"
        tifffile.imwrite(buf, np.ascontiguousarray(np.moveaxis(data, 0, -1)) if data.shape[0] > 1
                         else data[0], photometric=photometric, extrasamples=extras,
                         planarconfig="contig" if data.shape[0] > 1 else None)
    else:
        tifffile.imwrite(buf, np.ascontiguousarray(data), photometric="minisblack",
                         planarconfig="separate", extrasamples=extras)
    return buf.getvalue()
