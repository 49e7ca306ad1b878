"""The README says what the code does: its conventions table and its command reference."""

from __future__ import annotations

import re
from pathlib import Path

import click

from normcli.cli.main import COMMANDS, cli
from normcli.render.conventions import conventions_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> dict[str, click.Command]:
    """Every command and subcommand, by its full name (``explain lrn``)."""
    ctx = click.Context(cli)
    found = {}
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        found[name] = command
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                found[f"{name} {sub}"] = command.get_command(ctx, sub)
    return found


def _flags(command: click.Command) -> set[str]:
    return {opt for p in command.params if isinstance(p, click.Option)
            for opt in [*p.opts, *p.secondary_opts] if opt.startswith("--")}


def test_the_conventions_table_is_the_code_s():
    table = conventions_markdown()
    assert table in README, ("README's conventions table differs from the code's; it should "
                             "read:\n" + table)


def test_every_command_is_documented():
    for name in COMMANDS:
        assert f"normcli {name}" in README, name


def test_every_flag_is_documented_and_every_documented_flag_exists():
    commands = _commands()
    known = set().union(*(_flags(c) for c in commands.values())) | {"--help", "--version"}
    missing = []
    for name, command in commands.items():
        for param in command.params:
            names = [*param.opts, *getattr(param, "secondary_opts", [])]
            if not isinstance(param, click.Option) or "--help" in names:
                continue
            if not any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", README) for n in names):
                missing.append(f"{name} {'/'.join(names)}")
    assert not missing, f"flags the README does not mention: {missing}"
    documented = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", README))
    assert documented <= known, f"README mentions flags no command has: {documented - known}"
