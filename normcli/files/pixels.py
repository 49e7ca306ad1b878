"""From results back to pixels: how a normalized image is written as an image.

A result is a float array; an 8- or 16-bit PNG needs integers.  Three
mappings (``PIXEL_MAPS``), each channel mapped alike unless said otherwise;
values beyond the range are clipped, NaN becomes 0:

``input``
    The input's own scale: the value that was full intensity in the input
    (1.0 for images read as [0, 1], 255 or 65535 read raw) maps to the top
    (255 or 65535), 0 to 0.  An output equal to its input gives back the same
    pixels, so what a normalization changed is what one sees: an LRN'd photo
    is darker where its neighbourhood is bright.  The default of ``lrn``'s
    image outputs.
``centred``
    For zero-centred results (batch norm): -3..3 (three standard deviations
    each side) maps to 0..top, so 0 is mid-gray (128 of 255).  The default of
    ``batchnorm``'s image outputs.
``stretch``
    Each channel's own finite min..max to 0..top
    (:func:`normcli.files.png.rescale_channels`), to see the shape of any
    values at all: the default for outputs of arrays (``.npy`` inputs), which
    have no scale of their own.

Images keep their alpha channel: the input's, as it was (scaled to the
output's bit depth), put back after the colour channels.  1 colour channel
gives a gray image, 3 an RGB image (with alpha: LA, RGBA); any other number
a labelled grid of gray tiles, alpha left out.

TIFF outputs (``.tif``) hold the values themselves as float32, with the
alpha as stored (:func:`normcli.files.tiff.encode_tiff`): no mapping.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

__all__ = ["PIXEL_MAPS", "CENTRED_RANGE", "PixelMap", "ImageOut", "to_pixels", "encode_image"]

#: The mappings of results to pixels.
PIXEL_MAPS = ("input", "centred", "stretch")
#: ``centred`` maps -CENTRED_RANGE..CENTRED_RANGE to the full range.
CENTRED_RANGE = 3.0


@dataclass(frozen=True)
class PixelMap:
    """A mapping (``kind``, one of :data:`PIXEL_MAPS`) and, for ``input``, the
    value of full intensity (``full``: 1.0, 255, 65535)."""

    kind: str
    full: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in PIXEL_MAPS:
            raise ValueError(f"pixel mapping {self.kind!r} is not one of {PIXEL_MAPS}")

    def describe(self, bits: int = 8) -> str:
        """``"input scale, 0..1 → 0..255"`` and the like, for the report.

        >>> PixelMap("centred").describe()
        'centred, -3..3 → 0..255 (0 is 128)'
        """
        top = 2**bits - 1
        if self.kind == "input":
            return f"input scale, 0..{self.full:g} → 0..{top}"
        if self.kind == "centred":
            return (f"centred, -{CENTRED_RANGE:g}..{CENTRED_RANGE:g} → 0..{top} "
                    f"(0 is {(top + 1) // 2})")
        return f"stretch, each channel's min..max → 0..{top}"


@dataclass(frozen=True)
class ImageOut:
    """How one result is written as an image: its mapping to pixels, and the
    input's alpha (``(H, W)``, opaque at ``alpha_full``) to put back."""

    mapping: PixelMap
    alpha: np.ndarray | None = None
    alpha_full: float | None = 1.0
    last_is_alpha: bool = False  # the result's last channel is alpha (read as a channel)


def to_pixels(chw: np.ndarray, mapping: PixelMap, bits: int = 8) -> np.ndarray:
    """``(C, H, W)`` values as ``uint8``/``uint16`` pixels (see the module docstring).

    >>> to_pixels(np.array([[[0.0, 0.5, 1.0, 2.0]]]), PixelMap("input")).tolist()
    [[[0, 128, 255, 255]]]
    >>> to_pixels(np.array([[[-3.0, 0.0, 3.0]]]), PixelMap("centred")).tolist()
    [[[0, 128, 255]]]
    """
    from normcli.files.png import rescale_channels

    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    x = np.asarray(chw)
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"expected a non-empty (C, H, W) array, got shape {x.shape}")
    if mapping.kind == "stretch":
        return rescale_channels(x, bits)
    top = 2**bits - 1
    v = x.astype(np.float64)
    if mapping.kind == "input":
        scale, shift = top / mapping.full, 0.0
    else:
        scale, shift = top / (2 * CENTRED_RANGE), CENTRED_RANGE
    with np.errstate(invalid="ignore"):
        out = np.rint((v + shift) * scale)
    out = np.nan_to_num(out, nan=0.0, posinf=top, neginf=0.0)
    return np.clip(out, 0, top).astype(np.uint8 if bits == 8 else np.uint16)


def _alpha_pixels(alpha: np.ndarray, full: float | None, bits: int) -> np.ndarray:
    """The input's alpha at the output's depth (as stored at the same depth)."""
    top = 2**bits - 1
    full = 1.0 if full is None else full
    a = np.rint(np.asarray(alpha, np.float64) * (top / full))
    return np.clip(np.nan_to_num(a), 0, top).astype(np.uint8 if bits == 8 else np.uint16)


def encode_image(chw: np.ndarray, *, suffix: str, mapping: PixelMap | None = None,
                 bits: int = 8, alpha: np.ndarray | None = None,
                 alpha_full: float | None = 1.0, last_is_alpha: bool = False) -> bytes:
    """The bytes of a ``.png`` or ``.tif`` file showing ``chw`` (``(H, W)`` or
    ``(C, H, W)``), with ``alpha`` (``(H, W)``, in units where ``alpha_full`` is
    opaque) put back; ``last_is_alpha``: the last channel is the alpha (a result
    of alpha read as a channel), mapped as the others are."""
    x = np.asarray(chw)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"expected a non-empty (H, W) or (C, H, W) array, got shape {x.shape}")
    if last_is_alpha and x.shape[0] in (2, 4) and suffix == ".png":
        pixels = to_pixels(x, mapping or PixelMap("stretch"), bits)
        hwc = np.ascontiguousarray(pixels.transpose(1, 2, 0))
        from normcli.files.png import _pixels_to_image
        from normcli.files.pngcodec import encode_png

        return _png_bytes(hwc, _pixels_to_image, encode_png)
    if alpha is not None and np.shape(alpha) != x.shape[1:]:
        alpha = None  # (a result of another size cannot wear the input's alpha)
    if suffix in (".tif", ".tiff"):
        from normcli.files.tiff import encode_tiff

        return encode_tiff(x, alpha)
    from normcli.files.png import _grid, _pixels_to_image, check_grid
    from normcli.files.pngcodec import encode_png

    check_grid(x.shape[0])
    pixels = to_pixels(x, mapping or PixelMap("stretch"), bits)
    if x.shape[0] not in (1, 3):
        grid = _grid(pixels, 2**bits - 1)
        return _png_bytes(grid, _pixels_to_image, encode_png)
    planes = [pixels]
    if alpha is not None:
        planes.append(_alpha_pixels(alpha, alpha_full, bits)[None])
    hwc = np.ascontiguousarray(np.concatenate(planes).transpose(1, 2, 0))
    if hwc.shape[2] == 1:
        hwc = hwc[:, :, 0]
    return _png_bytes(hwc, _pixels_to_image, encode_png)


def _png_bytes(pixels: np.ndarray, to_image, encode_png) -> bytes:
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        return encode_png(pixels)  # Pillow cannot hold 16-bit colour
    buf = io.BytesIO()
    to_image(pixels).save(buf, format="PNG")  # (H, W, 2) is LA, (H, W, 4) RGBA
    return buf.getvalue()
