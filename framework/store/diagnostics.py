"""What ``fw doctor`` reports about a store, read without changing anything (no migration).

Connectivity, the schema version against the one this fw writes, how far the workers are
behind (runnable instances nobody holds, and how long the oldest has waited; instances that
wait for a slot of their workflow's concurrency limit are counted apart), the registered
workers (``store/workers.py``: alive, stale or dead, by their liveness lock and heartbeat) and
the owners of the leases held (which include workers of an fw that did not register).
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from framework.errors import StoreError
from framework.store.base import ConcurrencyLimit
from framework.store.migrations import latest_version
from framework.store.workers import (
    LockFiles,
    WorkerRow,
    lock_folder,
    postgres_workers,
    sqlite_workers,
)

LAG_QUERY = (  # per workflow: the due instances, apart from the expired leases
    "SELECT workflow, status = 'running', count(*), min(wake_at) FROM instances "
    "WHERE wake_at <= %s AND status IN ('queued', 'waiting', 'running') GROUP BY 1, 2"
)
SLOTS_QUERY = (  # per group of a limited workflow: the slots held, the due instances queued
    "SELECT workflow, concurrency_key, "
    "sum(CASE WHEN lease_owner IS NOT NULL THEN 1 ELSE 0 END), "
    "sum(CASE WHEN lease_owner IS NULL THEN 1 ELSE 0 END), "
    "min(CASE WHEN lease_owner IS NULL THEN wake_at END) FROM instances "
    "WHERE workflow = ANY(%s) AND (lease_owner IS NOT NULL "
    "OR (wake_at <= %s AND status IN ('queued', 'waiting'))) GROUP BY 1, 2"
)
OWNERS_QUERY = (
    "SELECT lease_owner, count(*), max(wake_at) FROM instances WHERE lease_owner IS NOT NULL "
    "GROUP BY lease_owner ORDER BY lease_owner"
)
COUNTS_QUERY: Final = "SELECT status, count(*) FROM instances GROUP BY status"


@dataclass(frozen=True)
class WorkerSeen:
    """An owner of leases: its id (``host:pid:nonce``), how many instances it holds and when
    the latest of its leases runs out."""

    id: str
    held: int
    lease_until: float
    alive: bool


@dataclass(frozen=True)
class RegisteredWorker:
    """A worker of the registry as ``fw doctor`` reports it."""

    id: str
    host: str
    pid: int
    state: str
    held: int
    heartbeat_age: float
    code_version: str

    @classmethod
    def of(cls, row: WorkerRow, now: float, stale_after: float) -> RegisteredWorker:
        return cls(
            row.id, row.host, row.pid, row.state(now, stale_after), len(row.held),
            max(0.0, now - row.heartbeat_at), row.code_version,
        )  # fmt: skip


@dataclass
class Diagnosis:
    """A store's health, as ``fw doctor`` shows it."""

    database: str
    dialect: str
    reachable: bool = False
    error: str | None = None
    schema_version: int | None = None
    latest_version: int = 0
    server: str | None = None
    connections: int | None = None
    max_connections: int | None = None
    counts: dict[str, int] = field(default_factory=dict[str, int])
    runnable: int = 0
    """Instances due now that a worker could claim but none holds (including expired
    leases, awaiting reclaim)."""
    waiting_for_slots: int = 0
    """Instances due now that wait for a slot of their workflow's concurrency limit (its
    running instances hold every one): more workers would not run them sooner."""
    oldest_runnable_age: float | None = None
    """Seconds since the longest-waiting of those became due: the workers' lag."""
    expired_leases: int = 0
    """Running instances whose worker stopped renewing its lease (died or stalled)."""
    lease_holders: list[WorkerSeen] = field(default_factory=list[WorkerSeen])
    workers: list[RegisteredWorker] = field(default_factory=list[RegisteredWorker])
    """The registered workers, oldest first."""
    ids_indexed: bool | None = None
    """Whether ids are indexed by trigram for searches (None: the schema is not there yet)."""

    def live_workers(self) -> list[RegisteredWorker]:
        return [w for w in self.workers if w.state != "dead"]

    @property
    def schema_current(self) -> bool:
        return self.schema_version == self.latest_version

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema_current"] = self.schema_current
        return data


