"""The LRN conventions of the major frameworks, as one table of data.

Frameworks disagree on what ``n`` means, where the extra element of an even
window goes, whether ``alpha`` is divided by the window size, and whether the
within-channel form uses ``k``.  Each :class:`Convention` records those facts;
the kernels in :mod:`normcli.ops.lrn`, the command line's ``--help``, the
``conventions`` command and the error messages all read this table.

For a window parameter ``n`` the window around index ``i`` is
``[i - lo, i + hi]`` (clipped at the borders, which equals zero padding), with
``lo`` and ``hi`` given by the convention's :class:`Window` rule:

======================  ======================  =====================
rule                    lo                      hi
======================  ======================  =====================
``centered``            ``n // 2``              ``n // 2``
``before``              ``n // 2``              ``(n - 1) // 2``
``after``               ``(n - 1) // 2``        ``n - 1 - lo``
``radius``              ``n``                   ``n``
======================  ======================  =====================
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

from normcli.checks import is_bool
from normcli.errors import ParameterError

__all__ = [
    "Convention", "Window", "CONVENTIONS", "get_convention", "LRNParams", "resolve_lrn",
    "lrn_params",
]


@dataclass(frozen=True)
class Window:
    """How a window parameter ``n`` becomes the offsets ``lo`` and ``hi``."""

    rule: str
    formula: str  # for people: the window in terms of i and n
    math: str = ""  # the same in typeset form (floor and ceiling brackets), for the docs

    def bounds(self, n: int) -> tuple[int, int]:
        """Return ``(lo, hi)``: the window is ``[i - lo, i + hi]``.

        >>> WINDOWS["before"].bounds(4), WINDOWS["after"].bounds(4)
        ((2, 1), (1, 2))
        """
        if self.rule == "centered":
            return n // 2, n // 2
        if self.rule == "before":
            return n // 2, (n - 1) // 2
        if self.rule == "after":
            lo = (n - 1) // 2
            return lo, n - 1 - lo
        if self.rule == "radius":
            return n, n
        raise AssertionError(f"unknown window rule {self.rule!r}")


WINDOWS = {
    "centered": Window("centered", "i-n//2 .. i+n//2", "i−⌊n/2⌋ .. i+⌊n/2⌋"),
    "before": Window("before", "i-n//2 .. i+(n-1)//2", "i−⌊n/2⌋ .. i+⌊(n−1)/2⌋"),
    "after": Window("after", "i-(n-1)//2 .. i+n//2", "i−⌊(n−1)/2⌋ .. i+⌈(n−1)/2⌉"),
    "radius": Window("radius", "i-n .. i+n", "i−n .. i+n"),
}


@dataclass(frozen=True)
class Convention:
    """One framework's LRN, as data.

    ``alpha_div_inter`` / ``alpha_div_intra`` say what ``alpha`` is divided by
    (``"1"``, ``"n"`` or ``"n^2"``); ``alpha_div_intra`` is ``None`` when the
    framework has no within-channel LRN.  ``k_intra`` is ``None`` when the
    within-channel form uses ``k`` and a number when it ignores ``k`` and uses
    that number instead (Caffe's 1).
    """

    name: str
    framework: str
    n_means: str
    window: Window
    alpha_div_inter: str
    alpha_div_intra: str | None
    k_intra: float | None
    default_n: int
    default_k: float
    default_alpha: float
    default_beta: float
    n_min: int = 1
    n_max: int | None = None
    n_odd: bool = False
    k_min: float = 0.0
    beta_min: float = 0.0
    note: str = ""

    @property
    def has_intra(self) -> bool:
        return self.alpha_div_intra is not None

    @property
    def modes(self) -> tuple[str, ...]:
        return ("inter", "intra") if self.has_intra else ("inter",)

    def alpha_divisor(self, mode: str, n: int) -> int:
        """The number ``alpha`` is divided by in ``mode`` for window parameter ``n``."""
        div = self.alpha_div_inter if mode == "inter" else self.alpha_div_intra
        return {"1": 1, "n": n, "n^2": n * n}[div]

    def restrictions(self) -> str:
        """The valid ranges, in words, for help and error messages."""
        n = f"{self.n_min} <= n" + (f" <= {self.n_max}" if self.n_max else "")
        parts = [n + (", n odd" if self.n_odd else "")]
        parts.append(f"k >= {self.k_min:g}" if self.k_min else "k >= 0")
        parts.append("alpha >= 0")
        parts.append(f"beta >= {self.beta_min:g}" if self.beta_min else "beta >= 0")
        return ", ".join(parts)


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            name="seed",
            framework="the AlexNet paper / the seed tutorial",
            n_means="neighbourhood",
            window=WINDOWS["centered"],
            alpha_div_inter="1",
            alpha_div_intra="1",
            k_intra=None,
            default_n=5,
            default_k=2.0,
            default_alpha=1e-4,
            default_beta=0.75,
            note="n = 2 means channels i-1..i+1 (a 3x3 square within a channel)",
        ),
        Convention(
            name="pytorch",
            framework="PyTorch nn.LocalResponseNorm",
            n_means="window size",
            window=WINDOWS["before"],
            alpha_div_inter="n",
            alpha_div_intra=None,
            k_intra=None,
            default_n=5,
            default_k=1.0,
            default_alpha=1e-4,
            default_beta=0.75,
            note="an even window puts the extra channel before i",
        ),
        Convention(
            name="onnx",
            framework="ONNX operator LRN",
            n_means="window size",
            window=WINDOWS["after"],
            alpha_div_inter="n",
            alpha_div_intra=None,
            k_intra=None,
            default_n=5,
            default_k=1.0,
            default_alpha=1e-4,
            default_beta=0.75,
            note="an even window puts the extra channel after i",
        ),
        Convention(
            name="cudnn",
            framework="cuDNN cross-channel LRN / divisive normalization",
            n_means="window size",
            window=WINDOWS["after"],
            alpha_div_inter="n",
            alpha_div_intra="n^2",
            k_intra=None,
            default_n=5,
            default_k=2.0,
            default_alpha=1e-4,
            default_beta=0.75,
            n_max=16,
            k_min=1e-5,
            beta_min=0.01,
            note="the same window on each spatial axis within a channel",
        ),
        Convention(
            name="caffe",
            framework="Caffe LRN layer (ACROSS_CHANNELS / WITHIN_CHANNEL)",
            n_means="local_size",
            window=WINDOWS["centered"],
            alpha_div_inter="n",
            alpha_div_intra="n^2",
            k_intra=1.0,
            default_n=5,
            default_k=1.0,
            default_alpha=1.0,
            default_beta=0.75,
            n_odd=True,
            note="WITHIN_CHANNEL ignores k and uses 1",
        ),
        Convention(
            name="tensorflow",
            framework="TensorFlow tf.nn.local_response_normalization",
            n_means="depth_radius",
            window=WINDOWS["radius"],
            alpha_div_inter="1",
            alpha_div_intra=None,
            k_intra=None,
            default_n=5,
            default_k=1.0,
            default_alpha=1.0,
            default_beta=0.5,
            n_min=0,
            note="n is the radius r: the window is 2r+1 channels",
        ),
    )
}


#: Other names people use for a convention, accepted by :func:`get_convention`.
CONVENTION_ALIASES = {"torch": "pytorch", "tf": "tensorflow", "cuda": "cudnn", "alexnet": "seed"}


def get_convention(name: str) -> Convention:
    """Look up a convention by name, case-insensitively, with an error that lists
    the valid names.

    >>> get_convention("PyTorch").name, get_convention("TF").name
    ('pytorch', 'tensorflow')
    """
    key = name.strip().lower() if isinstance(name, str) else None
    try:
        return CONVENTIONS[CONVENTION_ALIASES.get(key, key)]
    except (KeyError, TypeError):
        raise ParameterError(
            f"convention={name!r} is not known; use one of {', '.join(CONVENTIONS)}",
            param="convention", value=name,
        ) from None


@dataclass(frozen=True)
class LRNParams:
    """Fully resolved LRN settings: what the kernel computes, and how to say it.

    ``alpha_eff`` is alpha after the convention's division, ``k_eff`` the k the
    denominator uses (Caffe's within-channel 1), and ``lo``/``hi`` the window
    offsets on each axis it slides along.
    """

    convention: Convention
    mode: str
    n: int
    k: float
    alpha: float
    beta: float
    lo: int
    hi: int
    alpha_eff: float
    k_eff: float

    @property
    def size(self) -> int:
        """Number of positions along one axis of the window."""
        return self.lo + self.hi + 1

    def window_text(self) -> str:
        """The window in words: ``c-2..c+2`` or ``3x3 square (y-1..y+1, x-1..x+1)``."""

        def span(v: str) -> str:
            a = f"{v}-{self.lo}" if self.lo else v
            b = f"{v}+{self.hi}" if self.hi else v
            return a if a == b else f"{a}..{b}"

        if self.mode == "inter":
            return span("c")
        return f"{self.size}x{self.size} square ({span('y')}, {span('x')})"

    def alpha_text(self) -> str:
        div = self.convention.alpha_divisor(self.mode, self.n)
        return f"alpha/{div}" if div != 1 else "alpha"

    def describe(self) -> str:
        """One line naming the normalization and its effective parameters."""
        mode = "inter-channel" if self.mode == "inter" else "intra-channel"
        k = f"k={self.k_eff:g}" + (" (k ignored)" if self.k_eff != self.k else "")
        return (
            f"LRN {mode}, {self.convention.name} convention: window {self.window_text()}, "
            f"n={self.n}, {k}, {self.alpha_text()}={self.alpha_eff:g}, beta={self.beta:g}"
        )


def resolve_lrn(
    *,
    mode: str = "inter",
    convention: str = "seed",
    n: int | None = None,
    k: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
) -> LRNParams:
    """Validate LRN settings against the convention and resolve its defaults.

    Raises :class:`~normcli.errors.ParameterError` (a ``ValueError``) naming
    the parameter, the value and what is allowed.

    >>> p = resolve_lrn(convention="pytorch", n=4)
    >>> (p.lo, p.hi, p.alpha_eff)
    (2, 1, 2.5e-05)
    >>> resolve_lrn(mode="intra", convention="onnx")
    Traceback (most recent call last):
    ...
    normcli.errors.ParameterError: mode='intra' is not available in the onnx convention \
(ONNX operator LRN has no within-channel LRN); conventions with an intra-channel form: seed, \
cudnn, caffe
    """
    conv = get_convention(convention)
    if not isinstance(mode, str) or mode not in ("inter", "intra"):
        raise ParameterError(f"mode={mode!r} is not known; use 'inter' or 'intra'",
                             param="mode", value=mode)
    if not conv.has_intra and mode == "intra":
        with_intra = ", ".join(c.name for c in CONVENTIONS.values() if c.has_intra)
        raise ParameterError(
            f"mode='intra' is not available in the {conv.name} convention ({conv.framework} "
            f"has no within-channel LRN); conventions with an intra-channel form: {with_intra}",
            param="mode", value=mode,
        )
    n = conv.default_n if n is None else n
    k = conv.default_k if k is None else k
    alpha = conv.default_alpha if alpha is None else alpha
    beta = conv.default_beta if beta is None else beta

    if not _is_integral(n):
        raise ParameterError(f"n={n!r} must be an integer ({conv.name}: {conv.restrictions()})",
                             param="n", value=n)
    n = int(n)
    allowed = f"{conv.name} allows {conv.restrictions()}"
    if n > N_LIMIT:  # (the frameworks' own limit: a window's size is a 64-bit integer)
        raise ParameterError(f"n={_short(n)} is beyond a 64-bit integer (at most {N_LIMIT}); "
                             f"{allowed}", param="n", value=n)
    if n < conv.n_min or (conv.n_max is not None and n > conv.n_max):
        raise ParameterError(f"n={_short(n)} is out of range; {allowed}", param="n", value=n)
    if conv.n_odd and n % 2 == 0:
        raise ParameterError(f"n={n} must be odd in the {conv.name} convention; {allowed}",
                             param="n", value=n)
    for name, value, lowest in (("k", k, conv.k_min), ("alpha", alpha, 0.0),
                                ("beta", beta, conv.beta_min)):
        try:
            if isinstance(value, (str, bytes)) or is_bool(value):  # ("3", True: no numbers)
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name}={value!r} must be a number; {allowed}",
                                 param=name, value=value) from None
        if not math.isfinite(number):
            raise ParameterError(f"{name}={number} must be finite; {allowed}",
                                 param=name, value=value)
        if number < lowest:
            raise ParameterError(f"{name}={number:g} is out of range; {allowed}",
                                 param=name, value=value)
    k, alpha, beta = float(k), float(alpha), float(beta)
    k_eff = k if mode == "inter" or conv.k_intra is None else conv.k_intra
    if k_eff == 0 and alpha == 0:
        raise ParameterError(
            "k=0 with alpha=0 makes every denominator 0; give k > 0 or alpha > 0",
            param="k", value=k,
        )
    lo, hi = conv.window.bounds(n)
    return LRNParams(
        convention=conv,
        mode=mode,
        n=n,
        k=k,
        alpha=alpha,
        beta=beta,
        lo=lo,
        hi=hi,
        alpha_eff=alpha / conv.alpha_divisor(mode, n),
        k_eff=k_eff,
    )


#: The largest window parameter: 2**63 - 1, a 64-bit integer's (the frameworks'
#: window sizes are C integers; wider than the data, a window is the whole axis).
N_LIMIT = (1 << 63) - 1


def _short(n: int) -> str:
    """``n`` in full, or its number of digits when it is long."""
    if n.bit_length() <= 256:
        return str(n)
    return f"{'-' if n < 0 else ''}(a number of about {int(n.bit_length() * 0.30103) + 1} digits)"


def _is_integral(value: object) -> bool:
    """An int, a numpy integer, or an integral float such as 5.0 (not bool, not str)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if isinstance(value, numbers.Integral):
        return True  # however large: the range check says what is wrong with it
    return math.isfinite(value) and float(value).is_integer()


def lrn_params(params: LRNParams | None, **given: object) -> LRNParams:
    """``params`` if given (the other settings left out), else :func:`resolve_lrn`
    of the settings: how every function that takes both forms reads them."""
    if params is None:
        key = (given.get("mode", "inter"), given.get("convention", "seed"), given.get("n"),
               given.get("k"), given.get("alpha"), given.get("beta"))
        try:
            hash(key)
        except TypeError:  # an array or a list: checked afresh, never cached
            return resolve_lrn(**given)
        return _resolve_cached(*key)
    if not isinstance(params, LRNParams):
        raise ParameterError(f"params must be an LRNParams from resolve_lrn, not "
                             f"{type(params).__name__}", param="params", value=params)
    own = {"mode": params.mode, "convention": params.convention.name}
    defaults = {"mode": "inter", "convention": "seed"}
    # (a setting equal to its default cannot be told from one left out)
    also = [name for name, value in given.items() if value is not None and not (
        isinstance(value, str) and value in (defaults.get(name), own.get(name)))]
    if also:
        raise ParameterError(f"give params or {', '.join(also)}, not both", param="params",
                             value=params)
    return params


@functools.lru_cache(maxsize=256, typed=True)
def _resolve_cached(mode, convention, n, k, alpha, beta) -> LRNParams:
    """:func:`resolve_lrn` of hashable settings, remembered: a call on a small
    input would otherwise spend much of its time checking the same settings.
    ``typed``: ``5`` and ``5.0`` (or ``True``) are checked separately, as they
    may be judged differently; a refusal raises and is not remembered."""
    return resolve_lrn(mode=mode, convention=convention, n=n, k=k, alpha=alpha, beta=beta)
