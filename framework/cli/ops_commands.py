"""Operations commands: ``fw migrate`` and ``fw doctor``.

Both find the store as workers do (``FW_DATABASE_URL``, else ``fw.toml [runtime] database``,
else the app's SQLite file); with ``FW_DATABASE_URL`` set they also work outside an app.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from framework.app_root import resolve_app_root
from framework.cli.output import (
    AppOption,
    JsonOption,
    console,
    fail,
    labelled,
    print_json,
    print_table,
    run,
)
from framework.errors import AppNotFoundError

if TYPE_CHECKING:
    from framework.store.base import ConcurrencyLimit
    from framework.store.diagnostics import Diagnosis

LAG_WARNING = 60.0
"""Seconds a runnable instance may wait unclaimed before ``fw doctor`` calls it lag."""


def register(app: typer.Typer) -> None:
    """Add ``fw migrate`` and ``fw doctor`` to the ``fw`` CLI."""
    app.command("migrate")(migrate)
    app.command("doctor")(doctor)


def migrate(app: Path | None = AppOption, as_json: bool = JsonOption) -> None:
    """Bring the store's schema to the version this fw writes (workers also do it on start)."""
    url = _database_url(app)

    async def main() -> tuple[int | None, int]:
        from framework.store import open_store
        from framework.store.diagnostics import diagnose

        before = (await diagnose(url, time.time())).schema_version
        store = open_store(url)
        await store.open()
        await store.close()
        after = (await diagnose(url, time.time())).schema_version
        assert after is not None
        return before, after

    before, after = run(main)
    shown = _display(url)
    if as_json:
        print_json({"database": shown, "from_version": before or 0, "version": after})
    elif before == after:
        console.print(f"{shown}: schema version {after}, up to date")
    else:
        console.print(f"{shown}: migrated the schema from version {before or 0} to {after}")


def doctor(app: Path | None = AppOption, as_json: bool = JsonOption) -> None:
    """Check the store: connectivity, schema version, lag of runnable instances, workers.

    Exits 1 when the store is unreachable or its schema is not the one this fw writes.
    """
    url = _database_url(app)
    stale_after = _lease(app)
    limits, unloaded = _concurrency_limits(app)

    async def main() -> Diagnosis:
        from framework.store.diagnostics import diagnose

        return await diagnose(url, time.time(), stale_after, limits)

    found = run(main)
    problems, warnings = _findings(found, "fw worker" + ("" if app is None else f" --app {app}"))
    if unloaded:
        warnings.insert(0, unloaded)
    if as_json:
        print_json({**found.as_json(), "problems": problems, "warnings": warnings})
    else:
        _show(found, problems, warnings)
    if problems:
        raise typer.Exit(1)


def _database_url(app: Path | None) -> str:
    from framework.errors import ConfigError
    from framework.runtime.config import DATABASE_ENV, database_url, load_config

    try:
        root = resolve_app_root(app)
    except AppNotFoundError as exc:
        if app is None and os.environ.get(DATABASE_ENV):
            return os.environ[DATABASE_ENV]
        fail(str(exc))
    try:
        return database_url(root, load_config(root))
    except ConfigError as exc:
        fail(str(exc))


def _lease(app: Path | None) -> float:
    """The app's lease (a worker whose heartbeat is that old is stale); 30 s outside an app."""
    from framework.errors import ConfigError
    from framework.runtime.config import load_config

    try:
        return load_config(resolve_app_root(app)).runtime.lease
    except (AppNotFoundError, ConfigError):
        return 30.0


def _concurrency_limits(app: Path | None) -> tuple[list[ConcurrencyLimit], str | None]:
    """The app's concurrency limits (none outside an app or before its first codegen), and
    why they could not be read: its generated package would not load (instances waiting for
    a slot then count as lag)."""
    from framework.errors import ConfigError
    from framework.runtime.app import App

    try:
        root = resolve_app_root(app)
    except AppNotFoundError:
        return [], None
    try:
        return [c.store_limit for c in App(root).concurrency_limits.values()], None
    except ConfigError:  # not generated yet (or fw.toml is wrong: _database_url said so)
        return [], None
    except Exception as exc:  # a broken app must not keep doctor from reporting the store
        return [], (
            f"the app's workflows could not be loaded ({type(exc).__name__}: {exc}); "
            "instances waiting for a slot of a concurrency limit are counted as lag"
        )


