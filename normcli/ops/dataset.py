"""Per-channel statistics of a dataset: moments of each image, merged.

The numbers passed to ``torchvision.transforms.Normalize`` are the mean and
standard deviation of every pixel of a dataset, per channel.  Images differ
in size, so each image is reduced on its own to a :class:`ChannelMoments`
(a few numbers per channel), and these are merged: every pixel weighs the
same, whatever its image's size, and memory does not grow with the number
of images.

Two kinds of moments, merged by two rules:

* integer images (8 and 16 bits: almost every photo) are reduced to **exact
  counts** of each stored value per channel, merged by integer addition; the
  statistics are computed once at the end from the counts with exact integer
  arithmetic (each value is a float32, an exact binary fraction), so they are
  the exact mean and variance of the values as read, rounded once to float64.
  The order of the merges cannot change a bit;
* float data (float TIFFs, ``.npy`` arrays) are reduced to the count, mean
  and M2 of the finite values per channel by two float64 passes, merged with
  Chan, Golub and LeVeque's update in the order given (a different order, or
  a tree of merges, gives the same to float64 rounding).

NaN and Inf are counted per channel and left out of the moments, min and max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChannelMoments", "DatasetStats", "channel_rows", "value_table"]


def value_table(key: str) -> np.ndarray:
    """The value each stored integer reads as, for a counts key: ``"uint8/255"``
    is ``float32(k) / float32(255)`` (an image read as [0, 1]), ``"uint8"`` is
    ``k`` (read raw, or an integer array)."""
    dtype, _, scale = key.partition("/")
    top = int(np.iinfo(dtype).max)
    k = np.arange(top + 1)
    if not scale:
        return k.astype(np.float64)
    return np.divide(k.astype(dtype), np.float32(scale), dtype=np.float32).astype(np.float64)


def channel_rows(x: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """An input as ``(C, values)``: ``(H, W)`` is one channel, ``(C, H, W)`` one
    sample, more leading axes are batch axes (``(..., H, W, C)`` channels last)."""
    x = np.asarray(x)
    if x.ndim < 2:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x.reshape(1, -1)
    axis = x.ndim - 1 if channels_last else x.ndim - 3
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


@dataclass
class ChannelMoments:
    """Moments of the values of some images, per channel (see the module docstring).

    Attributes
    ----------
    channels : int
    images : int
        How many images (inputs) were merged in.
    counts : dict of str to ndarray
        Exact counts ``(C, 2**bits)`` of each stored integer, by value table
        (:func:`value_table`).
    count, mean, m2 : ndarray
        ``(C,)``: the float data's finite values: how many, their mean and
        their sum of squared deviations from it.
    low, high : ndarray
        ``(C,)``: the float data's finite minimum and maximum (+inf, -inf when none).
    nan, posinf, neginf : ndarray
        ``(C,)`` int64: the float data's non-finite values.
    """

    channels: int
    images: int = 0
    counts: dict = field(default_factory=dict)
    count: np.ndarray = None  # type: ignore[assignment]
    mean: np.ndarray = None  # type: ignore[assignment]
    m2: np.ndarray = None  # type: ignore[assignment]
    low: np.ndarray = None  # type: ignore[assignment]
    high: np.ndarray = None  # type: ignore[assignment]
    nan: np.ndarray = None  # type: ignore[assignment]
    posinf: np.ndarray = None  # type: ignore[assignment]
    neginf: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        c = self.channels
        for name, fill, dtype in (("count", 0, np.int64), ("mean", 0.0, np.float64),
                                  ("m2", 0.0, np.float64), ("low", np.inf, np.float64),
                                  ("high", -np.inf, np.float64), ("nan", 0, np.int64),
                                  ("posinf", 0, np.int64), ("neginf", 0, np.int64)):
            if getattr(self, name) is None:
                setattr(self, name, np.full(c, fill, dtype))

    # ------------------------------------------------------------- one image

    @classmethod
    def from_counts(cls, counts: np.ndarray, key: str) -> ChannelMoments:
        """One image's exact counts ``(C, 2**bits)`` of its stored values."""
        counts = np.asarray(counts, np.int64)
        return cls(counts.shape[0], 1, {key: counts})

    @classmethod
    def from_values(cls, rows: np.ndarray, *, scaled_from: np.dtype | None = None
                    ) -> ChannelMoments:
        """One input's values ``(C, n)`` (see :func:`channel_rows`).

        Unsigned 8- and 16-bit integers are counted exactly (``scaled_from``:
        the values are those integers divided by their full scale, as images
        read as [0, 1] are; give the stored integers then); bool and other
        integers, and floats, go through float64 moments.
        """
        rows = np.asarray(rows)
        c = rows.shape[0]
        if rows.dtype in (np.uint8, np.uint16):
            top = int(np.iinfo(rows.dtype).max)
            counts = np.empty((c, top + 1), np.int64)
            for i in range(c):
                counts[i] = np.bincount(rows[i], minlength=top + 1)
            key = rows.dtype.name + (f"/{top}" if scaled_from is not None else "")
            return cls.from_counts(counts, key)
        out = cls(c, 1)
        for i in range(c):
            out._add_row(i, rows[i])
        return out

    def _add_row(self, i: int, row: np.ndarray) -> None:
        v = row.astype(np.float64, copy=False)
        finite = np.isfinite(v)
        if not finite.all():
            self.nan[i] = int(np.count_nonzero(np.isnan(v)))
            self.posinf[i] = int(np.count_nonzero(v == np.inf))
            self.neginf[i] = int(np.count_nonzero(v == -np.inf))
            v = v[finite]
        n = v.size
        self.count[i] = n
        if n == 0:
            return
        first = float(np.add.reduce(v)) / n
        d = v - first
        s1 = float(np.add.reduce(d))
        np.multiply(d, d, out=d)
        s2 = float(np.add.reduce(d))
        self.mean[i] = first + s1 / n
        self.m2[i] = max(s2 - s1 * s1 / n, 0.0)
        self.low[i] = float(v.min())
        self.high[i] = float(v.max())

    # ------------------------------------------------------------- merging

    def merge(self, other: ChannelMoments) -> ChannelMoments:
        """The moments of both (a new object; neither is changed)."""
        if other.channels != self.channels:
            raise ValueError(f"cannot merge moments of {self.channels} and {other.channels} "
                             "channels")
        counts = dict(self.counts)
        for key, c in other.counts.items():
            counts[key] = counts[key] + c if key in counts else c
        na, nb = self.count, other.count
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            wb = np.where(n > 0, nb / np.maximum(n, 1), 0.0)
            mean = self.mean + delta * wb
            m2 = self.m2 + other.m2 + delta * delta * np.where(
                n > 0, na * (nb / np.maximum(n, 1)), 0.0)
        mean = np.where(nb == 0, self.mean, np.where(na == 0, other.mean, mean))
        return ChannelMoments(self.channels, self.images + other.images, counts, n, mean, m2,
                              np.minimum(self.low, other.low), np.maximum(self.high, other.high),
                              self.nan + other.nan, self.posinf + other.posinf,
                              self.neginf + other.neginf)

    def absorb(self, other: ChannelMoments) -> ChannelMoments:
        """Merge ``other`` into this object, in place (the same result as
        :meth:`merge`); cheap for exact counts, the usual case: one addition."""
        if other.channels != self.channels:
            raise ValueError(f"cannot merge moments of {self.channels} and {other.channels} "
                             "channels")
        if other.count.any() or other.nan.any() or other.posinf.any() or other.neginf.any():
            merged = self.merge(other)
            self.__dict__.update(merged.__dict__)
            return self
        for key, c in other.counts.items():
            if key in self.counts:
                self.counts[key] += c
            else:
                self.counts[key] = c.copy()
        self.images += other.images
        return self

    # ------------------------------------------------------------- result

    def finish(self) -> DatasetStats:
        """The statistics of everything merged in."""
        c = self.channels
        count = self.count.copy()
        mean, m2 = self.mean.copy(), self.m2.copy()
        low, high = self.low.copy(), self.high.copy()
        for key in sorted(self.counts):
            table = value_table(key)
            for i in range(c):
                n_k, mean_k, m2_k, lo, hi = _exact_moments(self.counts[key][i], table)
                if n_k == 0:
                    continue
                na, n = count[i], count[i] + n_k
                if na == 0:
                    mean[i], m2[i] = mean_k, m2_k
                else:
                    delta = mean_k - mean[i]
                    mean[i] += delta * (n_k / n)
                    m2[i] += m2_k + delta * delta * (na * (n_k / n))
                count[i] = n
                low[i], high[i] = min(low[i], lo), max(high[i], hi)
        return DatasetStats(self.images, count, mean, m2, low, high, self.nan.copy(),
                            self.posinf + self.neginf)


