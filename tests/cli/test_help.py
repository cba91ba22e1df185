"""Every command and every option of `fw` explains itself; `fw --version` answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import typer
from typer.testing import CliRunner

from framework.cli.main import app
from framework.resources import VERSION


def commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """``command`` and every command below it, with the words that run it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))


def test_every_command_option_and_argument_has_help() -> None:
    missing = [
        f"fw {' '.join(path)} {param.name}"
        for path, command in commands(typer.main.get_command(app))
        for param in command.params
        if not getattr(param, "help", None)
    ]
    undocumented = [
        f"fw {' '.join(path)}"
        for path, command in commands(typer.main.get_command(app))
        if path and not command.help
    ]
    assert missing == [] and undocumented == []


def test_help_shows_no_placeholder_for_flags() -> None:
    runner = CliRunner()
    for path, _ in commands(typer.main.get_command(app)):
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert shown.exit_code == 0, (path, shown.output)
        assert "<bool>" not in shown.output, (path, shown.output)
        assert "\\[" not in shown.output, (path, shown.output)  # markup escapes, shown raw


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "framework", "--version"], capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"fw {VERSION}\n", "")
