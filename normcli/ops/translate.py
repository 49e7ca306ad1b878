"""LRN parameters from one framework's convention in another's, verified by running both.

An LRN is fixed by its window ``[i - lo, i + hi]``, the effective ``alpha'``
(alpha after the convention's division), the ``k`` the denominator uses and
``beta``.  :func:`translate_lrn` finds every ``(n, k, alpha, beta)`` of the
target convention with the same four (``seed`` n=4 and n=5 are one window;
``pytorch`` n=5 has ``alpha`` 5 times ``seed``'s), or says why none exists:

* an even window (PyTorch puts the extra channel before ``i``, ONNX and cuDNN
  after it) that a convention cannot place: ``seed``, ``caffe`` (odd sizes)
  and ``tensorflow`` (a radius) only have symmetric windows;
* cuDNN's limits (``n <= 16``, ``k >= 1e-5``, ``beta >= 0.01``);
* Caffe's WITHIN_CHANNEL, which ignores ``k`` and uses 1;
* no within-channel LRN at all (pytorch, onnx, tensorflow).

Then it gives the closest parameters and their largest relative error on
random data.  Every translation, exact or not, is checked by running both
through :func:`normcli.ops.lrn.lrn` on that data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from normcli.errors import ParameterError
from normcli.ops.conventions import CONVENTIONS, LRNParams, get_convention, resolve_lrn

__all__ = ["LRNForm", "Translation", "TranslateResult", "translate_lrn", "translate_params",
           "exact_forms", "max_rel_err", "EXACT_RTOL"]

#: Largest relative error (float64, random data) of an exact translation: the
#: two differ only by ``alpha * n / n`` rounding.
EXACT_RTOL = 1e-12


@dataclass(frozen=True)
class LRNForm:
    """One way to write an LRN: a convention, a mode and its ``n, k, alpha, beta``."""

    convention: str
    mode: str
    n: int
    k: float
    alpha: float
    beta: float

    @classmethod
    def of(cls, p: LRNParams) -> LRNForm:
        return cls(p.convention.name, p.mode, p.n, p.k, p.alpha, p.beta)

    def params(self) -> LRNParams:
        return resolve_lrn(convention=self.convention, mode=self.mode, n=self.n, k=self.k,
                           alpha=self.alpha, beta=self.beta)

    def to_dict(self) -> dict[str, object]:
        return {"convention": self.convention, "mode": self.mode, "n": self.n,
                "k": self.k, "alpha": self.alpha, "beta": self.beta}

    def text(self) -> str:
        """``pytorch n=5 k=1 alpha=0.0005 beta=0.75``."""
        return (f"{self.convention} n={self.n} k={self.k:.7g} alpha={self.alpha:.7g} "
                f"beta={self.beta:.7g}")


@dataclass(frozen=True)
class Translation:
    """The source LRN in one target convention.

    ``forms`` are the exact equivalents (empty when there is none, then
    ``reason`` says why and ``closest`` is the nearest form, or ``None`` when
    the target has no such LRN at all); ``max_rel_err`` is the largest
    relative error of ``forms[0]`` (or of ``closest``) against the source on
    random data, from running both.
    """

    convention: str
    forms: tuple[LRNForm, ...]
    reason: str | None
    closest: LRNForm | None
    max_rel_err: float | None

    @property
    def exact(self) -> bool:
        return bool(self.forms)

    def to_dict(self) -> dict[str, object]:
        return {
            "convention": self.convention,
            "exact": self.exact,
            "forms": [f.to_dict() for f in self.forms],
            "reason": self.reason,
            "closest": None if self.closest is None else self.closest.to_dict(),
            "max_rel_err": self.max_rel_err,
        }


@dataclass(frozen=True)
class TranslateResult:
    """:func:`translate_lrn`'s answer: the source and one :class:`Translation` per target."""

    source: LRNForm
    lo: int
    hi: int
    alpha_eff: float
    k_eff: float
    translations: tuple[Translation, ...]

    def to_dict(self) -> dict[str, object]:
        """The JSON of ``normcli translate --json``."""
        return {
            "from": self.source.to_dict(),
            "window": [-self.lo, self.hi],
            "alpha_eff": self.alpha_eff,
            "k_eff": self.k_eff,
            "translations": [t.to_dict() for t in self.translations],
        }


