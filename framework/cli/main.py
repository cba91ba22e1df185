"""The ``fw`` command: one Typer app; each command group registers itself from its module."""

from __future__ import annotations

import typer

from framework.cli import (
    codegen_commands,
    dev_command,
    ops_commands,
    runtime_commands,
    serve_command,
)

app = typer.Typer(
    name="fw",
    help="fw: durable workflows for Python, from a file convention and code generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

codegen_commands.register(app)
dev_command.register(app)
runtime_commands.register(app)
serve_command.register(app)
ops_commands.register(app)


def main() -> None:
    """The console script ``fw``."""
    app()
