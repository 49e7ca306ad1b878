"""``--preview FILE.png``: one image of feature maps before and after a normalization.

What is drawn
-------------
The first :data:`MAX_CHANNELS` channels of the first :data:`MAX_SAMPLES`
samples (inputs, or the leading batch entries of one input).  Each sample is a
block headed by its name: one column per channel, one row per stage
(``before`` over ``after``, or for ``compare`` ``before``, ``LRN inter``,
``LRN intra``, ``BN``).  Blocks are stacked top to bottom under a title that
names the normalization and its parameters, and over a colour bar.

Colour scale (documented in the image's colour bar)
---------------------------------------------------
A diverging blue-white-red map (ColorBrewer RdBu, reversed), symmetric about
zero, **scaled per panel**: a value ``v`` in a panel whose largest magnitude
is ``m`` gets the colour of ``v / m`` in ``[-1, 1]``: ``-m`` darkest blue,
``0`` white, ``+m`` darkest red.  Before and after have different ranges, so
every panel carries its own ``min .. max`` label.  NaN is black, ``+Inf``
and ``-Inf`` take the end colours, and an all-zero panel is white.

Small maps are enlarged by an integer factor (nearest neighbour) until their
longer side is at least :data:`MIN_PANEL` pixels; maps longer than
:data:`MAX_PANEL` are shown with every k-th pixel.

Text is drawn with Pillow's built-in bitmap font, so the image is the same,
pixel for pixel, wherever it is made.  Numbers only (numpy and PIL; no click).
"""

from __future__ import annotations

import io
import itertools
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from normcli.render.tables import format_number

__all__ = [
    "MAX_CHANNELS",
    "MAX_SAMPLES",
    "PreviewItem",
    "PreviewRecorder",
    "Panel",
    "Layout",
    "diverging_colors",
    "split_samples",
    "layout_preview",
    "render_preview",
    "preview_png_bytes",
]

MAX_CHANNELS = 4
MAX_SAMPLES = 3
MIN_PANEL = 96
MAX_PANEL = 256

MARGIN = 16
GAP = 10  # between panels
BLOCK_GAP = 28  # between sample blocks
LINE = 13  # height of one line of 1x text
TITLE_SCALE = 2
BAR_W, BAR_H = 256, 14

BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
SOFT_INK = (100, 100, 100)
FRAME = (170, 170, 170)
NAN_COLOR = (0, 0, 0)

