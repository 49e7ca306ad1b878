"""``normcli conventions``: the LRN conventions of the major frameworks, as a table."""

from __future__ import annotations

import click


@click.command(short_help="The LRN conventions of the frameworks, side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print the conventions as JSON.")
def conventions(as_json: bool) -> None:
    """What n means, the window, how alpha is scaled, whether k is used within a
    channel, the defaults and the allowed ranges of every --convention of
    `normcli lrn` (from the same table of data the kernels use)."""
    from normcli.render.explain import conventions_data, conventions_table

    if as_json:
        import json

        click.echo(json.dumps(conventions_data(), indent=2))
        return
    from rich.console import Console

    Console().print(conventions_table())
