"""Tables for porting models: identify, translate, model layers, the BN conventions.

Each function returns a rich renderable for the caller to print (on stderr
or stdout as the command decides); the JSON twins are the results' own
``to_dict()`` (:class:`normcli.ops.identify.IdentifyResult`,
:class:`normcli.ops.translate.TranslateResult`,
:class:`normcli.files.models.ModelLayer`) and :func:`bn_conventions_data`.
User-supplied names (layer names from a model file) go through
:func:`rich.markup.escape` or plain :class:`~rich.text.Text`, with their control
characters shown as escapes (:func:`normcli.render.text.printable`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from normcli.errors import ParameterError
from normcli.render.text import printable

__all__ = ["identify_view", "translate_view", "layers_view", "layers_data",
           "bn_conventions_table", "bn_conventions_data", "all_conventions_view"]


def _num(value: float | None) -> str:
    """Seven significant digits (what the matches are rounded to), ``–`` for none."""
    return "–" if value is None else f"{value:.7g}"


def _err(value: float | None) -> str:
    if value is None:
        return "–"
    return "0" if value == 0 else f"{value:.2g}"


def _window(window: tuple[int, int] | None, mode: str | None) -> str:
    if window is None:
        return "–"
    lo, hi = window
    a = f"c-{lo}" if lo else "c"
    b = f"c+{hi}" if hi else "c"
    span = a if a == b else f"{a}..{b}"
    if mode == "intra":
        return f"{lo + hi + 1}x{lo + hi + 1} square"
    return span


def _lrn_table(matches, *, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False)
    for name, justify in (("group", "right"), ("mode", "left"), ("window", "left"),
                          ("convention", "left"), ("n", "right"), ("k", "right"),
                          ("alpha", "right"), ("beta", "right"), ("max rel err", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "convention")
    previous = None
    for m in matches:
        first = m.group != previous
        previous = m.group
        table.add_row(
            str(m.group) if first and m.group is not None else "",
            m.mode if first else "", _window(m.window, m.mode) if first else "",
            m.convention + (" *" if m.note else ""), str(m.n), _num(m.k), _num(m.alpha),
            _num(m.beta), _err(m.max_rel_err), end_section=False)
    return table


def _bn_table(matches, *, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False)
    for name, justify in (("per", "left"), ("statistics", "left"), ("eps", "right"),
                          ("default of", "left"), ("max rel err", "right")):
        table.add_column(name, justify=justify)
    for m in matches:
        table.add_row(m.per, m.statistics, "cannot tell" if m.eps is None else f"{m.eps:g}",
                      ", ".join(m.conventions) or "–", _err(m.max_rel_err))
    return table


def identify_view(result) -> RenderableType:
    """The matches of :func:`normcli.ops.identify.identify`, grouped by window, or the
    closest with where it differs; then the notes."""
    parts: list[RenderableType] = []
    lrn = [m for m in result.matches if m.normalization == "lrn"]
    bn = [m for m in result.matches if m.normalization == "batchnorm"]
    shape = "×".join(map(str, result.shape))
    layout = " (channels last)" if result.channels_last else ""
    if result.matches:
        groups = len({m.group for m in lrn})
        head = []
        if lrn:
            head.append(f"{groups} LRN window{'s' if groups != 1 else ''} "
                        f"({len(lrn)} form{'s' if len(lrn) != 1 else ''})")
        if bn:
            head.append(f"{len(bn)} batch norm{'s' if len(bn) != 1 else ''}")
        parts.append(Text(f"{' and '.join(head)} reproduce the output ({shape}{layout}) "
                          f"within {result.tolerance:.2g} relative"))
        if lrn:
            parts.append(_lrn_table(lrn))
            if any(m.note for m in lrn):
                notes = sorted({m.note for m in lrn if m.note})
                parts.append(Text("* " + "; ".join(notes)))
            parts.append(Text("forms in one group compute the same thing (the same window, "
                              "alpha after each convention's division, k and beta)"))
        if bn:
            parts.append(_bn_table(bn))
            fixed = [m for m in bn if m.statistics == "fixed" and m.note]
            if fixed:
                parts.append(Text(fixed[0].note))
    else:
        parts.append(Text(f"no normalization reproduces the output ({shape}{layout}) within "
                          f"{result.tolerance:.2g} relative", style="bold"))
        c = result.closest
        if c is not None:
            parts.append(Text(f"closest (max rel err {_err(c.max_rel_err)}):"))
            if c.normalization == "lrn":
                parts.append(_lrn_table([c]))
            else:
                parts.append(_bn_table([c]))
            if c.diagnosis:
                parts.append(Text(c.diagnosis))
    for note in result.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)


def translate_view(result) -> RenderableType:
    """:class:`~normcli.ops.translate.TranslateResult` as one row per target convention."""
    s = result.source
    lo, hi = result.lo, result.hi
    head = Text(f"{s.convention} {s.mode}-channel LRN n={s.n} k={s.k:g} alpha={s.alpha:g} "
                f"beta={s.beta:g}: window {_window((lo, hi), s.mode)}, "
                f"alpha'={result.alpha_eff:.7g}, k used={result.k_eff:g}")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, justify in (("to", "left"), ("", "left"), ("n", "right"), ("k", "right"),
                          ("alpha", "right"), ("beta", "right"), ("max rel err", "right"),
                          ("why not exact", "left")):
        table.add_column(name, justify=justify, overflow="fold",
                         ratio=1 if name == "why not exact" else None)
    for t in result.translations:
        if t.exact:
            for i, f in enumerate(t.forms):
                table.add_row(t.convention if i == 0 else "", "exact", str(f.n), _num(f.k),
                              _num(f.alpha), _num(f.beta), _err(t.max_rel_err), "")
        elif t.closest is not None:
            f = t.closest
            table.add_row(t.convention, Text("closest", style="yellow"), str(f.n), _num(f.k),
                          _num(f.alpha), _num(f.beta), _err(t.max_rel_err), escape(t.reason))
        else:
            table.add_row(t.convention, Text("none", style="red"), "–", "–", "–", "–", "–",
                          escape(t.reason or ""))
    foot = Text("max rel err: the largest relative difference from the source on random data "
                "(both run by normcli's kernels)", style="dim")
    return Group(head, table, foot)


def layers_view(layers: Sequence, *, source: str = "", equivalents: bool = True
                ) -> RenderableType:
    """Every LRN and batch-norm layer of a model; for LRN, its parameters in every
    convention (from :func:`normcli.ops.translate.translate_params`)."""
    from normcli.ops.translate import translate_params

    parts: list[RenderableType] = []
    if not layers:
        return Text(f"{printable(source)}: no LRN or batch-norm layer" if source else
                    "no LRN or batch-norm layer")
    table = Table(title=escape(printable(source)) or None, title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("layer", "op", "parameters", "notes"):
        table.add_column(name, overflow="fold", ratio=1 if name in ("parameters", "notes")
                         else None)
    for layer in layers:
        table.add_row(Text(printable(layer.name)), Text(layer.op), _layer_params(layer),
                      Text(printable("; ".join(layer.notes))))
    parts.append(table)
    if equivalents:
        for layer in layers:
            if layer.lrn is None:
                continue
            try:
                result = translate_params(layer.lrn)
            except ParameterError as e:  # (a window too wide to check)
                parts.append(Text.assemble(("\n" + printable(layer.name), "bold"),
                                           f" in every convention: not shown: n={e.problem}"))
                continue
            parts.append(Text.assemble(("\n" + printable(layer.name), "bold"),
                                       " in every convention:"))
            parts.append(translate_view(result))
    return Group(*parts)


def layers_data(layers: Sequence, *, source: str = "") -> dict[str, object]:
    """``normcli layers --json``: ``{"model", "layers": [...]}``, each LRN layer with its
    ``equivalents`` in every convention (a translate result's ``translations``)."""
    from normcli.ops.translate import translate_params

    out = []
    for layer in layers:
        d = layer.to_dict()
        if layer.lrn is not None:
            try:
                d["equivalents"] = translate_params(layer.lrn).to_dict()["translations"]
            except ParameterError as e:  # (a window too wide to check)
                d["equivalents"], d["equivalents_problem"] = None, f"n={e.problem}"
        out.append(_json_safe(d))
    return {"model": source, "layers": out}


def _json_safe(value: object) -> object:
    """``value`` with every NaN or infinity None (JSON's null): a model's attributes
    may hold them (``momentum: nan``), which JSON cannot."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _layer_params(layer) -> Text:
    if layer.lrn is not None:
        p = layer.lrn
        return Text(f"{p.convention.name} {p.mode}: n={p.n} k={p.k:g} alpha={p.alpha:g} "
                    f"beta={p.beta:g} (window {p.window_text()})")
    bn = layer.bn
    stats = ("stored statistics" if bn.has_stats else "statistics from the weights file") \
        if bn.statistics == "fixed" else "the batch's statistics"
    shape = f", {len(bn.mean)} channels" if bn.has_stats and bn.per == "channel" else ""
    return Text(f"per {bn.per}, eps={bn.eps:g}, {stats}{shape}")


# ------------------------------------------------------------------ BN conventions

_BN_TITLE = "Batch-norm conventions (normcli batchnorm --convention NAME)"
_BN_CAPTION = ("stored var: the variance the running statistics track (unbiased: Bessel's "
               "m/(m-1) over the m values of a statistic); momentum weighs the new batch "
               "or the old value, in the framework's own word.")


def bn_conventions_data() -> list[dict]:
    """Every BN convention as plain data (``normcli conventions --json``'s ``batchnorm``)."""
    from normcli.ops.bn_conventions import BN_CONVENTIONS

    return [{
        "name": c.name, "framework": c.framework, "eps": c.eps, "momentum": c.momentum,
        "momentum_name": c.momentum_name, "momentum_weights": c.momentum_weights,
        "stored_var": c.stored_var, "bessel": c.bessel or None, "storage": c.storage,
        "stored": [k for k in c.keys if k], "update": c.update, "initial": c.initial,
        "gamma_fixed": c.gamma_fixed, "note": c.note,
    } for c in BN_CONVENTIONS.values()]


_BN_WIDE = 120  # below this the conventions are drawn one after another


def _bn_rows():
    from normcli.ops.bn_conventions import BN_CONVENTIONS

    for c in BN_CONVENTIONS.values():
        default = "–" if c.momentum is None else f"{c.momentum:g}"
        weighs = "the new batch" if c.momentum_weights == "new" else "the old value"
        yield c.name, [
            ("eps", f"{c.eps:g}"),
            ("stored var", c.stored_var + (f" ({c.bessel})" if c.bessel else "")),
            ("momentum (default): weighs", f"{c.momentum_name} ({default}): {weighs}"),
            ("running update", c.update),
            ("stored as", ", ".join(k for k in c.keys if k)),
            ("note", "; ".join(x for x in (c.framework, c.note) if x)),
        ]


class BNConventionsView:
    """The BN conventions: one row each on a wide console, one block each on a narrow one."""

    def __rich_console__(self, console, options):
        rows = list(_bn_rows())
        if options.max_width >= _BN_WIDE:
            table = Table(title=_BN_TITLE, title_justify="left", caption=escape(_BN_CAPTION),
                          caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                          show_lines=True)
            table.add_column("convention", style="bold", no_wrap=True)
            for label, _ in rows[0][1]:
                table.add_column(label, justify="right" if label == "eps" else "left",
                                 overflow="fold", ratio=None if label == "eps" else 1)
            for name, fields in rows:
                table.add_row(name, *(escape(v) for _, v in fields))
            yield table
            return
        yield Text(_BN_TITLE)
        for name, fields in rows:
            table = Table(box=None, show_header=False, padding=(0, 1), show_edge=False)
            table.add_column(style="bold", no_wrap=True)
            table.add_column(overflow="fold")
            for label, value in fields:
                table.add_row(label, escape(value))
            yield Text("")
            yield Text(name, style="bold underline")
            yield table
        yield Text("")
        yield Text(_BN_CAPTION)


def bn_conventions_table() -> BNConventionsView:
    """The BN conventions side by side (see :class:`BNConventionsView`)."""
    return BNConventionsView()


def all_conventions_view() -> RenderableType:
    """What ``normcli conventions`` prints: the LRN table, then the BN table."""
    from normcli.render.conventions import conventions_table

    return Group(conventions_table(), Text(""), bn_conventions_table())
