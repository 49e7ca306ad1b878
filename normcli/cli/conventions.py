"""``normcli conventions``: the LRN conventions of the major frameworks, as a table."""

from __future__ import annotations

import click


def conventions_text() -> str:
    """The conventions as a plain-text table for ``--help`` (from the same data)."""
    from normcli.ops.conventions import CONVENTIONS  # (only lrn's help needs the table)

    rows = [("name", "n means", "window", "alpha'", "k intra", "n k alpha beta")]
    for c in CONVENTIONS.values():
        alpha = "alpha/" + c.alpha_div_inter if c.alpha_div_inter != "1" else "alpha"
        if c.has_intra:
            intra = "alpha/" + c.alpha_div_intra if c.alpha_div_intra != "1" else "alpha"
            alpha += f" ({intra} intra)"
        k_intra = "-" if not c.has_intra else ("k" if c.k_intra is None else f"{c.k_intra:g}")
        defaults = f"{c.default_n} {c.default_k:g} {c.default_alpha:g} {c.default_beta:g}"
        rows.append((c.name, c.n_means, c.window.formula, alpha, k_intra, defaults))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    return "\b\n" + "\n".join(lines)


@click.command(short_help="The LRN conventions of the frameworks, side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print the conventions as JSON.")
def conventions(as_json: bool) -> None:
    """What n means, the window, how alpha is scaled, whether k is used within a
    channel, the defaults and the allowed ranges of every --convention of
    `normcli lrn` (from the same table of data the kernels use)."""
    from normcli.render.conventions import conventions_data, conventions_table

    if as_json:
        import json

        click.echo(json.dumps(conventions_data(), indent=2))
        return
    from normcli.render import make_consoles

    make_consoles()[1].print(conventions_table())