def _exact_moments(counts: np.ndarray, table: np.ndarray
                   ) -> tuple[int, float, float, float, float]:
    """``(n, mean, m2, min, max)`` of values ``table[k]`` counted ``counts[k]``
    times, exactly: every value is a binary fraction ``p / q``; the sums are
    Python integers over a common denominator, rounded once at the end."""
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return 0, 0.0, 0.0, math.inf, -math.inf
    ratios = [float(table[k]).as_integer_ratio() for k in nonzero]
    denominator = max(q for _, q in ratios)
    hs = [int(counts[k]) for k in nonzero]
    ps = [p * (denominator // q) for p, q in ratios]
    n = sum(hs)
    s1 = sum(h * p for h, p in zip(hs, ps, strict=True))
    s2 = sum(h * p * p for h, p in zip(hs, ps, strict=True))
    # mean = s1 / (n D); M2 = sum h (v - mean)^2 = (n s2 - s1^2) / (n D^2)
    from fractions import Fraction

    mean = Fraction(s1, n * denominator)
    m2 = Fraction(n * s2 - s1 * s1, n * denominator * denominator)
    return n, float(mean), float(m2), float(table[nonzero[0]]), float(table[nonzero[-1]])


@dataclass(frozen=True)
class DatasetStats:
    """Per-channel statistics of a dataset (:meth:`ChannelMoments.finish`).

    ``count`` (finite values), ``mean``, ``var`` (biased), ``var_unbiased``,
    ``std``, ``std_unbiased``, ``min``, ``max``, ``nan`` and ``inf`` counts are
    ``(C,)`` arrays; ``images`` counts the inputs.
    """

    images: int
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    nan: np.ndarray
    inf: np.ndarray
    mode: str = ""  # the first input's image mode ("RGB", "L", "CMYK", ...), "" for arrays

    def channel_names(self) -> list[str]:
        """``R, G, B`` for RGB images, ``gray``, ``C, M, Y, K``; indices otherwise."""
        base = self.mode.split(";")[0]
        named = {"RGB": "RGB", "RGBA": "RGB", "P": "RGB", "PA": "RGB", "YCbCr": "RGB",
                 "CMYK": "CMYK", "L": "L", "LA": "L", "1": "L", "I": "L", "F": "L"}
        names = named.get(base) if self.mode else None
        if base.startswith("I;16"):
            names = "L"
        if names is not None and len(names) == self.channels:
            return ["gray"] if names == "L" else list(names)
        if names is not None and len(names) + 1 == self.channels:  # alpha read as a channel
            return [*(["gray"] if names == "L" else list(names)), "alpha"]
        return [str(i) for i in range(self.channels)]

    @property
    def channels(self) -> int:
        return int(self.count.shape[0])

    @property
    def var(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.m2 / np.maximum(self.count, 1), np.nan)

    @property
    def var_unbiased(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), np.nan)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    @property
    def std_unbiased(self) -> np.ndarray:
        return np.sqrt(self.var_unbiased)

    def batch_stats(self):
        """As :class:`normcli.ops.moments.BatchStats` per channel (what
        ``batchnorm --stats`` applies)."""
        from normcli.ops.moments import BatchStats

        count = int(self.count.min()) if self.count.size else 0
        return BatchStats(self.mean.copy(), self.var.copy(), count, "channel")

    def to_dict(self) -> dict:
        """The arrays of a ``--save-stats`` file: those of
        :meth:`BatchStats.to_dict` (``mean``, ``var``, ``var_unbiased``,
        ``count``, ``per="channel"``), and ``std``, ``std_unbiased``, ``min``,
        ``max``, ``images``, ``pixels`` (the finite values per channel)."""
        doc = self.batch_stats().to_dict()
        doc.update({"var_unbiased": self.var_unbiased, "std": self.std,
                    "std_unbiased": self.std_unbiased, "min": self.min, "max": self.max,
                    "images": np.asarray(self.images, np.int64),
                    "pixels": self.count.astype(np.int64)})
        return doc
