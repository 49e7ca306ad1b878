"""``--preview FILE.png``: one image of feature maps before and after a normalization.

What is drawn
-------------
The chosen channels (default the first :data:`MAX_CHANNELS`) of the chosen
samples (default the first :data:`MAX_SAMPLES`; samples are numbered over the
inputs in order, each input's leading batch entries one after another).  Each
sample is a block headed by its name: one column per channel, one row per
stage (``before`` over ``after``; for ``compare`` ``before``, ``LRN inter``,
``LRN intra``, ``BN``), then one row of the **change** per later stage
(``after - before``: what the normalization did).  Blocks are stacked top to
bottom under a title that names the normalization and its parameters, and
over the colour bars.

Colour scales (documented in the image's legend)
------------------------------------------------
``scale="channel"`` (default): the stage panels of one channel of one sample
**share one scale**, so that before and after can be compared colour for
colour (LRN mostly divides: its "after" is fainter).  The change panels of a
channel share another scale of their own.  ``scale="panel"``: every panel is
scaled to its own largest magnitude (the patterns, whatever the sizes).

The map follows the data: where every value of a scale is >= 0 (images,
ReLU features) a **sequential** map, viridis, from its darkest at 0 to its
brightest at the scale's maximum, so that an image looks like itself; where
there are negative values (batch norm's output, every change) a **diverging**
blue-white-red map (ColorBrewer RdBu, reversed), symmetric about 0: ``-m``
darkest blue, ``0`` white, ``+m`` darkest red.  Every panel carries its own
``min .. max`` under it.  NaN is grey, ``+Inf`` and ``-Inf`` take the end
colours, and an all-zero panel is the colour of 0.

Small maps are enlarged by an integer factor (nearest neighbour) until their
longer side is at least :data:`MIN_PANEL` pixels; maps longer than
:data:`MAX_PANEL` are shown with every k-th pixel.

Text is drawn with Pillow's built-in bitmap font, so the image is the same,
pixel for pixel, wherever it is made.  Numbers only (numpy and PIL; no click).
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from normcli.errors import ParameterError
from normcli.render.tables import format_number

__all__ = [
    "MAX_CHANNELS",
    "MAX_SAMPLES",
    "LIMIT_CHANNELS",
    "LIMIT_SAMPLES",
    "SCALES",
    "PreviewItem",
    "PreviewRecorder",
    "Panel",
    "Layout",
    "diverging_colors",
    "sequential_colors",
    "split_samples",
    "layout_preview",
    "render_preview",
    "preview_png_bytes",
]

MAX_CHANNELS = 4  # drawn by default
MAX_SAMPLES = 3
LIMIT_CHANNELS = 16  # the most that may be chosen (the image stays a few MB at most)
LIMIT_SAMPLES = 8
SCALES = ("channel", "panel")
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
NAN_COLOR = (128, 128, 128)

# ColorBrewer RdBu (11 classes), from -1 (blue) to +1 (red); the middle is the white.
_DIVERGING = np.array(
    [
        (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
        (255, 255, 255),
        (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
    ],
    dtype=np.float64,
)
# viridis (matplotlib's default map) at t = 0, 1/8, ..., 1, from 0 (dark) to the maximum.
_SEQUENTIAL = np.array(
    [
        (68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 144, 140),
        (39, 173, 129), (93, 200, 99), (170, 220, 50), (253, 231, 37),
    ],
    dtype=np.float64,
)
_LEVELS = 255  # odd: the diverging map's index 127 is exactly 0


@lru_cache(maxsize=2)
def _lut(which: str) -> np.ndarray:
    anchors = _DIVERGING if which == "diverging" else _SEQUENTIAL
    t = np.linspace(0.0, len(anchors) - 1, _LEVELS)
    lo = np.floor(t).astype(int).clip(0, len(anchors) - 2)
    frac = (t - lo)[:, None]
    lut = anchors[lo] * (1 - frac) + anchors[lo + 1] * frac
    return np.rint(lut).astype(np.uint8)


def _colors(values: np.ndarray, scale: float, which: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    scale = scale if scale > 0 and math.isfinite(scale) else 1.0
    low = -1.0 if which == "diverging" else 0.0
    with np.errstate(invalid="ignore"):
        t = np.clip(np.nan_to_num(v / scale, nan=0.0, posinf=1.0, neginf=-1.0), low, 1.0)
    idx = np.rint((t - low) * ((_LEVELS - 1) / (1.0 - low))).astype(np.intp)
    out = _lut(which)[idx]
    out[np.isnan(v)] = NAN_COLOR
    return out


def diverging_colors(values: np.ndarray, scale: float) -> np.ndarray:
    """RGB ``uint8`` colours of ``values`` on the symmetric scale ``[-scale, +scale]``.

    >>> diverging_colors(np.array([-1.0, 0.0, 1.0]), 1.0).tolist()
    [[5, 48, 97], [255, 255, 255], [103, 0, 31]]
    >>> diverging_colors(np.array([np.nan, np.inf]), 1.0).tolist()
    [[128, 128, 128], [103, 0, 31]]
    """
    return _colors(values, scale, "diverging")


def sequential_colors(values: np.ndarray, scale: float) -> np.ndarray:
    """RGB ``uint8`` colours of non-negative ``values`` on ``[0, scale]`` (viridis).

    >>> sequential_colors(np.array([0.0, 0.5, 1.0, 2.0]), 1.0).tolist()
    [[68, 1, 84], [33, 144, 140], [253, 231, 37], [253, 231, 37]]
    """
    return _colors(values, scale, "sequential")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PreviewItem:
    """One sample: its name and, per stage, its chosen channels as ``(C', H, W)`` float64."""

    label: str
    channels: tuple[int, ...]
    maps: Mapping[str, np.ndarray]


def _as_chw(a: np.ndarray, channels_last: bool) -> np.ndarray:
    if a.ndim == 1:
        return a[None, None, :]
    if a.ndim == 2:
        return a[None]
    return np.moveaxis(a, -1, -3) if channels_last else a


def sample_count(shape: Sequence[int]) -> int:
    """How many samples an input of ``shape`` holds: its leading axes beyond (C, H, W)."""
    return math.prod(shape[:-3]) if len(shape) > 3 else 1


def _refuse_channels(label: str, channels: Sequence[int], count: int) -> None:
    bad = [c for c in channels if c >= count]
    if bad:
        problem = (f"channel {bad[0]} does not exist: {label} has {count} channel"
                   f"{'s' if count != 1 else ''} (0..{count - 1})")
        raise ParameterError(f"preview_channels={problem}", param="preview_channels",
                             value=tuple(channels), problem=problem)


def split_samples(
    label: str,
    arrays: Mapping[str, np.ndarray],
    *,
    channels_last: bool = False,
    limit: int = MAX_SAMPLES,
    max_channels: int = MAX_CHANNELS,
    channels: Sequence[int] | None = None,
    samples: Sequence[int] | None = None,
) -> list[PreviewItem]:
    """Cut one input (and its results, same shape) into preview samples.

    ``(H, W)`` is one channel, ``(C, H, W)`` one sample, ``(N, C, H, W)`` and
    more leading axes are several samples (labelled ``name[i]``); a 1-D array
    is a one-row map.  ``samples``: the indices of the samples to keep (default
    the first ``limit``); ``channels``: the channels (default the first
    ``max_channels``; one that does not exist is a :class:`ParameterError`).
    Only those are copied.

    >>> items = split_samples("x", {"before": np.zeros((5, 6, 2, 3))})
    >>> [(i.label, i.channels, i.maps["before"].shape) for i in items]
    [('x[0]', (0, 1, 2, 3), (4, 2, 3)), ('x[1]', (0, 1, 2, 3), (4, 2, 3)), \
('x[2]', (0, 1, 2, 3), (4, 2, 3))]
    >>> [i.label for i in split_samples("x", {"a": np.zeros((5, 6, 2, 3))}, samples=[4, 1],
    ...                                 channels=[5])]
    ['x[4]', 'x[1]']
    """
    chw = {k: _as_chw(np.asarray(v), channels_last) for k, v in arrays.items()}
    first = next(iter(chw.values()))
    lead, n_ch = first.shape[:-3], first.shape[-3]
    if channels is None:
        channels = tuple(range(min(n_ch, max_channels)))
    _refuse_channels(label, channels, n_ch)
    count = math.prod(lead) if lead else 1
    wanted = range(min(count, limit)) if samples is None else [j for j in samples if j < count]
    picks = list(channels)
    items = []
    for j in wanted:
        index = np.unravel_index(j, lead) if lead else ()
        name = label + (f"[{','.join(str(int(i)) for i in index)}]" if lead else "")
        maps = {k: np.array(v[index][picks], dtype=np.float64) for k, v in chw.items()}
        items.append(PreviewItem(name, tuple(channels), maps))
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


# --------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    """How a panel's values become colours: ``kind`` "sequential" (``[0, top]``) or
    "diverging" (``[-top, top]``)."""

    kind: str
    top: float


def _finite(maps: Sequence[np.ndarray]) -> np.ndarray:
    values = np.concatenate([m.reshape(-1) for m in maps])
    return values[np.isfinite(values)]


def _scale_of(maps: Sequence[np.ndarray], *, diverging: bool = False) -> Scale:
    """One scale for ``maps``: sequential when every finite value is >= 0 (and the
    maps are not changes), diverging otherwise; ``top`` their largest magnitude."""
    values = _finite(maps)
    negative = bool(values.size) and float(values.min()) < 0
    top = float(np.abs(values).max()) if values.size else 1.0
    kind = "diverging" if diverging or negative else "sequential"
    return Scale(kind, top if top > 0 else 1.0)


def change_label(stage: str, first: str) -> str:
    """The row of what ``stage`` changed: ``"after - before"``."""
    return f"{stage} - {first}"


def _rows(item: PreviewItem, stages: Sequence[str], change: bool):
    """``(row label, maps (C', H, W), is_change)`` of one sample, in drawing order."""
    rows = [(stage, item.maps[stage], False) for stage in stages]
    if change:
        first = item.maps[stages[0]]
        with np.errstate(invalid="ignore", over="ignore"):
            rows += [(change_label(stage, stages[0]), item.maps[stage] - first, True)
                     for stage in stages[1:]]
    return rows


def _scales(rows, n_channels: int, scale: str) -> dict[tuple[int, int], Scale]:
    """The scale of every (row, channel) panel: shared per channel by the stage rows,
    and by the change rows, or each panel its own (``scale="panel"``)."""
    out = {}
    for ch in range(n_channels):
        for is_change in (False, True):
            group = [r for r, (_, _, c) in enumerate(rows) if c == is_change]
            if not group:
                continue
            if scale == "channel":
                shared = _scale_of([rows[r][1][ch] for r in group], diverging=is_change)
                out.update({(r, ch): shared for r in group})
            else:
                out.update({(r, ch): _scale_of([rows[r][1][ch]], diverging=is_change)
                            for r in group})
    return out


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Panel:
    """One drawn map: where (``box`` = x0, y0, x1, y1 of the image area) and what."""

    box: tuple[int, int, int, int]
    sample: str
    stage: str  # a stage, or a change row ("after - before")
    channel: int
    vmin: float
    vmax: float
    scale: float
    label: str  # the range text drawn under the panel
    zoom: int  # >1: enlarged by this factor; <0: every -zoom-th pixel
    kind: str = "diverging"  # or "sequential"


@dataclass(frozen=True)
class TextItem:
    xy: tuple[int, int]
    text: str
    scale: int = 1
    color: tuple[int, int, int] = INK


@dataclass(frozen=True)
class Layout:
    """Everything :func:`render_preview` draws, with pixel positions; ``maps`` holds
    each panel's values by ``(sample, stage, channel)``; ``bars`` the colour bars
    as ``(kind, box)``."""

    width: int
    height: int
    panels: list[Panel]
    texts: list[TextItem] = field(default_factory=list)
    bars: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    maps: dict = field(default_factory=dict, repr=False)


def _zoom(h: int, w: int) -> int:
    longest = max(h, w)
    if longest > MAX_PANEL:
        return -math.ceil(longest / MAX_PANEL)
    return max(1, math.ceil(MIN_PANEL / longest))


def _zoomed(h: int, w: int, zoom: int) -> tuple[int, int]:
    if zoom > 0:
        return h * zoom, w * zoom
    return -(-h // -zoom), -(-w // -zoom)


def _range_label(m: np.ndarray) -> tuple[float, float, str]:
    finite = m[np.isfinite(m)]
    if finite.size == 0:
        return math.nan, math.nan, "no finite values"
    lo, hi = float(finite.min()), float(finite.max())
    text = f"{format_number(lo)} .. {format_number(hi)}"
    if finite.size < m.size:
        text += " +NaN/Inf"
    return lo, hi, text


_LEGEND = {
    "channel": "scale: shared by the rows of each channel (compare colours across rows); "
               "the change rows share their own",
    "panel": "scale: every panel its own (compare patterns; the sizes are the numbers)",
}


def layout_preview(
    items: Sequence[PreviewItem], stages: Sequence[str], *, title: str, subtitle: str = "",
    scale: str = "channel", change: bool = True,
) -> Layout:
    """Place every panel and label; pure arithmetic (no drawing).

    Returns a :class:`Layout` whose ``panels`` are in drawing order: sample by
    sample, row by row (the stages, then the changes), channel by channel.
    """
    if not items:
        raise ValueError("nothing to preview: no samples")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    change = change and len(stages) > 1
    texts: list[TextItem] = []
    panels: list[Panel] = []
    maps: dict = {}
    y = MARGIN
    texts.append(TextItem((MARGIN, y), title, TITLE_SCALE))
    y += LINE * TITLE_SCALE + 2
    if subtitle:
        texts.append(TextItem((MARGIN, y), subtitle, 1, SOFT_INK))
        y += LINE
    y += 10
    top = y

    row_names = [*stages, *(change_label(s, stages[0]) for s in stages[1:] if change)]
    label_w = max(text_size(name)[0] for name in row_names) + 10
    x_left = MARGIN + label_w
    right = bottom = 0
    y0 = top
    kinds: set[str] = set()
    for item in items:
        h, w = next(iter(item.maps.values())).shape[-2:]
        zoom = _zoom(h, w)
        ph, pw = _zoomed(h, w, zoom)
        rows = _rows(item, stages, change)
        scales = _scales(rows, len(item.channels), scale)
        labels = {(r, i): _range_label(rows[r][1][i]) for r in range(len(rows))
                  for i in range(len(item.channels))}
        cell_w = max([pw] + [text_size(lab[2])[0] for lab in labels.values()])
        width = label_w + len(item.channels) * (cell_w + GAP) - GAP
        texts.append(TextItem((MARGIN, y0), _fit(item.label, max(width, 200))))
        head_y = y0 + LINE + 4
        for i, ch in enumerate(item.channels):
            cx = x_left + i * (cell_w + GAP)
            texts.append(TextItem((cx, head_y), f"channel {ch}", 1, SOFT_INK))
        py = head_y + LINE + 2
        for r, (name, values, _) in enumerate(rows):
            texts.append(TextItem((MARGIN, py + (ph - LINE) // 2), name))
            for i, ch in enumerate(item.channels):
                cx = x_left + i * (cell_w + GAP)
                lo, hi, text = labels[(r, i)]
                s = scales[(r, i)]
                kinds.add(s.kind)
                panels.append(Panel((cx, py, cx + pw, py + ph), item.label, name, ch, lo, hi,
                                    s.top, text, zoom, s.kind))
                maps[(item.label, name, ch)] = values[i]
                texts.append(TextItem((cx, py + ph + 2), text, 1, SOFT_INK))
            py += ph + LINE + GAP
        right = max(right, MARGIN + width)
        bottom = max(bottom, py)
        y0 = py + BLOCK_GAP - GAP

    # the colour bars and the legend
    y = bottom + 6
    texts.append(TextItem((MARGIN, y), _LEGEND[scale]))
    y += LINE + 4
    bars = []
    legend_w = text_size(_LEGEND[scale])[0]
    for kind in ("sequential", "diverging"):
        if kind not in kinds:
            continue
        bar = (MARGIN, y, MARGIN + BAR_W, y + BAR_H)
        bars.append((kind, bar))
        ends = ("0", "max") if kind == "sequential" else ("-max|v|", "+max|v|")
        texts.append(TextItem((bar[0], bar[3] + 2), ends[0]))
        texts.append(TextItem((bar[2] - text_size(ends[1])[0], bar[3] + 2), ends[1]))
        if kind == "diverging":
            texts.append(TextItem(((bar[0] + bar[2]) // 2 - text_size("0")[0] // 2,
                                   bar[3] + 2), "0"))
        note = ("values >= 0: viridis, dark 0 to bright max" if kind == "sequential" else
                "with negative values, and every change: blue < 0 < red, white = 0")
        texts.append(TextItem((bar[2] + 16, bar[1]), note, 1, SOFT_INK))
        legend_w = max(legend_w, BAR_W + 16 + text_size(note)[0])
        y = bar[3] + 2 + LINE + 6
    under = "under each panel: its min .. max; grey = NaN"
    texts.append(TextItem((MARGIN, y), under, 1, SOFT_INK))
    width = max(right, MARGIN + legend_w, MARGIN + text_size(under)[0],
                MARGIN + text_size(title, TITLE_SCALE)[0],
                MARGIN + text_size(subtitle)[0] if subtitle else 0) + MARGIN
    height = y + LINE + MARGIN
    return Layout(width, height, panels, texts, bars, maps)


# --------------------------------------------------------------------------- drawing


def _panel_pixels(m: np.ndarray, panel: Panel) -> np.ndarray:
    rgb = _colors(m, panel.scale, panel.kind)
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
    items: Sequence[PreviewItem], stages: Sequence[str], *, title: str, subtitle: str = "",
    scale: str = "channel", change: bool = True,
):
    """The preview as a :class:`PIL.Image.Image` (RGB); see the module docstring."""
    from PIL import Image

    layout = layout_preview(items, stages, title=_latin1(title), subtitle=_latin1(subtitle),
                            scale=scale, change=change)
    canvas = np.empty((layout.height, layout.width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    for p in layout.panels:
        x0, y0, x1, y1 = p.box
        canvas[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = FRAME
        canvas[y0:y1, x0:x1] = _panel_pixels(layout.maps[(p.sample, p.stage, p.channel)], p)
    for kind, (bx0, by0, bx1, by1) in layout.bars:
        ramp = np.linspace(-1.0 if kind == "diverging" else 0.0, 1.0, bx1 - bx0)
        canvas[by0 - 1:by1 + 1, bx0 - 1:bx1 + 1] = FRAME
        canvas[by0:by1, bx0:bx1] = _colors(ramp, 1.0, kind)[None, :, :]
    for item in layout.texts:
        _draw_text(canvas, item)
    return Image.fromarray(canvas, "RGB")


def preview_png_bytes(image) -> bytes:
    """PNG bytes of a preview image."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- recording


def check_choice(name: str, values: Sequence[int] | None, limit: int) -> tuple[int, ...] | None:
    """``channels``/``samples`` of a preview: non-negative, distinct, at most ``limit``."""
    if values is None:
        return None
    values = tuple(values)
    problem = None
    if not values:
        problem = "needs at least one index"
    elif any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0
             for v in values):
        problem = f"{','.join(map(str, values))}: indices are integers >= 0"
    elif len(set(values)) < len(values):
        problem = f"{','.join(map(str, values))}: an index is listed twice"
    elif len(values) > limit:
        problem = f"{len(values)} indices; a preview draws at most {limit}"
    if problem is not None:
        raise ParameterError(f"preview_{name}={problem}", param=f"preview_{name}",
                             value=values, problem=problem)
    return tuple(int(v) for v in values)


class PreviewRecorder:
    """Collects the chosen samples of a run and makes the preview at the end.

    Pass it as the ``preview=`` of a :mod:`normcli.runs` run: the run calls
    :meth:`observe` with every input and result (from several threads, in any
    order: the input index puts the samples back in order) and :meth:`stage`
    with its other outputs.  Or call :meth:`add` with several results per input.

    ``channels`` and ``samples`` choose what is drawn (indices; samples are
    numbered over the inputs in order); ``scale`` is ``"channel"`` (a scale
    shared by the rows of each channel) or ``"panel"``; ``change`` adds the
    rows of what each stage changed.  Only the chosen channels of the samples
    that may be chosen are kept.
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
        channels: Sequence[int] | None = None,
        samples: Sequence[int] | None = None,
        scale: str = "channel",
        change: bool = True,
    ) -> None:
        if scale not in SCALES:
            raise ParameterError(f"preview_scale={scale!r} is not one of {', '.join(SCALES)}",
                                 param="preview_scale", value=scale)
        self.path, self.title, self.subtitle = path, title, subtitle
        self.stages = tuple(stages)
        self.channels_last, self.force = channels_last, force
        self.channels = check_choice("channels", channels, LIMIT_CHANNELS)
        self.samples = check_choice("samples", samples, LIMIT_SAMPLES)
        self.scale, self.change = scale, change
        self.size: tuple[int, int] | None = None  # (width, height) once staged
        self._wanted = self.samples if self.samples is not None else tuple(range(MAX_SAMPLES))
        self._counts: dict[int, int] = {}  # input index -> its number of samples
        self._kept: dict[int, dict[int, PreviewItem]] = {}  # input -> inner index -> sample
        self._lock = threading.Lock()

    def _offsets(self) -> dict[int, int]:
        """The first global sample number of every input whose predecessors are known."""
        out, offset, i = {}, 0, 0
        while i in self._counts:
            out[i] = offset
            offset += self._counts[i]
            i += 1
        return out

    @property
    def items(self) -> list[PreviewItem]:
        """The chosen samples, in the order asked for (default: input order)."""
        with self._lock:
            offsets = self._offsets()
            found = {offsets[i] + j: item for i, kept in self._kept.items() if i in offsets
                     for j, item in kept.items()}
        return [found[g] for g in self._wanted if g in found]

    def total_samples(self) -> int | None:
        """Samples seen in the inputs so far, when every input up to the last is known."""
        with self._lock:
            if not self._counts or len(self._offsets()) < max(self._counts) + 1:
                return None
            return sum(self._counts.values())

    def add(self, label: str, arrays: Mapping[str, np.ndarray], index: int | None = None) -> None:
        """Keep the chosen samples of ``arrays`` (stage name → array, all one shape);
        ``index``: the input's place in the run (default: after those added)."""
        first = np.asarray(next(iter(arrays.values())))
        shape = _as_chw(first, self.channels_last).shape
        count = sample_count(shape)
        with self._lock:
            rank = len(self._counts) if index is None else index
            self._counts[rank] = count
            offset = self._offsets().get(rank)
        # the global numbers of this input's samples start at its offset, when the inputs
        # before it are known, and at its index at least (each holds one sample or more)
        if offset is not None:
            inner = sorted(g - offset for g in self._wanted if 0 <= g - offset < count)
        else:
            inner = list(range(min(count, max(self._wanted) - rank + 1)))
        if self.channels is not None:
            _refuse_channels(label, self.channels, shape[-3])
        items = split_samples(label, arrays, channels_last=self.channels_last,
                              channels=self.channels, samples=inner) if inner else []
        with self._lock:
            self._kept[rank] = dict(zip(inner, items, strict=True))
            self._prune()

    def _prune(self) -> None:
        """Drop the samples that, now that their input's place is known, are not chosen."""
        offsets = self._offsets()
        for i, kept in self._kept.items():
            if i in offsets:
                for j in [j for j in kept if offsets[i] + j not in self._wanted]:
                    del kept[j]

    def observe(self, index: int, label: str, x: np.ndarray, y: np.ndarray) -> None:
        """The run's hook: input ``index`` (named ``label``) and its result."""
        self.add(label, {self.stages[0]: x, self.stages[1]: y}, index)

    def _check_samples(self) -> None:
        total = self.total_samples()
        missing = [g for g in (self.samples or ()) if total is not None and g >= total]
        if missing:
            problem = (f"sample {missing[0]} does not exist: the inputs hold {total} "
                       f"sample{'s' if total != 1 else ''} (0..{total - 1})")
            raise ParameterError(f"preview_samples={problem}", param="preview_samples",
                                 value=self.samples, problem=problem)

    def image(self):
        self._check_samples()
        return render_preview(self.items, self.stages, title=self.title, subtitle=self.subtitle,
                              scale=self.scale, change=self.change)

    def stage(self, staged) -> tuple[int, int]:
        """Stage the PNG in a ``StagedWrites``, to appear with the run's other outputs."""
        image = self.image()
        data = preview_png_bytes(image)
        with staged.open(self.path, force=self.force) as f:
            f.write(data)
        self.size = image.size
        return image.size