# ColorBrewer RdBu (11 classes), from -1 (blue) to +1 (red); the middle is the white.
_ANCHORS = np.array(
    [
        (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
        (255, 255, 255),
        (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
    ],
    dtype=np.float64,
)
_LEVELS = 255  # odd: index 127 is exactly 0


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    t = np.linspace(0.0, len(_ANCHORS) - 1, _LEVELS)
    lo = np.floor(t).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (t - lo)[:, None]
    lut = _ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac
    return np.rint(lut).astype(np.uint8)


def diverging_colors(values: np.ndarray, scale: float) -> np.ndarray:
    """RGB ``uint8`` colours of ``values`` on the symmetric scale ``[-scale, +scale]``.

    >>> diverging_colors(np.array([-1.0, 0.0, 1.0]), 1.0).tolist()
    [[5, 48, 97], [255, 255, 255], [103, 0, 31]]
    >>> diverging_colors(np.array([np.nan, np.inf]), 1.0).tolist()
    [[0, 0, 0], [103, 0, 31]]
    """
    v = np.asarray(values, dtype=np.float64)
    scale = scale if scale > 0 and math.isfinite(scale) else 1.0
    with np.errstate(invalid="ignore"):
        t = np.clip(np.nan_to_num(v / scale, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    idx = np.rint((t + 1.0) * ((_LEVELS - 1) / 2)).astype(np.intp)
    out = _lut()[idx]
    out[np.isnan(v)] = NAN_COLOR
    return out


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PreviewItem:
    """One sample: its name and, per stage, its first channels as ``(C', H, W)`` float64."""

    label: str
    channels: tuple[int, ...]
    maps: Mapping[str, np.ndarray]


def _as_chw(a: np.ndarray, channels_last: bool) -> np.ndarray:
    if a.ndim == 1:
        return a[None, None, :]
    if a.ndim == 2:
        return a[None]
    return np.moveaxis(a, -1, -3) if channels_last else a


def split_samples(
    label: str,
    arrays: Mapping[str, np.ndarray],
    *,
    channels_last: bool = False,
    limit: int = MAX_SAMPLES,
    max_channels: int = MAX_CHANNELS,
) -> list[PreviewItem]:
    """Cut one input (and its results, same shape) into at most ``limit`` samples.

    ``(H, W)`` is one channel, ``(C, H, W)`` one sample, ``(N, C, H, W)`` and
    more leading axes are several samples (labelled ``name[i]``); a 1-D array
    is a one-row map.  Only the first ``max_channels`` channels are copied.

    >>> items = split_samples("x", {"before": np.zeros((5, 6, 2, 3))})
    >>> [(i.label, i.channels, i.maps["before"].shape) for i in items]
    [('x[0]', (0, 1, 2, 3), (4, 2, 3)), ('x[1]', (0, 1, 2, 3), (4, 2, 3)), \
('x[2]', (0, 1, 2, 3), (4, 2, 3))]
    """
    chw = {k: _as_chw(np.asarray(v), channels_last) for k, v in arrays.items()}
    first = next(iter(chw.values()))
    lead = first.shape[:-3]
    n_ch = first.shape[-3]
    keep = min(n_ch, max_channels)
    items = []
    for index in itertools.islice(np.ndindex(*lead) if lead else [()], limit):
        name = label + (f"[{','.join(map(str, index))}]" if lead else "")
        maps = {k: np.array(v[index][:keep], dtype=np.float64) for k, v in chw.items()}
        items.append(PreviewItem(name, tuple(range(keep)), maps))
    return items


# --------------------------------------------------------------------------- text


@lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    loader = getattr(ImageFont, "load_default_imagefont", None)  # Pillow >= 10.1
    return loader() if loader is not None else ImageFont.load_default()


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """Width and height in pixels of ``text`` in the built-in font at ``scale``."""
    left, top, right, bottom = _font().getbbox(_latin1(text))
    return (right + 1) * scale, LINE * scale


def _fit(text: str, width: int, scale: int = 1) -> str:
    """``text``, cut at the front with ``...`` to fit ``width`` pixels."""
    if text_size(text, scale)[0] <= width:
        return text
    while len(text) > 1 and text_size("..." + text, scale)[0] > width:
        text = text[1:]
    return "..." + text


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Panel:
    """One drawn map: where (``box`` = x0, y0, x1, y1 of the image area) and what."""

    box: tuple[int, int, int, int]
    sample: str
    stage: str
    channel: int
    vmin: float
    vmax: float
    scale: float
    label: str  # the range text drawn under the panel
    zoom: int  # >1: enlarged by this factor; <0: every -zoom-th pixel


@dataclass(frozen=True)
class TextItem:
    xy: tuple[int, int]
    text: str
    scale: int = 1
    color: tuple[int, int, int] = INK


@dataclass(frozen=True)
class Layout:
    """Everything :func:`render_preview` draws, with pixel positions."""

    width: int
    height: int
    panels: list[Panel]
    texts: list[TextItem] = field(default_factory=list)
    colorbar: tuple[int, int, int, int] = (0, 0, 0, 0)


def _zoom(h: int, w: int) -> int:
    longest = max(h, w)
    if longest > MAX_PANEL:
        return -math.ceil(longest / MAX_PANEL)
    return max(1, math.ceil(MIN_PANEL / longest))


def _zoomed(h: int, w: int, zoom: int) -> tuple[int, int]:
    if zoom > 0:
        return h * zoom, w * zoom
    return -(-h // -zoom), -(-w // -zoom)


def _range_label(m: np.ndarray) -> tuple[float, float, float, str]:
    finite = m[np.isfinite(m)]
    if finite.size == 0:
        return math.nan, math.nan, 1.0, "no finite values"
    lo, hi = float(finite.min()), float(finite.max())
    scale = max(abs(lo), abs(hi))
    text = f"{format_number(lo)} .. {format_number(hi)}"
    if finite.size < m.size:
        text += " +NaN/Inf"
    return lo, hi, scale if scale > 0 else 1.0, text


def layout_preview(
    items: Sequence[PreviewItem], stages: Sequence[str], *, title: str, subtitle: str = ""
) -> Layout:
    """Place every panel and label; pure arithmetic (no drawing).

    Returns a :class:`Layout` whose ``panels`` are in drawing order: sample by
    sample, stage by stage, channel by channel.
    """
    if not items:
        raise ValueError("nothing to preview: no samples")
    texts: list[TextItem] = []
    panels: list[Panel] = []
    y = MARGIN
    texts.append(TextItem((MARGIN, y), title, TITLE_SCALE))
    y += LINE * TITLE_SCALE + 2
    if subtitle:
        texts.append(TextItem((MARGIN, y), subtitle, 1, SOFT_INK))
        y += LINE
    y += 10
    top = y

    label_w = max(text_size(st)[0] for st in stages) + 10
    x_left = MARGIN + label_w
    right = bottom = 0
    y0 = top
    for item in items:
        h, w = next(iter(item.maps.values())).shape[-2:]
        zoom = _zoom(h, w)
        ph, pw = _zoomed(h, w, zoom)
        labels = {(st, i): _range_label(item.maps[st][i]) for st in stages
                  for i in range(len(item.channels))}
        cell_w = max([pw] + [text_size(lab[3])[0] for lab in labels.values()])
        width = label_w + len(item.channels) * (cell_w + GAP) - GAP
        texts.append(TextItem((MARGIN, y0), _fit(item.label, max(width, 200))))
        head_y = y0 + LINE + 4
        for i, ch in enumerate(item.channels):
            cx = x_left + i * (cell_w + GAP)
            texts.append(TextItem((cx, head_y), f"channel {ch}", 1, SOFT_INK))
        py = head_y + LINE + 2
        for stage in stages:
            texts.append(TextItem((MARGIN, py + (ph - LINE) // 2), stage))
            for i, ch in enumerate(item.channels):
                cx = x_left + i * (cell_w + GAP)
                lo, hi, scale, text = labels[(stage, i)]
                panels.append(Panel((cx, py, cx + pw, py + ph), item.label, stage, ch, lo, hi,
                                    scale, text, zoom))
                texts.append(TextItem((cx, py + ph + 2), text, 1, SOFT_INK))
            py += ph + LINE + GAP
        right = max(right, MARGIN + width)
        bottom = max(bottom, py)
        y0 = py + BLOCK_GAP - GAP

    # the colour bar and its legend
    y = bottom + 6
    bar = (MARGIN, y + LINE + 2, MARGIN + BAR_W, y + LINE + 2 + BAR_H)
    texts.append(TextItem((MARGIN, y), "colour scale of every panel (its own range):"))
    texts.append(TextItem((bar[0], bar[3] + 2), "-max|v|"))
    mid = "0"
    texts.append(TextItem(((bar[0] + bar[2]) // 2 - text_size(mid)[0] // 2, bar[3] + 2), mid))
    end = "+max|v|"
    texts.append(TextItem((bar[2] - text_size(end)[0], bar[3] + 2), end))
    legend = ["v / max|v| of the panel: blue < 0 < red, white = 0",
              "under each panel: its min .. max; black = NaN"]
    for k, line in enumerate(legend):
        texts.append(TextItem((bar[2] + 16, bar[1] - 2 + k * LINE), line, 1, SOFT_INK))
    legend_w = max(text_size(t)[0] for t in legend)
    width = max(right, bar[2] + 16 + legend_w,
                MARGIN + text_size(title, TITLE_SCALE)[0],
                MARGIN + text_size(subtitle)[0] if subtitle else 0) + MARGIN
    height = bar[3] + 2 + LINE + MARGIN
    return Layout(width, height, panels, texts, bar)


# --------------------------------------------------------------------------- drawing


def _panel_pixels(m: np.ndarray, panel: Panel) -> np.ndarray:
    rgb = diverging_colors(m, panel.scale)
    if panel.zoom > 1:
        rgb = rgb.repeat(panel.zoom, axis=0).repeat(panel.zoom, axis=1)
    elif panel.zoom < 0:
        rgb = rgb[::-panel.zoom, ::-panel.zoom]
    return rgb


def _draw_text(canvas: np.ndarray, item: TextItem) -> None:
    from PIL import Image, ImageDraw

    text = _latin1(item.text)
    w, h = text_size(text)
    strip = Image.new("L", (w + 1, h), 0)
    ImageDraw.Draw(strip).text((0, 0), text, fill=255, font=_font())
    mask = np.asarray(strip) > 127
    if item.scale > 1:
        mask = mask.repeat(item.scale, axis=0).repeat(item.scale, axis=1)
    x, y = item.xy
    hh = min(mask.shape[0], canvas.shape[0] - y)
    ww = min(mask.shape[1], canvas.shape[1] - x)
    if hh <= 0 or ww <= 0:
        return
    region = canvas[y:y + hh, x:x + ww]
    region[mask[:hh, :ww]] = item.color


def render_preview(
    items: Sequence[PreviewItem], stages: Sequence[str], *, title: str, subtitle: str = ""
):
    """The preview as a :class:`PIL.Image.Image` (RGB); see the module docstring."""
    from PIL import Image

    layout = layout_preview(items, stages, title=_latin1(title), subtitle=_latin1(subtitle))
    canvas = np.empty((layout.height, layout.width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    maps = {(item.label, s, ch): item.maps[s][i] for item in items for s in stages
            for i, ch in enumerate(item.channels)}
    for p in layout.panels:
        x0, y0, x1, y1 = p.box
        canvas[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = FRAME
        canvas[y0:y1, x0:x1] = _panel_pixels(maps[(p.sample, p.stage, p.channel)], p)
    bx0, by0, bx1, by1 = layout.colorbar
    ramp = np.linspace(-1.0, 1.0, bx1 - bx0)
    canvas[by0 - 1:by1 + 1, bx0 - 1:bx1 + 1] = FRAME
    canvas[by0:by1, bx0:bx1] = diverging_colors(ramp, 1.0)[None, :, :]
    for item in layout.texts:
        _draw_text(canvas, item)
    return Image.fromarray(canvas, "RGB")


def preview_png_bytes(image) -> bytes:
    """PNG bytes of a preview image."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class PreviewRecorder:
    """Collects the first samples of a run and makes the preview at the end.

    Pass it as the ``preview=`` of a :mod:`normcli.runs` run: the run calls
    :meth:`observe` with every input and result (from several threads, in any
    order: the input index puts the samples back in order) and :meth:`stage`
    with its other outputs.  Or call :meth:`add` with several results per input.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        title: str,
        subtitle: str = "",
        stages: Sequence[str] = ("before", "after"),
        channels_last: bool = False,
        force: bool = False,
    ) -> None:
        self.path, self.title, self.subtitle = path, title, subtitle
        self.stages = tuple(stages)
        self.channels_last, self.force = channels_last, force
        self.size: tuple[int, int] | None = None  # (width, height) once staged
        self._seen: dict[int, list[PreviewItem]] = {}
        self._lock = threading.Lock()

    @property
    def items(self) -> list[PreviewItem]:
        """The samples kept so far, in input order, at most :data:`MAX_SAMPLES`."""
        with self._lock:
            ranked = [self._seen[k] for k in sorted(self._seen)]
        return [item for items in ranked for item in items][:MAX_SAMPLES]

    def add(self, label: str, arrays: Mapping[str, np.ndarray], index: int | None = None) -> None:
        """Keep the first samples of ``arrays`` (stage name → array, all one shape);
        ``index``: the input's place in the run (default: after those added)."""
        with self._lock:
            rank = len(self._seen) if index is None else index
            if rank >= MAX_SAMPLES:
                return  # the first inputs hold at least MAX_SAMPLES samples
        items = split_samples(label, arrays, channels_last=self.channels_last)
        with self._lock:
            self._seen[rank] = items

    def observe(self, index: int, label: str, x: np.ndarray, y: np.ndarray) -> None:
        """The run's hook: input ``index`` (named ``label``) and its result."""
        self.add(label, {self.stages[0]: x, self.stages[1]: y}, index)

    def image(self):
        return render_preview(self.items, self.stages, title=self.title, subtitle=self.subtitle)

    def stage(self, staged) -> tuple[int, int]:
        """Stage the PNG in a ``StagedWrites``, to appear with the run's other outputs."""
        image = self.image()
        data = preview_png_bytes(image)
        with staged.open(self.path, force=self.force) as f:
            f.write(data)
        self.size = image.size
        return image.size
