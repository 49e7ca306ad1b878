"""Reading images of every common format: colour channels and alpha, apart.

:func:`read_image` reads PNG, JPEG, TIFF, WebP, BMP and GIF files (the type
told by the file's first bytes, not its name: :func:`sniff`) and returns a
:class:`Decoded`: the colour channels as a ``(C, H, W)`` array, the alpha
channel (if any) on its own, and what the file held.  Alpha is not data:
statistics and normalization use the colour channels, and image outputs put
the input's alpha back as it was (``with_alpha=True`` reads it as one more
channel instead).

=======================  ==================  ====================================
file holds               colour channels     alpha
=======================  ==================  ====================================
gray (1, 8, 16 bits)     1                   -
gray + alpha             1                   yes
RGB, YCbCr               3                   -
RGBA                     3                   yes
palette                  3 (RGB)             yes, if the palette has transparency
CMYK                     4 (C, M, Y, K)      -
TIFF, n samples          n (extra samples    an extra sample marked alpha
                         included)
=======================  ==================  ====================================

``color="rgb"`` or ``"gray"`` converts every image first: gray to RGB repeats
the channel, colour to gray is ITU-R 601-2 luma computed exactly as Pillow's
``convert("L")`` does (``(19595 R + 38470 G + 7471 B + 32768) >> 16`` on the
stored integers; ``0.299 R + 0.587 G + 0.114 B`` for float data), CMYK to RGB
is Pillow's.

Values: by default ``float32``, integers divided by their full scale (255 or
65535: ``[0, 1]``, as ``torchvision.transforms.ToTensor`` does), float TIFFs as
stored; ``raw=True`` keeps the stored integers.  :attr:`Decoded.full` is the
value of full intensity (1.0, 255, 65535, or None for float data), which the
``input`` pixel mapping of the outputs uses (:mod:`normcli.files.pixels`).

Safety, as for every reader: the file must be a regular file within the size
limit; the image's width, height and channels are read from its header and
checked against the limit (and Pillow's ``MAX_IMAGE_PIXELS``) before any pixel
is decoded; a truncated file is an error, never an image padded with black
(see :mod:`normcli.files.tiff` for TIFF's own checks).  EXIF orientation is
left as stored (the pixels are not rotated) and said so in
:attr:`Decoded.notes`; so is an animated image's use of its first frame.
Decoding runs without a global lock, so worker threads decode in parallel.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from normcli.errors import InputError
from normcli.files.limits import MAX_BYTES_ENV, resolve_max_bytes

__all__ = [
    "IMAGE_SUFFIXES",
    "IMAGE_FORMATS",
    "COLORS",
    "Decoded",
    "sniff",
    "read_file_bytes",
    "read_image",
    "decode_image",
    "to_gray",
    "value_table",
]

#: Image suffixes (compared case-insensitively) and the format each names.
IMAGE_SUFFIXES = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
    ".webp": "webp", ".bmp": "bmp", ".gif": "gif",
}
#: The image formats, as :func:`sniff` names them.
IMAGE_FORMATS = ("png", "jpeg", "tiff", "webp", "bmp", "gif")
#: ``color=`` choices.
COLORS = ("rgb", "gray")

_MAGIC = [
    (b"\x93NUMPY", "npy"),
    (b"PK\x03\x04", "npz"),
    (b"PK\x05\x06", "npz"),  # an empty zip
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
]
_NAMES = {"npy": ".npy", "npz": ".npz (zip)", "png": "PNG", "jpeg": "JPEG", "tiff": "TIFF",
          "webp": "WebP", "bmp": "BMP", "gif": "GIF"}
_ORIENTATIONS = {2: "mirrored", 3: "rotated 180°", 4: "flipped", 5: "mirrored and rotated 90°",
                 6: "rotated 90° clockwise", 7: "mirrored and rotated 270°",
                 8: "rotated 90° counter-clockwise"}
_truncation_lock = threading.Lock()


def sniff(head: bytes) -> str | None:
    """The type of a file from its first bytes (12 are enough): ``"npy"``,
    ``"npz"``, ``"png"``, ``"jpeg"``, ``"tiff"``, ``"webp"``, ``"bmp"``,
    ``"gif"``, or None.

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff(b"RIFF....WEBPVP8 "), sniff(b"hi")
    ('png', 'webp', None)
    """
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    return None


def describe_format(kind: str | None) -> str:
    """A format for people: ``"JPEG"``, ``".npy"``, or ``"unknown"``."""
    return _NAMES.get(kind, "unknown") if kind else "unknown"


@dataclass(frozen=True)
class Decoded:
    """One image as read.

    Attributes
    ----------
    colour : numpy.ndarray
        ``(C, H, W)``: the colour channels (with alpha appended when read
        with ``with_alpha=True``), float32 (or the stored integers, raw).
    alpha : numpy.ndarray or None
        ``(H, W)``, in the same units as ``colour``; None without alpha (or
        when alpha was read as a channel).
    mode : str
        What the file held, in Pillow's words: ``"RGB"``, ``"RGBA"``,
        ``"L"``, ``"LA"``, ``"P"``, ``"1"``, ``"CMYK"``, ``"I;16"``,
        ``"RGB;16"``, ``"F"``, ...
    full : float or None
        The value of full intensity in ``colour``'s units: 1.0 (scaled), 255
        or 65535 (raw), None for float data (no natural scale).
    notes : tuple of str
        Facts worth telling: EXIF orientation left as stored, first frame of
        an animation, conversions made.
    """

    colour: np.ndarray
    alpha: np.ndarray | None
    mode: str
    full: float | None
    notes: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return int(self.colour.shape[0])

    def array(self) -> np.ndarray:
        """The colour channels: what statistics and normalization see."""
        return self.colour


# ----------------------------------------------------------------- reading files


def read_file_bytes(path: str | os.PathLike[str], *, max_bytes: int | None = None,
                    source: object = None) -> bytes:
    """The contents of a regular file within the size limit.

    A FIFO, device or directory is refused without blocking on it.
    """
    from normcli.files.npy import open_error

    source = path if source is None else source
    limit = resolve_max_bytes(max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise open_error(source, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(source, "not a regular file")
        if st.st_size > limit:
            raise InputError(source, f"file of {st.st_size} bytes is over the limit of {limit} "
                             f"(set {MAX_BYTES_ENV} to raise it)")
        with open(fd, "rb", buffering=0, closefd=False) as f:
            data = f.readall()  # (sized from fstat: one read; read(n) would allocate n)
    except OSError as e:
        raise open_error(source, e) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputError(source, f"file grew over the limit of {limit} bytes while read")
    return data


def read_image(path: str | os.PathLike[str], *, raw: bool = False, max_bytes: int | None = None,
               source: object = None, color: str | None = None, with_alpha: bool = False,
               page: int | None = None, kind: str | None = None) -> Decoded:
    """Read an image file (see the module docstring).

    Parameters
    ----------
    path : path-like
    raw : bool
        Keep the stored integers instead of float32 scaled to [0, 1].
    max_bytes : int, optional
        Limit for the file and for the decoded array.
    source : object, optional
        Names the file in messages (default: ``path``).
    color : {"rgb", "gray"}, optional
        Convert first.
    with_alpha : bool
        Read alpha as an ordinary (last) channel.
    page : int, optional
        The page of a multi-page TIFF (default: the first).
    kind : str, optional
        The format the file's name promises (``"jpeg"``, ...): a file of
        another format is read all the same, with a note, and named so in
        the error if it cannot be read (default: the suffix of ``path``).

    Raises
    ------
    InputError
    """
    source = path if source is None else source
    if kind is None:
        kind = IMAGE_SUFFIXES.get(os.path.splitext(os.fspath(path))[1].lower())
    data = read_file_bytes(path, max_bytes=max_bytes, source=source)
    return decode_image(data, raw=raw, max_bytes=max_bytes, source=source, color=color,
                        with_alpha=with_alpha, page=page, kind=kind)


def decode_image(data: bytes, *, raw: bool = False, max_bytes: int | None = None,
                 source: object = "<image>", color: str | None = None,
                 with_alpha: bool = False, page: int | None = None,
                 kind: str | None = None) -> Decoded:
    """Decode image file contents held in memory; see :func:`read_image`."""
    if color not in (None, *COLORS):
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    limit = resolve_max_bytes(max_bytes)
    if not data:
        raise InputError(source, "empty file")
    found = sniff(data[:16])
    if found not in IMAGE_FORMATS:
        expected = f"a {describe_format(kind)} file" if kind else "an image"
        looks = f"looks like {describe_format(found)}" if found else "unknown contents"
        raise InputError(source, f"not {expected} ({looks})")
    try:
        decoded = _decode(data, found, limit, source, raw=raw, color=color,
                          with_alpha=with_alpha, page=page)
    except InputError as e:
        if kind is None or kind == found:
            raise
        raise InputError(source, f"not a {describe_format(kind)} file (looks like "
                         f"{describe_format(found)}: {e.problem})") from None
    if kind is not None and kind != found:
        note = f"a {describe_format(found)} file named as {describe_format(kind)}"
        decoded = Decoded(decoded.colour, decoded.alpha, decoded.mode, decoded.full,
                          (note, *decoded.notes))
    return decoded


def _decode(data: bytes, found: str, limit: int, source: object, *, raw: bool,
            color: str | None, with_alpha: bool, page: int | None) -> Decoded:
    if found == "tiff":
        from normcli.files.tiff import decode_tiff

        stored, mode, notes, alpha = decode_tiff(data, page=page, limit=limit, source=source)
        return _finish(stored, mode, notes, raw=raw, color=color, with_alpha=with_alpha,
                       source=source, has_alpha=alpha)
    if found == "png":
        stored, mode = _decode_png(data, limit, source)
        if stored is not None:  # 16 bits with colour: Pillow cannot hold it
            return _finish(stored, mode, (), raw=raw, color=color, with_alpha=with_alpha,
                           source=source)
    return _decode_pillow(data, found, limit, source, raw=raw, color=color,
                          with_alpha=with_alpha)


# ----------------------------------------------------------------- Pillow formats


def _plugin(kind: str):
    """The Pillow image class of a format, used directly: its constructor reads
    the header only, and skips ``Image.open``'s bomb check (a warning, whose
    filters are process-wide), which :func:`_check_size` makes instead."""
    if kind == "jpeg":
        from PIL import JpegImagePlugin

        return JpegImagePlugin.JpegImageFile
    if kind == "png":
        from PIL import PngImagePlugin

        return PngImagePlugin.PngImageFile
    if kind == "webp":
        from PIL import WebPImagePlugin

        return WebPImagePlugin.WebPImageFile
    if kind == "bmp":
        from PIL import BmpImagePlugin

        return BmpImagePlugin.BmpImageFile
    from PIL import GifImagePlugin

    return GifImagePlugin.GifImageFile


_MODE_CHANNELS = {"1": 1, "L": 1, "P": 4, "LA": 2, "PA": 4, "RGB": 3, "RGBA": 4, "CMYK": 4,
                  "YCbCr": 3, "I;16": 1, "I;16B": 1, "I;16L": 1, "I": 1, "F": 1}


def _check_size(width: int, height: int, channels: int, itemsize: int, limit: int,
                source: object, what: str) -> None:
    """Refuse an image over the byte limit or Pillow's decompression-bomb limit,
    from its header, before anything is decoded."""
    from PIL import Image

    pixels = width * height
    if width <= 0 or height <= 0:
        raise InputError(source, f"{what} image of {width}x{height} pixels has no pixels")
    need = pixels * channels * max(itemsize, 4)  # (decoded as float32)
    if need > limit:
        raise InputError(source, f"image {width}x{height} ({pixels} pixels, {channels} "
                         f"channel{'s' if channels > 1 else ''}) needs {need} bytes decoded, "
                         f"over the limit of {limit} (set {MAX_BYTES_ENV} to raise it)")
    top = Image.MAX_IMAGE_PIXELS
    if top is not None and pixels > top:
        raise InputError(source, f"image {width}x{height} ({pixels} pixels) is over "
                         f"Pillow's decompression-bomb limit of {top} pixels")


@contextlib.contextmanager
def _strict_truncation() -> Iterator[None]:
    """A truncated file must fail, never be padded: Pillow's flag for it is
    global; normcli never sets it, so it is only forced off (under a lock) when
    someone else in this process did."""
    from PIL import ImageFile

    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _truncation_lock:
        saved, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = saved


def open_pillow(data: bytes, kind: str, limit: int, source: object):
    """``(image, notes)``: a Pillow image of ``data`` (format ``kind``), its
    header checked and its pixels decoded."""
    name = describe_format(kind)
    try:
        im = _plugin(kind)(io.BytesIO(data))
    except Exception as e:  # Pillow raises SyntaxError, OSError, ValueError, struct.error...
        text = _text(e)
        if "truncated" in text.lower() or isinstance(e, (EOFError,)):
            raise InputError(source, f"truncated {name} file ({text})") from None
        raise InputError(source, f"cannot read {name} ({text})") from None
    try:
        _check_size(im.size[0], im.size[1], _MODE_CHANNELS.get(im.mode, 4),
                    2 if im.mode.startswith("I;16") else 1, limit, source, name)
        notes = []
        if kind in ("gif", "webp") and getattr(im, "is_animated", False):
            notes.append(f"animated {name}: its first frame read")
        orientation = _orientation(im)
        if orientation:
            notes.append(f"EXIF orientation {orientation} ({_ORIENTATIONS[orientation]}) left "
                         "as stored: the pixels are not rotated")
        with _strict_truncation():
            im.load()
    except InputError:
        im.close()
        raise
    except Exception as e:
        im.close()
        text = _text(e)
        if "truncated" in text.lower() or isinstance(e, EOFError):
            raise InputError(source, f"truncated {name} file ({text})") from None
        raise InputError(source, f"cannot decode {name} ({text})") from None
    return im, tuple(notes)


def _orientation(im) -> int | None:
    """The EXIF orientation (2..8) when it asks for a transformation."""
    if "exif" not in im.info and not hasattr(im, "tag_v2"):
        return None
    try:
        value = im.getexif().get(0x0112)
    except Exception:  # a malformed EXIF block is not the pixels' problem
        return None
    return value if isinstance(value, int) and value in _ORIENTATIONS else None


def _text(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


_NUMERIC_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def pillow_colour_mode(mode: str, color: str | None, info: dict) -> str:
    """The 8-bit Pillow mode an image of ``mode`` is converted to before its
    bands are taken: palette and 1-bit images expanded, ``color`` applied, alpha
    kept as the last band."""
    alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in info)
    if mode in ("1", "L", "LA"):
        base = "L"
    elif mode == "CMYK":
        base = "CMYK"
    else:  # RGB, RGBA, P, PA, YCbCr
        base = "RGB"
    if color == "rgb" and base in ("L", "CMYK"):
        base = "RGB"
    elif color == "gray" and base in ("RGB", "CMYK"):
        base = "L"
    if alpha:
        base = {"L": "LA", "RGB": "RGBA"}[base]
    return base


def _convert(im, target: str):
    """``im`` in mode ``target``; colour to gray always through RGB (as Pillow's
    own CMYK and palette conversions do), so that every route gives the luma
    of the RGB values (:func:`to_gray`)."""
    if im.mode == target:
        return im
    if target in ("L", "LA") and im.mode not in ("1", "L", "LA"):
        im = im.convert("RGBA" if target == "LA" else "RGB")
    return im.convert(target)


def pillow_bands(im, color: str | None):
    """``im`` converted for its bands to be read (see :func:`pillow_colour_mode`);
    None for the 16-bit, 32-bit and float modes, whose values numpy converts."""
    if im.mode in _NUMERIC_MODES:
        return None
    return _convert(im, pillow_colour_mode(im.mode, color, im.info))


def _numeric(im, source: object) -> np.ndarray:
    """A 16-bit (``I;16``, or ``I`` from a 16-bit PNG), 32-bit or float image's
    values, ``(1, H, W)``."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PNG"):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):  # pragma: no cover
            raise InputError(source, f"unexpected values for a 16-bit {im.format} image")
        arr = arr.astype(np.uint16)
    return np.ascontiguousarray(arr[None])