def translate_lrn(
    from_convention: str,
    *,
    mode: str = "inter",
    n: int | None = None,
    k: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    to: str = "all",
    seed: int = 0,
) -> TranslateResult:
    """The LRN of ``from_convention`` with these parameters, in ``to`` (a name or ``"all"``).

    Parameters left out take the source convention's defaults, as in
    :func:`normcli.ops.lrn.lrn`.  Raises
    :class:`~normcli.errors.ParameterError` for invalid source parameters or
    an unknown target.

    >>> r = translate_lrn("pytorch", n=4, alpha=1e-4, to="onnx")
    >>> t = r.translations[0]
    >>> t.exact, t.closest.n, t.reason
    (False, 5, 'the window c-2..c+1 has its extra channel before i; onnx puts it after i')
    >>> translate_lrn("seed", n=4, alpha=1e-4, to="pytorch").translations[0].forms[0].text()
    'pytorch n=5 k=2 alpha=0.0005 beta=0.75'
    """
    source = resolve_lrn(convention=from_convention, mode=mode, n=n, k=k, alpha=alpha,
                         beta=beta)
    return translate_params(source, to=to, seed=seed)


def translate_params(source: LRNParams, *, to: str = "all", seed: int = 0) -> TranslateResult:
    """:func:`translate_lrn` of settings already resolved."""
    if isinstance(to, str) and to.strip().lower() == "all":
        targets = list(CONVENTIONS)
    else:
        try:
            targets = [get_convention(to).name]
        except ParameterError as e:
            raise ParameterError(str(e).replace("convention=", "to=", 1), param="to",
                                 value=to) from None
    data = _random_data(source, seed)  # (bounded: raises for windows too wide)
    ref = _run(data, source)
    out = []
    for name in targets:
        out.append(_translate_one(source, CONVENTIONS[name].name, data, ref))
    return TranslateResult(LRNForm.of(source), source.lo, source.hi, source.alpha_eff,
                           source.k_eff, tuple(out))


def exact_forms(source: LRNParams, target: str, *, max_half: int | None = None
                ) -> tuple[list[LRNForm], str | None]:
    """Every form of ``target`` that computes exactly what ``source`` does, or why none.

    Only the formula is compared (window, ``alpha'``, the ``k`` used, ``beta``);
    ``max_half`` (default: the source's own window) bounds the windows tried.
    """
    conv = get_convention(target)
    mode = source.mode
    if mode not in conv.modes:
        return [], (f"{conv.name} ({conv.framework}) has no within-channel LRN")
    lo, hi = source.lo, source.hi
    reach = max(lo, hi) if max_half is None else max_half
    forms: list[LRNForm] = []
    problems: list[str] = []
    for n in range(conv.n_min, 2 * reach + 3):
        if conv.window.bounds(n) != (lo, hi):
            continue
        k = source.k
        if mode == "intra" and conv.k_intra is not None:
            if source.k_eff != conv.k_intra:
                problems.append(
                    f"{conv.name}'s WITHIN_CHANNEL ignores k and uses {conv.k_intra:g}, "
                    f"so k={source.k_eff:g} cannot be expressed")
                continue
            k = conv.k_intra
        elif mode == "intra" and source.convention.k_intra is not None:
            k = source.k_eff  # from Caffe's within-channel form: its k is always 1
        else:
            k = source.k_eff
        alpha = source.alpha_eff * conv.alpha_divisor(mode, n)
        try:
            p = resolve_lrn(convention=conv.name, mode=mode, n=n, k=k, alpha=alpha,
                            beta=source.beta)
        except ParameterError as e:
            problems.append(str(e))
            continue
        forms.append(LRNForm.of(p))
    if forms:
        return forms, None
    if problems:
        return [], problems[0]
    return [], _placement(conv, lo, hi)


def _window_text(lo: int, hi: int) -> str:
    a = f"c-{lo}" if lo else "c"
    b = f"c+{hi}" if hi else "c"
    return a if lo == hi == 0 else f"{a}..{b}"


def _placement(conv, lo: int, hi: int) -> str:
    """Why ``conv`` has no window ``[i - lo, i + hi]``."""
    window = _window_text(lo, hi)
    rule = conv.window.rule
    if rule in ("centered", "radius") and lo != hi:
        why = {"centered": "its windows are centered on i" + (
            " (local_size must be odd)" if conv.n_odd else ""),
               "radius": "depth_radius r always gives the symmetric window c-r..c+r"}[rule]
        return (f"the even window {window} cannot be placed in {conv.name}: {why}")
    if rule == "before":
        return (f"the window {window} has its extra channel after i; {conv.name} puts it "
                "before i")
    if rule == "after":
        return (f"the window {window} has its extra channel before i; {conv.name} puts it "
                "after i")
    return f"{conv.name} has no window {window}"  # pragma: no cover - every rule is above


