"""The ``fw`` command: one Typer app; each command group registers itself from its module."""

from __future__ import annotations

import typer

from framework.cli import (
    codegen_commands,
    dev_command,
    ops_commands,
    runtime_commands,
    serve_command,
    workers_command,
)

app = typer.Typer(
    name="fw",
    help="fw: durable workflows for Python, from a file convention and code generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        from framework.resources import VERSION

        typer.echo(f"fw {VERSION}")
        raise typer.Exit(0)


@app.callback()
def options(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print fw's version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """fw: durable workflows for Python, from a file convention and code generation."""


codegen_commands.register(app)
dev_command.register(app)
runtime_commands.register(app)
serve_command.register(app)
ops_commands.register(app)
workers_command.register(app)


def main() -> None:
    """The console script ``fw``."""
    app()
