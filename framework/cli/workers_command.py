"""``fw workers``: the workers registered in the app's store, and whether each is alive."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from framework.cli.output import (
    AppOption,
    JsonOption,
    app_root,
    console,
    print_json,
    print_table,
    run,
)

if TYPE_CHECKING:
    from framework.runtime.liveness import WorkerStatus

STATE_STYLE = {"alive": "green", "stale": "yellow", "dead": "red"}


def register(app: typer.Typer) -> None:
    """Add ``fw workers`` to the ``fw`` CLI."""
    app.command("workers")(workers)


def workers(
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
    held: bool = typer.Option(
        False, "--held", help="List the ids of the instances each worker holds."
    ),
) -> None:
    """Workers registered in the store: alive, stale (alive but late to beat: stopped or
    starved) or dead (its process is gone), with the instances each holds."""
    root = app_root(app)

    async def main() -> list[WorkerStatus]:
        from framework.runtime.app import App
        from framework.runtime.liveness import worker_statuses

        return await worker_statuses(App.for_root(root))

    found = run(main)
    if as_json:
        print_json({"workers": [w.to_json() for w in found]})
        return
    if not found:
        console.print("no workers registered (start one with `fw worker`)")
        return
    show(found, held)


def show(found: list[WorkerStatus], held: bool) -> None:
    from framework.runtime.durations import format_relative

    now = time.time()
    table = Table()
    table.add_column("id", no_wrap=True)
    for column in ("state", "host", "pid", "code", "started", "heartbeat", "held"):
        table.add_column(column, no_wrap=True)
    for w in found:
        table.add_row(
            w.id,
            Text(w.state, style=STATE_STYLE[w.state]),
            w.host,
            str(w.pid),
            w.code_version,
            format_relative(w.started_at - now),
            format_relative(w.heartbeat_at - now),
            f"{w.held} of {w.concurrency}",
        )
    print_table(table)
    counts = {state: sum(w.state == state for w in found) for state in STATE_STYLE}
    console.print(", ".join(f"{n} {state}" for state, n in counts.items() if n))
    if held:
        for w in found:
            if w.instances:
                console.print(Text(f"{w.id} holds: {' '.join(w.instances)}"))
