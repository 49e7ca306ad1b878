"""Reading PNG images as feature maps and writing feature maps as PNG.

Reading (:func:`read_png`)
--------------------------
Every image comes back as a ``(C, H, W)`` array:

=====================================  ===  ===================================
PNG                                    C    notes
=====================================  ===  ===================================
gray, 1/2/4/8-bit                      1    Pillow expands < 8 bits to 0-255
gray, 16-bit                           1
gray + alpha (8 or 16-bit)             2
RGB (8 or 16-bit)                      3    a ``tRNS`` colour key is ignored
RGBA (8 or 16-bit)                     4
palette                                3    4 (RGBA) if it has transparency
=====================================  ===  ===================================

By default the values are ``float32`` in ``[0, 1]``: 8-bit (and lower) images
are divided by 255, 16-bit images by 65535.  With ``raw=True`` the integer
values are returned unchanged as ``uint8`` or ``uint16`` (a 1-bit image is
0/255).  16-bit images with colour (RGB, RGBA, gray+alpha), which Pillow
would reduce to 8 bits, are decoded in full by :mod:`normcli.files.pngcodec`;
interlaced ones are refused.

Before anything is decoded the whole chunk structure is checked (a truncated
or corrupted file is an error, never a partly black image) and the decoded
size ``width * height * C * itemsize`` is compared with the size limit (see
:mod:`normcli.files.limits`).  Pillow's own decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``) is an error too.

Writing (:func:`to_png_array`, :func:`to_png_image`, :func:`encode_png_bytes`)
-----------------------------------------------------------------------------
A ``(H, W)`` or ``(C, H, W)`` array becomes an image by rescaling **each
channel independently** to the full range (0-255 or 0-65535): the channel's
minimum maps to 0 and its maximum to the top value, over finite values only;
a constant channel becomes 0; NaN and -inf become 0 and +inf the top value.
One channel gives a gray image, three an RGB image, any other number a grid
of gray tiles, each with its channel index written in a dark strip above it.
"""

from __future__ import annotations

import functools
import io
import math
import os
import threading
import warnings

import numpy as np

from normcli.errors import InputError
from normcli.files.limits import MAX_BYTES_ENV, resolve_max_bytes
from normcli.files.npy import open_error, open_input
from normcli.files.pngcodec import (
    PNGFormatError,
    PNGHeader,
    check_image_data,
    decode_png,
    encode_png,
    parse_chunks,
)

__all__ = [
    "read_png",
    "read_png_bytes",
    "rescale_channels",
    "to_png_array",
    "to_png_image",
    "encode_png_bytes",
]

_OTHER_FORMATS = [
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x93NUMPY", ".npy"),
    (b"PK\x03\x04", "zip/.npz"),
]
_pil_lock = threading.Lock()


def _not_png(data: bytes) -> str:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return f"not a PNG file (looks like {name})"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "not a PNG file (looks like WebP)"
    return "not a PNG file (bad signature)"


def _output_channels(header: PNGHeader, chunks: list) -> int:
    if header.colour_type == 3:
        return 4 if any(c[0] == b"tRNS" for c in chunks) else 3
    return header.channels


def read_png(
    path: str | os.PathLike[str],
    *,
    raw: bool = False,
    max_bytes: int | None = None,
    source: object = None,
) -> np.ndarray:
    """Read a PNG file as a ``(C, H, W)`` array.

    Parameters
    ----------
    path : path-like
    raw : bool, optional
        Return the stored integers (``uint8`` or ``uint16``) instead of
        ``float32`` scaled to ``[0, 1]`` (divided by 255 or 65535).
    max_bytes : int, optional
        Limit for the file size and for the decoded array (default:
        ``NORMCLI_MAX_BYTES`` or 2 GiB).
    source : object, optional
        Names the file in error messages (default: `path`).

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)``, C-contiguous; see the module docstring for C.

    Raises
    ------
    InputError
        Missing/unreadable file, not a PNG, truncated or corrupted data,
        image over the size limit or Pillow's decompression-bomb limit.
    """
    source = path if source is None else source
    limit = resolve_max_bytes(max_bytes)
    fd, st = open_input(path, source)
    try:
        with os.fdopen(fd, "rb") as fp:
            if st.st_size > limit:
                raise InputError(
                    source,
                    f"file of {st.st_size} bytes is over the limit of {limit} "
                    f"(set {MAX_BYTES_ENV} to raise it)",
                )
            data = fp.read(st.st_size)  # no more, should the file grow meanwhile
    except OSError as e:
        raise open_error(source, e) from None
    return read_png_bytes(data, raw=raw, max_bytes=limit, source=source)