def _translate_one(source: LRNParams, target: str, data: np.ndarray,
                   ref: np.ndarray) -> Translation:
    forms, reason = exact_forms(source, target)
    if forms:
        err = max(max_rel_err(_run(data, f.params()), ref) for f in forms)
        if err > EXACT_RTOL:  # the table and the kernels disagree: never report it as exact
            raise AssertionError(f"{forms[0].text()} differs from {LRNForm.of(source).text()} "
                                 f"by {err:.3g} on random data")
        return Translation(target, tuple(forms), None, None, err)
    conv = get_convention(target)
    if source.mode not in conv.modes:
        return Translation(target, (), reason, None, None)
    best: tuple[float, LRNForm] | None = None
    for form in _candidates(source, conv):
        err = max_rel_err(_run(data, form.params()), ref)
        if best is None or err < best[0]:
            best = (err, form)
    if best is None:  # pragma: no cover - every convention has some valid window
        return Translation(target, (), reason, None, None)
    return Translation(target, (), reason, best[1], best[0])


def _candidates(source: LRNParams, conv) -> list[LRNForm]:
    """Nearby valid forms of ``conv``: windows within one channel of the source's on
    each side, alpha' kept or scaled with the window's size, k and beta clamped to
    the convention's ranges (and Caffe's within-channel k of 1 matched by scaling)."""
    mode, size = source.mode, source.size
    out: list[LRNForm] = []
    n_top = 2 * max(source.lo, source.hi) + 4
    if conv.n_max is not None:
        n_top = min(n_top, conv.n_max + 1)
    windows = {n: conv.window.bounds(n) for n in range(conv.n_min, n_top)
               if not (conv.n_odd and n % 2 == 0)}
    # the windows nearest the source's (within one channel on each side if there are
    # any; else, as for cuDNN's n <= 16, the nearest ones it has)
    distance = {n: max(abs(lo - source.lo), abs(hi - source.hi))
                for n, (lo, hi) in windows.items()}
    nearest = max(1, min(distance.values(), default=1))
    for n, (lo, hi) in windows.items():
        if distance[n] > nearest:
            continue
        k = max(source.k_eff, conv.k_min)
        beta = max(source.beta, conv.beta_min)
        alphas = {source.alpha_eff, source.alpha_eff * size / (lo + hi + 1)}
        ks = [k]
        if mode == "intra" and conv.k_intra is not None:
            ks = [conv.k_intra]
            if source.k_eff > 0:
                alphas |= {a / source.k_eff for a in list(alphas)}
        for alpha_eff in sorted(alphas):
            for kk in ks:
                if kk == 0 and alpha_eff == 0:
                    continue
                alpha = alpha_eff * conv.alpha_divisor(mode, n)
                try:
                    p = resolve_lrn(convention=conv.name, mode=mode, n=n, k=kk, alpha=alpha,
                                    beta=beta)
                except ParameterError:
                    continue
                out.append(LRNForm.of(p))
    return out


#: The most values of the random data translations are checked on (32 MiB of float64).
MAX_CHECK_VALUES = 2**22


def _random_data(p: LRNParams, seed: int) -> np.ndarray:
    """float64 data on which the alpha term matters: ``alpha' * sum`` about ``max(k, 1)``.

    ``(2, C, 6, 6)`` with ``C`` wide enough for the window and its borders
    (inter), or ``(2, 2, H, H)`` (intra).
    """
    reach = 2 * (p.lo + p.hi) + 5
    shape = (2, max(8, reach), 6, 6) if p.mode == "inter" else (2, 2, max(8, reach),
                                                                max(8, reach))
    if math.prod(shape) > MAX_CHECK_VALUES:  # (n=10**7 took all the memory, n=2**62 crashed)
        problem = (f"{p.n} gives a window of {p.size} "
                   f"{'channels' if p.mode == 'inter' else 'pixels a side'}, too wide to "
                   f"check on random data ({math.prod(shape)} values; at most "
                   f"{MAX_CHECK_VALUES})")
        raise ParameterError(f"n={problem}", param="n", value=p.n, problem=problem)
    rng = np.random.default_rng(seed)
    window = p.size if p.mode == "inter" else p.size * p.size
    scale = 1.0
    if p.alpha_eff > 0:
        scale = math.sqrt(max(p.k_eff, 1.0) / (p.alpha_eff * window))
    return rng.normal(size=shape) * scale


def _run(x: np.ndarray, p: LRNParams) -> np.ndarray:
    from normcli.ops.lrn import lrn

    return lrn(x, params=p)


def max_rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max |actual - expected| / |expected|`` (0 where both are 0, inf where only
    ``expected`` is), in float64."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    if a.size == 0:
        return 0.0
    diff = np.subtract(a, e)
    np.abs(diff, out=diff)
    mag = np.abs(e)
    zero = mag == 0
    if np.any(zero):
        if np.any(diff[zero] > 0):
            return math.inf
        mag[zero] = 1.0  # diff is 0 there
    np.divide(diff, mag, out=diff)
    return float(diff.max())