def _display(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url
    from framework.store.postgres_connection import PostgresSettings

    return PostgresSettings.from_url(url).display


def _findings(d: Diagnosis, worker_command: str = "fw worker") -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    if not d.reachable:
        problems.append(d.error or "the database cannot be reached")
        return problems, warnings
    if d.error:
        problems.append(d.error)
    if d.schema_version is not None and d.schema_version < d.latest_version:
        problems.append(
            f"schema version {d.schema_version} is behind this fw's {d.latest_version}: "
            "run `fw migrate` (or start a worker)"
        )
    elif d.schema_version is not None and d.schema_version > d.latest_version:
        problems.append(
            f"schema version {d.schema_version} is newer than this fw's {d.latest_version}: "
            "upgrade fw here"
        )
    live = d.live_workers()
    if d.runnable and d.oldest_runnable_age is not None and d.oldest_runnable_age > LAG_WARNING:
        who = "no worker runs" if not live else f"{len(live)} workers are busy"
        warnings.append(
            f"{d.runnable} runnable instances wait unclaimed, the oldest for "
            f"{d.oldest_runnable_age:.0f} s ({who}): start workers or raise their concurrency"
        )
    elif d.runnable and not _alive(d) and not any(h.alive for h in d.lease_holders):
        waits = "instance waits" if d.runnable == 1 else "instances wait"
        warnings.append(
            f"{d.runnable} runnable {waits} and no worker is alive: start one with "
            f"`{worker_command}`"
        )
    for w in d.workers:
        if w.state == "stale":
            warnings.append(
                f"worker {w.id} (pid {w.pid} on {w.host}) is stale: it holds its liveness lock "
                f"but last beat {w.heartbeat_age:.0f} s ago (stopped or starved of CPU); its "
                "instances stay with it"
            )
    if d.ids_indexed is False and d.schema_current:
        warnings.append(
            "instance ids are not indexed for search: a search of Studio or the API reads "
            "every instance. "
            + (
                "The SQLite that migrated the file lacked FTS5's trigram tokenizer (3.34 or "
                "later has it): a fw whose SQLite has it indexes them when it opens the store"
                if d.dialect == "sqlite"
                else "The extension pg_trgm could not be created: after CREATE EXTENSION "
                "pg_trgm (by a user that may), the next fw process to open the store indexes "
                "them"
            )
        )
    if d.expired_leases:
        warnings.append(
            f"{d.expired_leases} running instances have expired leases (their worker died or "
            "stalled); a worker reclaims them on its next claim"
        )
    if d.max_connections and d.connections and d.connections > 0.8 * d.max_connections:
        warnings.append(
            f"{d.connections} of max_connections={d.max_connections} are in use: see "
            "connection budgeting in docs/postgres.md"
        )
    return problems, warnings


def _show(d: Diagnosis, problems: list[str], warnings: list[str]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("database", d.database)
    table.add_row("reachable", f"yes ({d.server})" if d.reachable else "no")
    if d.schema_version is not None:
        state = "current" if d.schema_current else f"latest is {d.latest_version}"
        table.add_row("schema", f"version {d.schema_version} ({state})")
    if d.connections is not None:
        table.add_row("connections", f"{d.connections} of {d.max_connections}")
    if d.reachable and d.schema_version:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(d.counts.items())) or "none"
        table.add_row("instances", counts)
        oldest = d.oldest_runnable_age
        from framework.runtime.durations import format_duration

        age = "" if oldest is None else f", the oldest waited {format_duration(oldest)}"
        held_back = (
            f", {d.waiting_for_slots} waiting for a concurrency slot" if d.waiting_for_slots else ""
        )
        table.add_row("lag", f"{d.runnable} runnable unclaimed{age}{held_back}")
        table.add_row("workers", _worker_counts(d))
        for w in d.workers:
            table.add_row("", f"{w.id}: {w.state}, {w.held} held, pid {w.pid} on {w.host}")
        registered = {w.id for w in d.workers}
        holders = [h for h in d.lease_holders if h.id not in registered]
        for h in holders:
            state = "lease held" if h.alive else "lease expired"
            table.add_row("lease holder", f"{h.id}: {h.held} held, {state} (not registered)")
    print_table(table)
    for warning in warnings:
        console.print(labelled("warning:", "yellow", warning))
    for problem in problems:
        console.print(labelled("problem:", "red", problem))
    if not problems and not warnings:
        console.print(Text("ok", style="green"))


def _worker_counts(d: Diagnosis) -> str:
    by_state = {state: sum(w.state == state for w in d.workers) for state in ("stale", "dead")}
    others = ", ".join(f"{n} {state}" for state, n in by_state.items() if n)
    return f"{_alive(d)} alive" + (f" ({others})" if others else "")


def _alive(d: Diagnosis) -> int:
    """The registered workers neither stale nor dead (``fw doctor``'s ``2 alive``)."""
    return sum(w.state == "alive" for w in d.workers)