def _decode_pillow(data: bytes, kind: str, limit: int, source: object, *, raw: bool,
                   color: str | None, with_alpha: bool) -> Decoded:
    im, notes = open_pillow(data, kind, limit, source)
    with im:
        mode = im.mode
        converted = pillow_bands(im, color)
        if converted is None:
            return _finish(_numeric(im, source), mode, notes, raw=raw, color=color,
                           with_alpha=with_alpha, source=source)
        hwc = np.asarray(converted)
        has_alpha = converted.mode in ("LA", "RGBA")
    stored = np.ascontiguousarray(hwc[None] if hwc.ndim == 2 else hwc.transpose(2, 0, 1))
    return _split(stored, has_alpha, mode, notes, raw=raw, with_alpha=with_alpha)


def _decode_png(data: bytes, limit: int, source: object) -> tuple[np.ndarray | None, str]:
    """A PNG's chunks checked (every CRC, truncation) before decoding; a 16-bit
    colour PNG decoded in full here (``(stored, mode)``), anything else left
    to Pillow (``(None, mode)``)."""
    from normcli.files.pngcodec import PNGFormatError, decode_png, parse_chunks

    try:
        header, _chunks = parse_chunks(data)
    except PNGFormatError as e:
        raise InputError(source, str(e)) from None
    channels = header.channels
    if header.bit_depth != 16 or header.colour_type not in (2, 4, 6):
        return None, ""
    _check_size(header.width, header.height, channels, 2, limit, source, "PNG")
    if header.interlace:
        raise InputError(source, f"interlaced {header.description} PNG is not supported "
                         "(save it non-interlaced)")
    try:
        hwc = decode_png(data, max_bytes=limit)
    except PNGFormatError as e:
        raise InputError(source, str(e)) from None
    mode = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[header.colour_type]
    return np.ascontiguousarray(hwc.transpose(2, 0, 1)), mode


