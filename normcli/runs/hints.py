"""One-line hints about inputs that are probably read the wrong way.

normcli reads arrays channels-first, and a single input of ``batchnorm`` (or
``compare``) is a batch along its first axis.  Both are documented rules, and
both silently give nonsense on an array that was meant otherwise: an image
saved as ``(H, W, C)`` (``np.save('x.npy', np.asarray(Image.open(photo)))``)
read as ``H`` channels, or one photo taken as a batch of its three colour
channels.  A run keeps a :class:`Hints` and reports its :meth:`Hints.lines`;
the command prints them on stderr.  Nothing here changes what a run does.
"""

from __future__ import annotations

import threading

from normcli._gather import Gathered, record
from normcli.files import Source

__all__ = ["Hints", "layout_hint", "batch_hint"]

#: Sources whose array layout is the file's own (images are always read as (C, H, W)).
ARRAY_KINDS = ("npy", "npz", "stdin", "array")


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def layout_hint(label: str, shape: tuple[int, ...], channels_last: bool) -> str | None:
    """A hint when ``shape`` read as ``(..., C, H, W)`` looks like ``(..., H, W, C)``:
    a last axis of 1 to 4 (colour channels) after two long ones.

    >>> layout_hint("hwc.npy", (512, 512, 3), False)[:60]
    'hwc.npy has shape (512, 512, 3), read as 512 channels of 512'
    >>> layout_hint("x.npy", (16, 40, 40), False) is None
    True
    """
    if channels_last or len(shape) < 3:
        return None
    c, h, w = shape[-3:]
    if not (w <= 4 and c >= 8 and h >= 8):
        return None
    return (f"{label} has shape {tuple(shape)}, read as {c} channels of {h}×{w} "
            f"(channels first); if it is an image stored (H, W, C), pass --channels-last")


def batch_hint(label: str, shape: tuple[int, ...], channels_last: bool) -> str | None:
    """A hint when a single input is a batch along its first axis although it
    looks like one sample (at most 3 axes): its channels (or rows) become the
    samples.

    >>> batch_hint("photo.png", (3, 512, 512), False)
    'photo.png is the only input, so its first axis is the batch: its 3 channels are the \
samples (each of shape 512×512); give several inputs (or a directory) for a batch of them'
    >>> batch_hint("batch.npy", (8, 3, 32, 32), False) is None
    True
    """
    if len(shape) > 3 or len(shape) < 2:
        return None
    what = "channels" if len(shape) == 3 and not channels_last else "rows"
    return (f"{label} is the only input, so its first axis is the batch: its {shape[0]} "
            f"{what} are the samples (each of shape {_shape(shape[1:])}); give several "
            "inputs (or a directory) for a batch of them")


class Hints(Gathered):
    """The hints of one run, found from worker threads; the first input's of each kind.
    Worker copies on a cluster send theirs back (:mod:`normcli._gather`)."""

    def __init__(self, channels_last: bool) -> None:
        self.channels_last = channels_last
        self._found: dict[str, tuple[int, str]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _add(self, kind: str, i: int, text: str | None) -> None:
        if text is None:
            return
        if self.gather_token is not None:
            record(self, (kind, i, text))
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            if kind not in self._found or i < self._found[kind][0]:
                self._found[kind] = (i, text)

    def worker_state(self):
        return self.channels_last

    @classmethod
    def from_worker_state(cls, state) -> Hints:
        return cls(state)

    def absorb_gathered(self, items: list) -> None:
        for kind, i, text in items:
            self._add(kind, i, text)

    def layout(self, i: int, source: Source, shape: tuple[int, ...]) -> None:
        """Input ``i``'s array, as read."""
        if source.kind in ARRAY_KINDS:
            self._add("layout", i, layout_hint(source.label, shape, self.channels_last))

    def single_batch(self, source: Source, shape: tuple[int, ...]) -> None:
        """The only input of a batch normalization."""
        self._add("batch", 0, batch_hint(source.label, shape, self.channels_last))

    def lines(self) -> list[str]:
        """The hints, one line each (with how many other inputs look the same)."""
        out = []
        for kind, (_, text) in sorted(self._found.items()):
            more = self._counts[kind] - 1
            out.append(text + (f" ({more} more input{'s' if more > 1 else ''} like it)"
                               if more else ""))
        return out