def read_png_bytes(
    data: bytes, *, raw: bool = False, max_bytes: int | None = None, source: object = "<png>"
) -> np.ndarray:
    """Decode PNG file contents held in memory; see :func:`read_png`."""
    limit = resolve_max_bytes(max_bytes)
    if not data:
        raise InputError(source, "not a PNG file (empty)")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InputError(source, _not_png(data))
    try:
        header, chunks = parse_chunks(data)
    except PNGFormatError as e:
        raise InputError(source, str(e)) from None
    channels = _output_channels(header, chunks)
    stored = 2 if header.bit_depth == 16 else 1
    itemsize = stored if raw else 4
    pixels = header.width * header.height
    need = pixels * channels * itemsize
    if need > limit:
        raise InputError(
            source,
            f"image {header.width}x{header.height} ({pixels} pixels, {channels} "
            f"channel{'s' if channels > 1 else ''}) "
            f"needs {need} bytes decoded, over the limit of {limit} "
            f"(set {MAX_BYTES_ENV} to raise it)",
        )
    if header.bit_depth == 16 and header.colour_type in (2, 4, 6):
        # Pillow would keep only the high byte of each sample.
        if header.interlace:
            raise InputError(
                source,
                f"interlaced {header.description} PNG is not supported (save it non-interlaced)",
            )
        try:
            hwc = decode_png(data, max_bytes=limit)
        except PNGFormatError as e:
            raise InputError(source, str(e)) from None
        chw = np.ascontiguousarray(hwc.transpose(2, 0, 1))
    else:
        chw = _decode_with_pillow(data, header, chunks, source)
    if raw:
        return chw
    scale = np.float32(65535 if chw.dtype == np.uint16 else 255)
    return np.divide(chw, scale, dtype=np.float32)


def _decode_with_pillow(data: bytes, header: PNGHeader, chunks: list,
                        source: object) -> np.ndarray:
    from PIL import Image, ImageFile

    try:
        with _pil_lock, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # A truncated file must fail, never be padded with black; the
            # flag is global in Pillow, so force it off for this decode.
            saved = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                with Image.open(io.BytesIO(data), formats=["PNG"]) as im:  # (bomb check)
                    # Pillow stops at the last row, and would pad a short image with zeros.
                    check_image_data(data, header, chunks)
                    im.load()
                    return _pil_to_chw(im, header, source)
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = saved
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            source,
            f"image {header.width}x{header.height} ({header.width * header.height} pixels) "
            f"is over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels",
        ) from None
    except InputError:
        raise
    except PNGFormatError as e:
        raise InputError(source, str(e)) from None
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error...
        text = " ".join(str(e).split()) or type(e).__name__
        raise InputError(source, f"cannot decode PNG ({text})") from None


def _pil_to_chw(im, header: PNGHeader, source: object) -> np.ndarray:
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im, dtype=np.uint8)
    elif im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im)
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:  # pragma: no cover
            raise InputError(source, f"unexpected pixel values for {header.description} PNG")
        arr = arr.astype(np.uint16)
    else:  # pragma: no cover - PNG has no other modes
        raise InputError(source, f"unsupported PNG mode {mode!r} ({header.description})")
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


# ----------------------------------------------------------------- writing