# ----------------------------------------------------------------- stored values


def to_gray(colour: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of ``(3, H, W)`` RGB, as Pillow's ``convert("L")``:
    ``(19595 R + 38470 G + 7471 B + 32768) >> 16`` for integers (exact),
    ``0.299 R + 0.587 G + 0.114 B`` in float32 for floats.

    >>> to_gray(np.array([[[255]], [[128]], [[0]]], np.uint8)).ravel().tolist()
    [151]
    """
    r, g, b = colour[0], colour[1], colour[2]
    if colour.dtype.kind in "ui":
        wide = np.uint64 if colour.dtype.itemsize >= 2 else np.uint32
        luma = (r.astype(wide) * 19595 + g.astype(wide) * 38470 + b.astype(wide) * 7471
                + 0x8000) >> 16
        return luma.astype(colour.dtype)[None]
    luma = (r.astype(np.float32) * np.float32(0.299) + g.astype(np.float32) * np.float32(0.587)
            + b.astype(np.float32) * np.float32(0.114))
    return luma[None]


def _cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """Pillow's CMYK to RGB: ``R = top - min(top, C + K)``, and so on."""
    top = np.iinfo(cmyk.dtype).max if cmyk.dtype.kind in "ui" else 1.0
    wide = cmyk.astype(np.float64 if cmyk.dtype.kind == "f" else np.int64)
    rgb = top - np.minimum(top, wide[:3] + wide[3:4])
    return rgb.astype(cmyk.dtype)


def _finish(stored: np.ndarray, mode: str, notes: tuple[str, ...], *, raw: bool,
            color: str | None, with_alpha: bool, source: object,
            has_alpha: bool | None = None) -> Decoded:
    """Stored ``(C, H, W)`` values that numpy converts (16-bit colour PNG, TIFF,
    16-bit and float Pillow modes), alpha last when there is one (by default
    when the mode is ``LA...`` or ``RGBA...``): ``color`` applied, alpha split
    off, scaled."""
    if has_alpha is None:
        has_alpha = mode.startswith(("LA", "RGBA"))
    alpha = stored[-1] if has_alpha else None
    colour = stored[:-1] if has_alpha else stored
    c = colour.shape[0]
    if color is not None and mode.startswith("CMYK") and c == 4:
        colour = _cmyk_to_rgb(colour)
        c = 3
    if color == "gray" and c == 3:
        colour = to_gray(colour)
    elif color == "rgb" and c == 1:
        colour = np.repeat(colour, 3, axis=0)
    elif color is not None and c not in (1, 3):
        raise InputError(source, f"has {c} colour channels ({mode}); --color {color} needs "
                         "gray, RGB or CMYK images")
    joined = colour if alpha is None else np.concatenate([colour, alpha[None]])
    return _split(np.ascontiguousarray(joined), alpha is not None, mode, notes, raw=raw,
                  with_alpha=with_alpha)


def full_scale(dtype: np.dtype) -> float | None:
    """The stored value of full intensity: 255, 65535, ... for unsigned integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return float(np.iinfo(dtype).max)
    if dtype.kind == "b":
        return 1.0
    return None


def _split(stored: np.ndarray, has_alpha: bool, mode: str, notes: tuple[str, ...], *,
           raw: bool, with_alpha: bool) -> Decoded:
    """Scale the stored values and take the alpha band (the last) apart."""
    if stored.dtype == np.bool_:
        stored = stored.astype(np.uint8) * np.uint8(255)
    full = full_scale(stored.dtype)
    if full is not None and not raw:
        values, out_full = np.divide(stored, np.float32(full), dtype=np.float32), 1.0
    elif stored.dtype.kind == "f":
        values, out_full = stored.astype(np.promote_types(stored.dtype, np.float32),
                                         copy=False), None
    elif stored.dtype.kind == "i" and not raw:  # signed: no natural scale
        ft = np.float32 if stored.dtype.itemsize <= 2 else np.float64
        values, out_full = stored.astype(ft), None
    else:
        values, out_full = stored, full
    if not has_alpha or with_alpha:
        return Decoded(values, None, mode, out_full, notes)
    return Decoded(np.ascontiguousarray(values[:-1]), values[-1], mode, out_full, notes)


def value_table(dtype: np.dtype, raw: bool) -> np.ndarray:
    """The value each stored integer 0..top reads as (float64 of what
    :func:`read_image` returns): ``float32(k) / float32(top)``, or ``k`` raw."""
    top = int(np.iinfo(dtype).max)
    k = np.arange(top + 1)
    if raw:
        return k.astype(np.float64)
    return np.divide(k.astype(dtype), np.float32(top), dtype=np.float32).astype(np.float64)


def image_histogram(data: bytes, *, max_bytes: int | None = None, source: object = "<image>",
                    color: str | None = None, with_alpha: bool = False,
                    kind: str | None = None) -> tuple[np.ndarray, str, tuple[str, ...]] | None:
    """``(counts, mode, notes)``: how often each stored 8-bit value occurs in each
    colour channel (``(C, 256)``, alpha left out unless ``with_alpha``), counted
    by Pillow without making an array; None when the image is not one Pillow
    holds in 8 bits (16-bit, float, TIFF): read it with :func:`decode_image`.

    The channels and values are those of :func:`decode_image` (``raw=True``).
    """
    limit = resolve_max_bytes(max_bytes)
    found = sniff(data[:16])
    if found not in ("png", "jpeg", "webp", "bmp", "gif") or (kind and kind != found):
        return None  # (other formats, and misnamed files, take the general route)
    if found == "png":
        stored, _mode = _decode_png(data, limit, source)
        if stored is not None:
            return None
    im, notes = open_pillow(data, found, limit, source)
    with im:
        converted = pillow_bands(im, color)
        if converted is None:
            return None
        bands = len(converted.getbands())
        counts = np.asarray(converted.histogram(), np.int64).reshape(bands, 256)
        has_alpha = converted.mode in ("LA", "RGBA")
        mode = im.mode
    if has_alpha and not with_alpha:
        counts = counts[:-1]
    return counts, mode, notes
