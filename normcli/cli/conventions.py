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


@click.command(short_help="The LRN and batch-norm conventions of the frameworks.")
@click.option("--json", "as_json", is_flag=True, help="Print the conventions as JSON.")
@click.option("--only", type=click.Choice(["lrn", "batchnorm"]), default=None,
              help="One of the two tables [default: both].")
def conventions(as_json: bool, only: str | None) -> None:
    """LRN: what n means, the window, how alpha is scaled, whether k is used within
    a channel, the defaults and the allowed ranges of every --convention of
    `normcli lrn`.  Batch norm: each framework's eps, the running variance it
    stores, what its momentum weighs and the names it stores them under.  Both
    from the same tables of data the kernels use.  --json prints {"lrn": [...],
    "batchnorm": [...]} (with --only, the one list)."""
    from normcli.render.conventions import conventions_data, conventions_table
    from normcli.render.porting import bn_conventions_data, bn_conventions_table

    tables = {"lrn": (conventions_data, conventions_table),
              "batchnorm": (bn_conventions_data, bn_conventions_table)}
    chosen = [only] if only else list(tables)
    if as_json:
        import json

        docs = {name: tables[name][0]() for name in chosen}
        click.echo(json.dumps(docs[only] if only else docs, indent=2))
        return
    from normcli.render import make_consoles

    out = make_consoles()[1]
    for i, name in enumerate(chosen):
        if i:
            out.print()
        out.print(tables[name][1]())