async def diagnose(
    url: str, now: float, stale_after: float = 30.0, limits: Sequence[ConcurrencyLimit] = ()
) -> Diagnosis:
    """Inspect the store at ``url`` as of ``now`` (seconds since the epoch); a registered
    worker whose heartbeat is ``stale_after`` seconds old is stale; ``limits``: the app's
    concurrency limits, which hold back some due instances (none outside an app)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return _diagnose_sqlite(path, url, now, stale_after, limits)
    return await _diagnose_postgres(url, now, stale_after, limits)


def _fill(
    d: Diagnosis,
    rows: dict[str, list[tuple[Any, ...]]],
    now: float,
    limits: Sequence[ConcurrencyLimit],
) -> None:
    d.counts = {status: int(n) for status, n in rows["counts"]}
    limited = {limit.workflow for limit in limits}
    oldest = math.inf
    for workflow, expired, due, first in rows["lag"]:
        if expired:
            d.expired_leases += int(due)
        elif workflow in limited:  # its queue: what the free slots of each group let run
            continue
        d.runnable += int(due)
        oldest = min(oldest, float(first))
    for group in _slot_groups(rows["slots"], limits):
        d.runnable += group.claimable
        d.waiting_for_slots += group.due - group.claimable
        if group.claimable:
            oldest = min(oldest, group.oldest)
    d.oldest_runnable_age = None if oldest == math.inf else max(0.0, now - oldest)
    d.lease_holders = [
        WorkerSeen(str(owner), int(held), float(until), float(until) > now)
        for owner, held, until in rows["owners"]
    ]


@dataclass
class _SlotGroup:
    """The instances of a limited workflow that count under one key (all of them, when the
    limit is not keyed): the slots they hold, how many are due and queued, the oldest's due
    time."""

    limit: int
    held: int = 0
    due: int = 0
    oldest: float = math.inf

    @property
    def claimable(self) -> int:
        """How many of the due ones the free slots let a worker take now."""
        return min(self.due, max(0, self.limit - self.held))


def _slot_groups(
    slot_rows: list[tuple[Any, ...]], limits: Sequence[ConcurrencyLimit]
) -> list[_SlotGroup]:
    by_name = {limit.workflow: limit for limit in limits}
    groups: dict[tuple[str, str | None], _SlotGroup] = {}
    for workflow, key, held, due, first in slot_rows:
        limit = by_name[workflow]
        found = groups.setdefault((workflow, key if limit.keyed else None), _SlotGroup(limit.limit))
        found.held += int(held or 0)
        found.due += int(due or 0)
        if first is not None:
            found.oldest = min(found.oldest, float(first))
    return list(groups.values())


def _diagnose_sqlite(
    path: Path, url: str, now: float, stale_after: float, limits: Sequence[ConcurrencyLimit]
) -> Diagnosis:
    d = Diagnosis(database=url, dialect="sqlite", latest_version=latest_version("sqlite"))
    if not path.exists():
        d.error = f"{path} does not exist yet (a worker or `fw migrate` creates it)"
        return d
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        d.error = f"cannot open {path}: {exc}"
        return d
    try:
        d.schema_version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        d.reachable = True
        d.server = f"SQLite {sqlite3.sqlite_version}"
        if d.schema_version > 0:
            slots = SLOTS_QUERY.replace("= ANY(%s)", "IN (SELECT value FROM json_each(%s))")
            names = json.dumps([limit.workflow for limit in limits])
            _fill(d, {
                "counts": connection.execute(COUNTS_QUERY).fetchall(),
                "lag": connection.execute(LAG_QUERY.replace("%s", "?"), (now,)).fetchall(),
                "slots": connection.execute(slots.replace("%s", "?"), (names, now)).fetchall()
                if limits else [],
                "owners": connection.execute(OWNERS_QUERY).fetchall(),
            }, now, limits)
            d.ids_indexed = _has_sqlite_table(connection, "instance_search")
            registry = _has_sqlite_table(connection, "workers")
            if registry:
                locks = LockFiles(lock_folder(path))
                rows = sqlite_workers(connection, locks, socket.gethostname())
                d.workers = [RegisteredWorker.of(r, now, stale_after) for r in rows]
    except sqlite3.Error as exc:
        d.error = f"{path}: {exc}"
    finally:
        connection.close()
    return d


def _has_sqlite_table(connection: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(sql, (name,)).fetchone() is not None


async def _diagnose_postgres(
    url: str, now: float, stale_after: float, limits: Sequence[ConcurrencyLimit]
) -> Diagnosis:
    import psycopg

    from framework.store.postgres import schema_version
    from framework.store.postgres_connection import Database, PostgresSettings

    settings = PostgresSettings.from_url(url)
    d = Diagnosis(database=settings.display, dialect="postgres",
                  latest_version=latest_version("postgres"))
    database = Database(settings)
    try:
        connection = await database.connect(autocommit=True)
    except StoreError as exc:
        d.error = str(exc)
        return d
    try:
        d.reachable = True
        d.schema_version = await schema_version(connection)
        cur = await connection.execute(
            "SELECT version(), (SELECT count(*) FROM pg_stat_activity WHERE datname = "
            "current_database()), current_setting('max_connections')::int"
        )
        server = await cur.fetchone()
        if server is not None:
            d.server = str(server[0]).split(" on ")[0]
            d.connections, d.max_connections = int(server[1]), int(server[2])
        if d.schema_version > 0:
            counts = await connection.execute(COUNTS_QUERY)
            owners = await connection.execute(OWNERS_QUERY)
            lag = await connection.execute(LAG_QUERY, [now])
            rows = {"counts": await counts.fetchall(), "owners": await owners.fetchall(),
                    "lag": await lag.fetchall(), "slots": []}
            if limits:
                names = [limit.workflow for limit in limits]
                slots = await connection.execute(SLOTS_QUERY, [names, now])
                rows["slots"] = await slots.fetchall()
            _fill(d, rows, now, limits)
            cur = await connection.execute("SELECT to_regclass('instance_search') IS NOT NULL")
            d.ids_indexed = bool((await cur.fetchone() or (False,))[0])
            cur = await connection.execute("SELECT to_regclass('workers') IS NOT NULL")
            if (await cur.fetchone() or (False,))[0]:
                registered = await postgres_workers(connection)
                d.workers = [RegisteredWorker.of(r, now, stale_after) for r in registered]
    except psycopg.Error as exc:
        d.error = str(database.error(exc, "inspecting the database"))
    finally:
        await connection.close()
    return d