def rescale_channels(arr: np.ndarray, bits: int = 8) -> np.ndarray:
    """Rescale each channel of ``(C, H, W)`` data to the full integer range.

    Parameters
    ----------
    arr : numpy.ndarray
        ``(C, H, W)`` bool, integer or float data.
    bits : {8, 16}
        Output depth.

    Returns
    -------
    numpy.ndarray
        ``uint8`` or ``uint16``, same shape.  Per channel, over finite values:
        min -> 0, max -> ``2**bits - 1``; a constant channel -> 0;
        NaN and -inf -> 0; +inf -> ``2**bits - 1``.

    Examples
    --------
    >>> rescale_channels(np.array([[[1.0, 2.0, np.nan]], [[5.0, 5.0, 5.0]]]))
    array([[[  0, 255,   0]],
    <BLANKLINE>
           [[  0,   0,   0]]], dtype=uint8)
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    x = np.asarray(arr)
    if x.ndim != 3:
        raise ValueError(f"expected a (C, H, W) array, got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"cannot make an image from dtype {x.dtype}")
    top = 2**bits - 1
    out = np.zeros(x.shape, dtype=np.uint8 if bits == 8 else np.uint16)
    for c in range(x.shape[0]):
        ch = x[c].astype(np.float64)
        finite = np.isfinite(ch)
        if finite.any():
            lo = ch[finite].min()
            hi = ch[finite].max()
            if hi > lo:
                scaled = np.rint((np.where(finite, ch, lo) - lo) * (top / (hi - lo)))
                out[c] = np.clip(scaled, 0, top)
        out[c][np.isposinf(ch)] = top
    return out


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _label_mask(text: str, width: int, height: int) -> np.ndarray:
    """Render `text` white-on-black into a ``(height, width)`` uint8 mask."""
    from PIL import Image, ImageDraw

    strip = Image.new("L", (width, height), 0)
    ImageDraw.Draw(strip).text((1, 1), text, fill=255, font=_font())
    return np.asarray(strip)


#: The most channels a PNG grid draws (each tile costs a label and a copy).
MAX_GRID_CHANNELS = 1024


def check_grid(count: int) -> None:
    """Refuse, before any pixel is made, more channels than a grid draws."""
    if count not in (1, 3) and count > MAX_GRID_CHANNELS:
        raise ValueError(f"{count:,} channels are too many for one image (a grid shows at "
                         f"most {MAX_GRID_CHANNELS:,}); write .npy instead")


def _grid(tiles: np.ndarray, top: int) -> np.ndarray:
    """Lay out ``(C, H, W)`` integer tiles in a labelled grid."""
    count, h, w = tiles.shape
    check_grid(count)
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    font = _font()
    left, upper, right, lower = font.getbbox(str(count - 1))
    strip_h = lower + 2
    cell_w = max(w, right + 2)
    cell_h = strip_h + h
    margin = 2
    canvas = np.zeros(
        (margin + rows * (cell_h + margin), margin + cols * (cell_w + margin)), dtype=tiles.dtype
    )
    for i in range(count):
        r, c = divmod(i, cols)
        y0 = margin + r * (cell_h + margin)
        x0 = margin + c * (cell_w + margin)
        mask = _label_mask(str(i), cell_w, strip_h).astype(np.uint32)
        canvas[y0 : y0 + strip_h, x0 : x0 + cell_w] = (mask * top + 127) // 255
        canvas[y0 + strip_h : y0 + cell_h, x0 : x0 + w] = tiles[i]
    return canvas


def to_png_array(arr: np.ndarray, bits: int = 8) -> np.ndarray:
    """Turn feature maps into the pixel array of an image.

    Parameters
    ----------
    arr : numpy.ndarray
        ``(H, W)`` or ``(C, H, W)``, bool/integer/float.
    bits : {8, 16}
        Output depth.

    Returns
    -------
    numpy.ndarray
        ``uint8``/``uint16``; ``(H, W)`` gray for one channel, ``(H, W, 3)``
        RGB for three channels, otherwise a ``(H', W')`` gray grid of the
        channels with their index above each tile.  Each channel is
        rescaled independently (see :func:`rescale_channels`).

    Examples
    --------
    >>> to_png_array(np.arange(4.0).reshape(2, 2))
    array([[  0,  85],
           [170, 255]], dtype=uint8)
    >>> to_png_array(np.zeros((5, 4, 4))).ndim
    2
    """
    x = np.asarray(arr)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"expected a non-empty (H, W) or (C, H, W) array, got shape {x.shape}")
    check_grid(x.shape[0])
    scaled = rescale_channels(x, bits)
    if scaled.shape[0] == 1:
        return scaled[0]
    if scaled.shape[0] == 3:
        return np.ascontiguousarray(scaled.transpose(1, 2, 0))
    return _grid(scaled, 2**bits - 1)


def _pixels_to_image(pixels: np.ndarray):
    from PIL import Image

    if pixels.ndim == 3 and pixels.dtype == np.uint16:
        raise ValueError("Pillow cannot hold 16-bit RGB; use encode_png_bytes()")
    if pixels.dtype == np.uint16:
        return Image.fromarray(pixels.astype("<u2"))  # mode I;16
    return Image.fromarray(pixels)  # mode L or RGB


def to_png_image(arr: np.ndarray, bits: int = 8):
    """Like :func:`to_png_array` but return a :class:`PIL.Image.Image`.

    The mode is ``L`` or ``RGB`` for 8 bits and ``I;16`` for 16-bit gray.
    Pillow has no 16-bit RGB mode: for three channels with ``bits=16`` this
    raises :class:`ValueError`; use :func:`encode_png_bytes` instead.

    Examples
    --------
    >>> to_png_image(np.zeros((3, 2, 2))).mode
    'RGB'
    >>> to_png_image(np.zeros((2, 2)), bits=16).mode
    'I;16'
    """
    return _pixels_to_image(to_png_array(arr, bits))


def encode_png_bytes(arr: np.ndarray, bits: int = 8) -> bytes:
    """Return the bytes of a PNG file showing `arr` (see :func:`to_png_array`).

    16-bit RGB is written by the built-in encoder, everything else by Pillow.
    """
    pixels = to_png_array(arr, bits)
    if pixels.ndim == 3 and pixels.dtype == np.uint16:
        return encode_png(pixels)
    buf = io.BytesIO()
    _pixels_to_image(pixels).save(buf, format="PNG")
    return buf.getvalue()
