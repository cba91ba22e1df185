"""The embedded store: one SQLite file in WAL mode, shared by the worker processes of a machine.

Writes go through one thread per process that commits them in groups (``sqlite_writer``);
reads use their own connection, which WAL lets run beside the writer. Commits are durable
(``synchronous=FULL``): a journaled step survives a crash of the process or the machine.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import parse_qs

from framework.errors import (
    InstanceNotFoundError,
    LeaseLostError,
    StoreClosedError,
    StoreError,
    UnknownStepError,
)
from framework.store.base import (
    LOG_LIMIT,
    MAX_BUFFERED_EVENTS,
    PRUNE_CHUNK,
    PRUNE_SECONDS,
    RETRIED_KINDS,
    Claim,
    ConcurrencyLimit,
    Created,
    EndedCount,
    Handoff,
    InstanceRow,
    LogRow,
    NewInstance,
    Page,
    Status,
    StepRow,
    TakenEvent,
    Transition,
    check_distinct_ids,
    check_same_workflow,
    contains_pattern,
    cursor_seq,
    duration_class_sql,
    newest_share,
    no_retry_error,
    prefix_successor,
    too_many_events_error,
    unstorable,
)
from framework.store.migrations import migrations
from framework.store.sqlite_writer import LookFirst, SQLiteWriter, WriteResult, is_busy
from framework.store.states import (
    Outcome,
    State,
    commit_move,
    decide,
    next_control,
    next_status,
    releases,
    resolve_wake_at,
    state_of,
)
from framework.store.wakeup import WakeupChannel
from framework.store.workers import (
    EXPIRE_LEASES,
    SQLITE_REGISTER,
    LockFiles,
    WorkerInfo,
    WorkerRow,
    lock_folder,
    register_values,
    sqlite_workers,
)

T = TypeVar("T")
BUSY_TIMEOUT = 15.0
"""Seconds a write waits for another process's lock (``sqlite:///x.db?timeout=5``)."""
INSTANCE_COLUMNS = (
    "seq, id, workflow, status, params, output, error, version, parent_id, generation, "
    "created_at, updated_at, wake_at, lease_owner, crash_count, crashes, control, runs, retention"
)
STEP_COLUMNS = (
    "instance_id, name, count, seq, kind, status, attempts, started_at, finished_at, wake_at, "
    "input, output, error, detail"
)
UPSERT_STEP = (
    f"INSERT INTO steps ({STEP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (instance_id, name, count) DO UPDATE SET seq=excluded.seq, kind=excluded.kind, "
    "status=excluded.status, attempts=excluded.attempts, started_at=excluded.started_at, "
    "finished_at=excluded.finished_at, wake_at=excluded.wake_at, input=excluded.input, "
    "output=excluded.output, error=excluded.error, detail=excluded.detail"
)
LOG_COLUMNS = "instance_id, run, line, at, level, message, step, step_count, fields, seq"
ID_CHUNK = 500
"""Ids per ``IN (...)`` query (SQLite limits the parameters of one statement)."""
INSERT_INSTANCE = (
    "INSERT INTO instances (id, workflow, status, params, version, parent_id, created_at, "
    "updated_at, wake_at, retention, concurrency_key) "
    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
INSERT_RETURNING = f"{INSERT_INSTANCE} RETURNING {INSTANCE_COLUMNS}"  # nothing if the id is taken
INSERT_CLAIMED = (  # a new instance its creator's worker claims in the same transaction
    "INSERT INTO instances (id, workflow, status, params, version, parent_id, created_at, "
    "updated_at, wake_at, retention, concurrency_key, lease_owner, lease_token, runs) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
    f"ON CONFLICT (id) DO NOTHING RETURNING {INSTANCE_COLUMNS}"
)
RUNNABLE = "+status IN ('queued', 'waiting', 'running')"
"""The statuses a worker may claim, for queries that walk the ``wake_at`` index: the ``+``
keeps SQLite from reading a status index instead, which holds every waiting instance (100,000
sleeping ones made each claim read and sort them all: 25 ms, where the wake index reads only
the due ones)."""
DUE = (
    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE wake_at <= ? AND wake_at >= ? "
    f"AND {RUNNABLE} ORDER BY wake_at LIMIT ?"
)
LIMITS = (  # the concurrency limits (a JSON document) and the leases each group holds
    "WITH limits(workflow, slots, keyed) AS (SELECT value->>0, value->>1, value->>2 "
    "FROM json_each(?)), "
    "held(workflow, key, n) AS (SELECT i.workflow, CASE WHEN l.keyed THEN i.concurrency_key "
    "END, count(*) FROM instances i JOIN limits l ON l.workflow = i.workflow "
    "WHERE i.lease_owner IS NOT NULL GROUP BY 1, 2) "
)
HELD = (  # joined to instances i and limits l: the leases held in the group of i
    "LEFT JOIN held h ON h.workflow = i.workflow "
    "AND h.key IS (CASE WHEN l.keyed THEN i.concurrency_key END) "
)
DUE_LIMITED = (  # as DUE, taking from each limited group no more than its free slots
    f"{LIMITS}, queue(seq, free, place) AS (SELECT i.seq, l.slots - coalesce(h.n, 0), "
    "row_number() OVER (PARTITION BY i.workflow, CASE WHEN l.keyed THEN i.concurrency_key END "
    "ORDER BY i.wake_at, i.seq) FROM instances i JOIN limits l ON l.workflow = i.workflow "
    f"{HELD}WHERE i.wake_at <= ? AND i.status IN ('queued', 'waiting')) "
    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE seq IN ("
    "SELECT seq FROM queue WHERE place <= free UNION ALL SELECT seq FROM (SELECT seq "
    f"FROM instances WHERE wake_at <= ? AND {RUNNABLE} "
    "AND (status = 'running' OR workflow NOT IN (SELECT workflow FROM limits)) "
    "ORDER BY wake_at LIMIT ?)) ORDER BY wake_at, seq LIMIT ?"
)
DUE_NEWEST = DUE.replace("ORDER BY wake_at", "ORDER BY wake_at DESC")
NEXT_WAKE = (
    "SELECT min(wake_at) FROM instances WHERE wake_at IS NOT NULL AND wake_at >= ? "
    f"AND {RUNNABLE}"
)
NEXT_WAKE_LIMITED = (  # as NEXT_WAKE, leaving out the due instances of full groups
    f"{LIMITS}SELECT min(w) FROM (SELECT min(wake_at) AS w FROM instances "
    f"WHERE wake_at IS NOT NULL AND {RUNNABLE} "
    "AND (status = 'running' OR workflow NOT IN (SELECT workflow FROM limits)) "
    "UNION ALL SELECT min(i.wake_at) FROM instances i JOIN limits l ON l.workflow = i.workflow "
    f"{HELD}WHERE i.wake_at IS NOT NULL AND i.status IN ('queued', 'waiting') "
    "AND (i.wake_at > ? OR coalesce(h.n, 0) < l.slots))"
)


class SQLiteStore:
    """The Store protocol on a SQLite file."""

    dialect = "sqlite"
    liveness_final = True

    def __init__(self, url: str) -> None:
        self.url = url
        location, _, query = url.removeprefix("sqlite:///").partition("?")
        self.path = Path(location)
        options = parse_qs(query)
        self.busy_timeout = float(options.get("timeout", [BUSY_TIMEOUT])[0])
        self._wakeup = WakeupChannel(self.path)
        self._locks = LockFiles(lock_folder(self.path))
        self._writer = self._new_writer()
        self._reader: ThreadPoolExecutor | None = self._new_reader()
        self._reader_local = threading.local()
        self._closing = threading.Event()  # tells a connect still waiting for a lock to give up
        self._opened = False
        self._id_search = False
        """Whether ids are indexed by trigram (instance_search): set when opened."""

    # Lifecycle.

    async def open(self) -> None:
        """Open (creating the file, switching it to WAL and migrating it as needed).

        If it fails or is cancelled, every connection and thread it started is gone when it
        raises; it may then be called again.
        """
        if self._opened:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {self.path}: {exc}") from None
        if self._writer.started:
            self._writer = self._new_writer()
        if self._reader is None:
            self._reader = self._new_reader()
        self._closing.clear()
        try:
            await asyncio.wrap_future(self._writer.start())
            await self._writer.write(self._migrate)
        except BaseException:
            await self._release()
            raise
        self._opened = True

    async def close(self) -> None:
        """Finish queued writes and close every connection; idempotent."""
        self._opened = False
        self._wakeup.close()
        self._locks.release_all()
        await self._release()

    async def _release(self) -> None:
        # Off the event loop: stopping waits for the writer's current commit (or connect).
        # Cancelled meanwhile, the threads still finish and close their connections.
        self._closing.set()
        await asyncio.to_thread(self._writer.stop)
        reader, self._reader = self._reader, None
        if reader is not None:
            await asyncio.to_thread(_shut_down_reader, reader, self._close_reader)

    def _new_writer(self) -> SQLiteWriter:
        name = f"the SQLite store at {self.path}"
        return SQLiteWriter(
            self._connect_writer, self._wakeup.notify, self._store_error, name, self.busy_timeout
        )

    @staticmethod
    def _new_reader() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(1, thread_name_prefix="fw-sqlite-reader")

    @property
    def commits(self) -> int:
        """Write transactions this store committed."""
        return self._writer.commits

    def schema_version(self) -> int:
        """The schema version of the file (0 when it has none yet)."""
        return int(self._read_sync(lambda c: c.execute("PRAGMA user_version").fetchone()[0]))

    # Instances.

    async def create_instances(
        self, instances: Sequence[NewInstance], handoff: Handoff | None = None
    ) -> list[Created]:
        check_distinct_ids(instances)

        def write(c: sqlite3.Connection) -> WriteResult[list[Created]]:
            # Inside the write transaction (BEGIN IMMEDIATE): no other writer runs meanwhile.
            # Each insert returns the row it stored; an id already stored returns nothing and
            # is read after (rare: a create repeated with its id).
            stored, claims = _insert_new(c, instances, handoff)
            existing = {
                row.id: row
                for row in _instances_by_id(c, [i.id for i in instances if i.id not in stored])
            }
            check_same_workflow(instances, existing)
            created = [
                Created(claims[i.id].instance, True, claims[i.id])
                if i.id in claims
                else Created(stored[i.id], True)
                if i.id in stored
                else Created(existing[i.id], False)
                for i in instances
            ]
            return WriteResult(created, wake_workers=len(stored) > len(claims))

        if not instances:
            return []
        # Handed to a worker of this process, a create commits on the caller's thread when
        # the writer is idle, as that worker's own writes do.
        return await self._writer.write(write, may_inline=handoff is not None)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        if unstorable(instance_id):
            return None

        def read(c: sqlite3.Connection) -> InstanceRow | None:
            return _one_instance(c, instance_id)

        return await self._read_here_if_idle(read)

    async def restarted_at(self, instance_id: str) -> float | None:
        if unstorable(instance_id):
            return None

        def read(c: sqlite3.Connection) -> float | None:
            found = c.execute(
                "SELECT restarted_at FROM instances WHERE id=?", (instance_id,)
            ).fetchone()
            return None if found is None else found[0]

        return await self._read(read)

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRow]:
        ids = [i for i in instance_ids if not unstorable(i)]
        return await self._read_here_if_idle(lambda c: _instances_by_id(c, ids)) if ids else []

    async def list_instances(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        search: str | None = None,
        id_prefix: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        if unstorable(workflow, status, search, id_prefix, parent_id):
            return Page([], None)
        clauses: list[str] = []
        args: list[object] = []
        for column, value in (("workflow", workflow), ("status", status), ("parent_id", parent_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        indexed = bool(search) and self._id_search and len(search or "") >= TRIGRAM
        if search:
            clauses.append("id LIKE ? ESCAPE '\\'")
            args.append(contains_pattern(search))
        if id_prefix:  # the ids from the prefix up to its successor: a range of the id index
            clauses.append("id >= ? AND id < ?")
            args.extend((id_prefix, prefix_successor(id_prefix)))
        if cursor is not None:
            clauses.append("seq < ?")
            args.append(cursor_seq(cursor))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""

        def read(c: sqlite3.Connection) -> list[InstanceRow]:
            source, found = _searched(c, search) if indexed and search else ("instances", [])
            sql = f"SELECT {INSTANCE_COLUMNS} FROM {source} {where} ORDER BY seq DESC LIMIT ?"
            return [_instance(r) for r in c.execute(sql, [*found, *args, limit + 1])]

        rows = await self._read(read)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, str(rows[-1].seq) if more and rows else None)

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        def read(c: sqlite3.Connection) -> dict[str, dict[str, int]]:
            counts: dict[str, dict[str, int]] = {}
            sql = "SELECT workflow, status, n FROM instance_counts WHERE n > 0"
            for workflow, status, number in c.execute(sql):
                counts.setdefault(workflow, {})[status] = number
            return counts

        return await self._read(read)

    async def count_due(self, now: float) -> dict[str, int]:
        def read(c: sqlite3.Connection) -> dict[str, int]:
            sql = (
                "SELECT workflow, count(*) FROM instances WHERE wake_at <= ? "
                f"AND {RUNNABLE} GROUP BY workflow"
            )
            return {workflow: number for workflow, number in c.execute(sql, (now,))}

        return await self._read(read)

    async def count_ended(
        self, workflow: str, since: float, width: float, buckets: int
    ) -> list[EndedCount]:
        until = since + width * buckets
        sql = (
            "SELECT CAST((updated_at - ?) / ? AS INTEGER) AS bucket, status, "
            f"{duration_class_sql('updated_at - created_at')} AS class, count(*) "
            "FROM instances INDEXED BY instances_updated "
            "WHERE status IN ('complete', 'errored', 'terminated') "
            "AND updated_at >= ? AND updated_at < ? AND workflow = ? "
            "GROUP BY bucket, status, class"
        )
        params = (since, width, since, until, workflow)
        return await self._read(lambda c: [EndedCount(*r) for r in c.execute(sql, params)])

    async def list_steps(self, instance_id: str) -> list[StepRow]:
        if unstorable(instance_id):
            return []
        return await self._read(lambda c: _steps_of(c, instance_id))

    async def list_logs(self, instance_id: str, limit: int = LOG_LIMIT) -> list[LogRow]:
        if unstorable(instance_id):
            return []

        def read(c: sqlite3.Connection) -> list[LogRow]:
            sql = f"SELECT {LOG_COLUMNS} FROM logs WHERE instance_id=? ORDER BY seq DESC LIMIT ?"
            return [LogRow(*r) for r in c.execute(sql, (instance_id, limit))][::-1]

        return await self._read(read)

    async def list_waiting_steps(self, instance_ids: Sequence[str]) -> list[StepRow]:
        ids = [i for i in instance_ids if not unstorable(i)]
        return await self._read(lambda c: _waiting_steps(c, ids)) if ids else []

    # Control.

    async def pause(self, instance_id: str, now: float) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult[InstanceRow]:
            row = _require(c, instance_id)
            state = state_of(row.status, row.lease_owner)
            outcome = decide(instance_id, state, "pause")
            c.execute(
                "UPDATE instances SET status=?, updated_at=?, wake_at=? WHERE id=?",
                (next_status(state, outcome), now, _wake_at(state, outcome, row, now), instance_id),
            )
            return WriteResult(_require(c, instance_id), wake_workers=outcome.notify)

        return await self._writer.write(write)

    async def resume(self, instance_id: str, now: float) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult[InstanceRow]:
            row = _require(c, instance_id)
            state = state_of(row.status, row.lease_owner)
            outcome = decide(instance_id, state, "resume")
            c.execute(
                "UPDATE instances SET status=?, wake_at=?, updated_at=?, "
                "error=CASE WHEN ? THEN NULL ELSE error END WHERE id=?",
                (
                    next_status(state, outcome),
                    _wake_at(state, outcome, row, now),
                    now,
                    outcome.clear_error,
                    instance_id,
                ),
            )
            return WriteResult(_require(c, instance_id), wake_workers=outcome.notify)

        return await self._writer.write(write)

    async def terminate(
        self, instance_id: str, now: float, compensate: bool = False
    ) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult[InstanceRow]:
            row = _require(c, instance_id)
            state = state_of(row.status, row.lease_owner)
            outcome = decide(instance_id, state, "compensate" if compensate else "terminate")
            _terminate_tree(c, instance_id, now, outcome)
            woke = outcome.wake_parent and _wake_parent(c, instance_id, row.parent_id, now)
            return WriteResult(_require(c, instance_id), wake_workers=outcome.notify or woke)

        return await self._writer.write(write)

    async def restart(
        self,
        instance_id: str,
        now: float,
        from_step: tuple[str, int] | None,
        version: str | None = None,
    ) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult[InstanceRow]:
            row = _require(c, instance_id)
            state = state_of(row.status, row.lease_owner)
            outcome = decide(instance_id, state, "restart")
            first_seq = -1
            if from_step is not None:
                found = c.execute(
                    "SELECT seq FROM steps WHERE instance_id=? AND name=? AND count=?",
                    (instance_id, *from_step),
                ).fetchone()
                if found is None:
                    names = [s.name for s in _steps_of(c, instance_id)]
                    raise UnknownStepError(instance_id, *from_step, names)
                first_seq = found[0]
            dropped = [
                f"{name}#{count}"
                for name, count in c.execute(
                    "SELECT name, count FROM steps WHERE instance_id=? AND seq>=?",
                    (instance_id, first_seq),
                )
            ]
            c.execute("DELETE FROM steps WHERE instance_id=? AND seq>=?", (instance_id, first_seq))
            c.executemany(
                "UPDATE events SET consumed_by=NULL WHERE instance_id=? AND consumed_by=?",
                [(instance_id, key) for key in dropped],
            )
            c.execute(
                "UPDATE instances SET status=?, wake_at=?, updated_at=?, output=NULL, "
                "error=NULL, lease_owner=NULL, lease_token=NULL, crash_count=0, control=NULL, "
                "version=?, generation=generation+1, restarted_at=? WHERE id=?",
                (
                    next_status(state, outcome),
                    _wake_at(state, outcome, row, now),
                    now,
                    version,
                    now,
                    instance_id,
                ),
            )
            return WriteResult(_require(c, instance_id), wake_workers=outcome.notify)

        return await self._writer.write(write)

    async def send_event(
        self, instance_id: str, event_type: str, payload: str, now: float
    ) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult[InstanceRow]:
            row = _require(c, instance_id)
            state = state_of(row.status, row.lease_owner)
            awaited = _awaits(c, instance_id, "event", "$.type", event_type)
            outcome = decide(instance_id, state, "awaited_event" if awaited else "event")
            held = c.execute(
                "SELECT count(*) FROM (SELECT 1 FROM events WHERE instance_id=? "
                "AND consumed_by IS NULL LIMIT ?)",
                (instance_id, MAX_BUFFERED_EVENTS),
            ).fetchone()[0]
            if held >= MAX_BUFFERED_EVENTS:
                raise too_many_events_error(instance_id)
            c.execute(
                "INSERT INTO events (instance_id, type, payload, created_at) VALUES (?,?,?,?)",
                (instance_id, event_type, payload, now),
            )
            if outcome.wake != "keep":
                c.execute(
                    "UPDATE instances SET wake_at=?, updated_at=? WHERE id=?",
                    (_wake_at(state, outcome, row, now), now, instance_id),
                )
            return WriteResult(_require(c, instance_id), wake_workers=outcome.notify)

        return await self._writer.write(write)

    async def retry_now(self, instance_id: str, now: float) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult[InstanceRow]:
            row = _require(c, instance_id)
            waiting = _waiting_steps(c, [instance_id])
            retries = [s for s in waiting if s.kind in RETRIED_KINDS]
            if row.status != "waiting" or not retries:
                raise no_retry_error(row, waiting)
            c.executemany(
                "UPDATE steps SET wake_at=? WHERE instance_id=? AND name=? AND count=?",
                [(now, instance_id, s.name, s.count) for s in retries],
            )
            c.execute(
                "UPDATE instances SET wake_at=?, updated_at=? WHERE id=?", (now, now, instance_id)
            )
            return WriteResult(_require(c, instance_id), wake_workers=True)

        return await self._writer.write(write)

    # Workers.

    async def claim(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_until: float,
        limits: Sequence[ConcurrencyLimit] = (),
        since: float | None = None,
    ) -> list[Claim]:
        if limits and since is not None:
            raise ValueError("a claim takes concurrency limits or a due-time bound, not both")

        def any_due(c: sqlite3.Connection) -> bool:
            due = _next_wake_at(c, limits, now, since)
            return due is not None and due <= now

        def write(c: sqlite3.Connection) -> WriteResult[list[Claim]]:
            # Inside the write transaction: no other claim counts the held leases meanwhile.
            if limits:
                args: tuple[object, ...] = (_limits_json(limits), now, now, limit, limit)
                due = c.execute(DUE_LIMITED, args).fetchall()
            else:
                due = _due(c, now, limit, since)
            return WriteResult(
                [_claim_row(c, row, owner, now, lease_until) for row in map(_instance, due)]
            )

        nothing: list[Claim] = []
        return await self._writer.write(
            write, durable=False, look_first=LookFirst(any_due, nothing), may_inline=True
        )

    async def heartbeat(
        self, owner: str, instance_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        if not instance_ids:
            return set()

        def write(c: sqlite3.Connection) -> WriteResult[set[str]]:
            marks = ",".join("?" * len(instance_ids))
            held = c.execute(
                f"UPDATE instances SET wake_at = CASE WHEN status IN ('running', 'paused') "
                f"THEN ? ELSE wake_at END WHERE lease_owner=? AND id IN ({marks}) RETURNING id",
                (lease_until, owner, *instance_ids),
            ).fetchall()
            return WriteResult({row[0] for row in held})

        return await self._writer.write(write, durable=False)

    async def apply(self, transition: Transition, now: float) -> Status:
        return await self._writer.write(lambda c: _apply(c, transition, now), may_inline=True)

    async def take_event(
        self, token: str, instance_id: str, event_type: str, step: StepRow, now: float
    ) -> TakenEvent | None:
        def write(c: sqlite3.Connection) -> WriteResult[TakenEvent | None]:
            _fence(c, instance_id, token)
            event = c.execute(
                "SELECT seq, payload, created_at FROM events WHERE instance_id=? AND type=? "
                "AND consumed_by IS NULL ORDER BY seq LIMIT 1",
                (instance_id, event_type),
            ).fetchone()
            if event is None:
                return WriteResult(None)
            seq, payload, created_at = event
            c.execute(
                "UPDATE events SET consumed_by=? WHERE seq=?", (f"{step.name}#{step.count}", seq)
            )
            _upsert_steps(c, [_with_output(step, payload)])
            c.execute(
                "UPDATE instances SET crash_count=0, updated_at=? WHERE id=?", (now, instance_id)
            )
            return WriteResult(TakenEvent(payload, created_at))

        return await self._writer.write(write, may_inline=True)

    async def next_wake_at(
        self,
        limits: Sequence[ConcurrencyLimit] = (),
        now: float | None = None,
        since: float | None = None,
    ) -> float | None:
        def read(c: sqlite3.Connection) -> float | None:
            return _next_wake_at(c, limits, now, since)

        return await self._read_here_if_idle(read)

    def note_load(self, running: int) -> None:
        self._writer.inline = running <= 1

    async def wait_for_work(self, timeout: float) -> None:
        await self._wakeup.wait(timeout)

    # The worker registry (store/workers.py): liveness by flock on a file per worker.

    async def register_worker(self, worker: WorkerInfo) -> None:
        try:
            self._locks.hold(worker.id)
        except OSError as exc:
            raise StoreError(
                f"cannot lock {self._locks.path(worker.id)} (the worker's liveness lock): {exc}"
            ) from None

        def write(c: sqlite3.Connection) -> WriteResult[None]:
            c.execute(SQLITE_REGISTER, register_values(worker, 0))
            return WriteResult(None)

        await self._writer.write(write, durable=False)

    async def beat_worker(self, worker_id: str, now: float, running: int) -> bool:
        def write(c: sqlite3.Connection) -> WriteResult[bool]:
            found = c.execute(
                "UPDATE workers SET heartbeat_at=?, running=? WHERE id=? AND dead_at IS NULL "
                "RETURNING id",
                (now, running, worker_id),
            ).fetchall()
            return WriteResult(bool(found))

        return await self._writer.write(write, durable=False)

    async def ensure_worker_lock(self, worker_id: str) -> bool:
        return True  # a file lock is lost only with the process

    async def deregister_worker(self, worker_id: str) -> None:
        def write(c: sqlite3.Connection) -> WriteResult[None]:
            c.execute("DELETE FROM workers WHERE id=?", (worker_id,))
            return WriteResult(None)

        try:
            await self._writer.write(write, durable=False)
        finally:
            self._locks.release(worker_id)

    async def locks_lost_at(self) -> float | None:
        return None  # a file lock is lost only with its process

    async def list_workers(self, with_held: bool = True) -> list[WorkerRow]:
        locks, host = self._locks, socket.gethostname()

        return await self._read(lambda c: sqlite_workers(c, locks, host, with_held))

    async def reclaim_worker(self, worker_id: str, now: float) -> int:
        def write(c: sqlite3.Connection) -> WriteResult[int]:
            c.execute(
                "UPDATE workers SET dead_at=? WHERE id=? AND dead_at IS NULL", (now, worker_id)
            )
            freed = c.execute(EXPIRE_LEASES.format(mark="?"), (now, worker_id)).rowcount
            return WriteResult(freed, wake_workers=freed > 0)

        freed = await self._writer.write(write)
        self._locks.forget(worker_id)
        return freed

    async def forget_workers(self, before: float) -> int:
        def write(c: sqlite3.Connection) -> WriteResult[int]:
            gone = c.execute("DELETE FROM workers WHERE dead_at < ?", (before,)).rowcount
            return WriteResult(gone)

        return await self._writer.write(write, durable=False)

    async def prune(
        self,
        statuses: Sequence[str],
        before: float,
        batch: int,
        *,
        workflows: Sequence[str] | None = None,
        other_than: Sequence[str] = (),
    ) -> int:
        if not statuses or workflows == []:
            return 0
        where = f"status IN ({','.join('?' * len(statuses))}) AND updated_at < ? "
        where += "AND retention IS NULL "
        values: list[Any] = [*statuses, before]
        if workflows is not None:
            where += f"AND workflow IN ({','.join('?' * len(workflows))}) "
            values += workflows
        if other_than:
            where += f"AND workflow NOT IN ({','.join('?' * len(other_than))}) "
            values += other_than
        return await self._prune(where, values, batch)

    async def prune_own_retention(
        self, statuses: Sequence[str], now: float, batch: int
    ) -> int:
        if not statuses:
            return 0
        where = f"status IN ({','.join('?' * len(statuses))}) AND retention IS NOT NULL "
        where += "AND updated_at < ? - retention "
        return await self._prune(where, [*statuses, now], batch)

    async def _prune(self, where: str, values: list[Any], batch: int) -> int:
        def any_match(c: sqlite3.Connection) -> bool:
            sql = f"SELECT 1 FROM instances AS i WHERE {where}LIMIT 1"
            return c.execute(sql, values).fetchone() is not None

        write = functools.partial(_prune, where, values, batch)
        # Not durable: a prune undone by a power loss is done again by the next one, and the
        # write lock is not held while the disk flushes (a worker's commit may be waiting).
        deleted = await self._writer.write(write, durable=False, look_first=LookFirst(any_match, 0))
        if deleted:
            # Copy the batch's pages from the WAL into the database now, on this side: else
            # the commit that finds the WAL past 1,000 pages does it, most often a worker's,
            # which then waits for those scattered writes (up to a second in a 1.4 GB file).
            await self._read(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        return deleted

    # Studio login sessions.

    async def create_session(self, session: str, now: float, expires_at: float) -> None:
        def write(c: sqlite3.Connection) -> WriteResult[None]:
            c.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            c.execute(
                "INSERT INTO sessions (id, created_at, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (session, now, expires_at),
            )
            return WriteResult(None)

        await self._writer.write(write)

    async def session_active(self, session: str, now: float) -> bool:
        def read(c: sqlite3.Connection) -> bool:
            sql = "SELECT 1 FROM sessions WHERE id = ? AND expires_at > ?"
            return c.execute(sql, (session, now)).fetchone() is not None

        return await self._read(read)

    async def delete_session(self, session: str) -> None:
        def write(c: sqlite3.Connection) -> WriteResult[None]:
            c.execute("DELETE FROM sessions WHERE id = ?", (session,))
            return WriteResult(None)

        await self._writer.write(write)

    # Connections.

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        try:
            connection.execute("PRAGMA synchronous=FULL")
        except BaseException:
            connection.close()
            raise
        return connection

    def _connect_writer(self) -> sqlite3.Connection:
        connection = self._connect()
        try:
            mode = self._switch_to_wal(connection)
            if mode != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            connection.execute("PRAGMA busy_timeout=0")  # the writer waits for locks itself
        except BaseException:
            connection.close()
            raise
        return connection

    def _switch_to_wal(self, connection: sqlite3.Connection) -> str:
        """Switch the file to WAL mode (once per file: the mode is stored in it).

        The switch needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without
        its busy handler, when another connection opens the same new file at that moment
        (several workers starting together). So it is retried, like any lock, for up to
        the busy timeout; a close of the store meanwhile stops the wait.
        """
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                return str(connection.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() + pause > deadline:
                    raise
            if self._closing.wait(pause):
                raise StoreError(f"database {self.path}: closed while opening")
            pause = min(pause * 2, 0.05)

    def _migrate(self, c: sqlite3.Connection) -> WriteResult[None]:
        current = c.execute("PRAGMA user_version").fetchone()[0]
        known = migrations("sqlite")
        if current > len(known):
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this fw knows "
                f"({len(known)}); upgrade fw"
            )
        for migration in known[current:]:
            if _supports(migration.requires):
                for statement in _statements(migration.sql):
                    c.execute(statement)
            c.execute(f"PRAGMA user_version={migration.version}")
        self._id_search = _has_table(c, "instance_search")
        indexing = next((m for m in known if m.name == "id_search"), None)
        if (
            not self._id_search
            and indexing is not None
            and current >= indexing.version
            and _supports(indexing.requires)
        ):
            # Migrated by a SQLite without FTS5's trigram tokenizer, opened by one with it.
            for statement in _statements(indexing.sql):
                c.execute(statement)
            self._id_search = True
        if self._id_search:
            _set_search_page_size(c)
        return WriteResult(None)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_pool(), self._read_in_thread, fn)

    async def _read_here_if_idle(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A short read on this thread when a lone instance runs and the writer is idle
        (``SQLiteWriter.read_inline``), else in the reader thread."""
        try:
            done, value = self._writer.read_inline(fn)
        except sqlite3.Error as exc:
            raise self._store_error(exc) from None
        return cast(T, value) if done else await self._read(fn)

    def _read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._reader_pool().submit(self._read_in_thread, fn).result()

    def _reader_pool(self) -> ThreadPoolExecutor:
        if self._reader is None:
            raise StoreClosedError(f"the SQLite store at {self.path} is closed")
        return self._reader

    def _read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        connection: sqlite3.Connection | None = getattr(self._reader_local, "connection", None)
        try:
            if connection is None:
                connection = self._connect()
                self._reader_local.connection = connection
            return fn(connection)
        except sqlite3.Error as exc:
            raise self._store_error(exc) from None

    def _close_reader(self) -> None:
        connection = getattr(self._reader_local, "connection", None)
        if connection is not None:
            connection.close()
            self._reader_local.connection = None

    def _store_error(self, exc: BaseException) -> BaseException:
        if not isinstance(exc, sqlite3.Error):
            return exc
        text = str(exc)
        if is_busy(exc):
            hint = f"is locked: another process held it for over {self.busy_timeout:g} s"
        elif "full" in text:
            hint = "cannot grow: the disk is full; free space and the workers carry on"
        elif "not a database" in text or "malformed" in text:
            hint = "is not a valid SQLite database (corrupt, or another kind of file)"
        elif "readonly" in text:
            hint = "is read-only for this process"
        else:
            hint = "failed"
        return StoreError(f"database {self.path} {hint} ({type(exc).__name__}: {text})")


def _shut_down_reader(reader: ThreadPoolExecutor, close_connection: Callable[[], None]) -> None:
    """Close the reader thread's connection (on that thread), then end the thread."""
    reader.submit(close_connection).result()
    reader.shutdown(wait=True)


def _prune(where: str, values: list[Any], batch: int, c: sqlite3.Connection) -> WriteResult[int]:
    """Delete up to ``batch`` instances matching ``where`` (never a child whose parent has
    not ended), with their journals, events and logs, a chunk at a time until
    ``PRUNE_SECONDS`` have passed.

    The time is checked between chunks, so a chunk is sized from the time per instance the
    last one took, to take at most half the time left (1 instance first, ``PRUNE_CHUNK`` at
    most): a batch then overruns its time by a fraction of it, not by a whole chunk that
    happened to be slow (a fixed chunk of 10 took up to 180 ms on a loaded machine).
    """
    began = time.perf_counter()
    deadline = began + PRUNE_SECONDS
    deleted = 0
    chunk = 1
    while deleted < batch:
        asked = min(chunk, batch - deleted)
        gone = _prune_chunk(where, values, asked, c)
        deleted += gone
        now = time.perf_counter()
        if gone < asked or now >= deadline:
            break
        per_instance = (now - began) / deleted
        chunk = max(1, min(PRUNE_CHUNK, int((deadline - now) / 2 / per_instance)))
    return WriteResult(deleted)


def _prune_chunk(where: str, values: list[Any], most: int, c: sqlite3.Connection) -> int:
    """Delete up to ``most`` instances matching ``where`` (not a child of a running
    parent) and everything of theirs; how many."""
    ids = [
        (row[0],)
        for row in c.execute(
            f"SELECT id FROM instances AS i WHERE {where}"
            "AND NOT EXISTS (SELECT 1 FROM instances AS p WHERE p.id = i.parent_id "
            "AND p.status NOT IN ('complete', 'errored', 'terminated')) LIMIT ?",
            (*values, most),
        )
    ]
    for table, column in (
        ("steps", "instance_id"),
        ("events", "instance_id"),
        ("logs", "instance_id"),
        ("instances", "id"),
    ):
        c.executemany(f"DELETE FROM {table} WHERE {column}=?", ids)
    return len(ids)


TRIGRAM = 3
"""The shortest search the trigram index serves; a shorter one reads the instances."""


FEW_CANDIDATES = 200
"""The most instances a search reads by the first and last trigrams of its text alone."""

_BY_TRIGRAMS = (
    "(SELECT rowid FROM instance_search WHERE instance_search MATCH ?) AS found "
    "CROSS JOIN instances ON instances.seq = found.rowid"
)
_BY_SEQ = "(SELECT value AS seq FROM json_each(?)) AS found CROSS JOIN instances USING (seq)"


def _searched(c: sqlite3.Connection, text: str) -> tuple[str, list[object]]:
    """The FROM clause of a search for ids containing ``text`` (three characters or more),
    and its argument: the instances whose ids hold trigrams of it, which the ``LIKE`` then
    narrows to those containing it. CROSS JOIN keeps that order: the index first, then each
    instance by seq.

    The first and last trigrams alone are read first: for ids that look random (uuids),
    they leave a few dozen candidates among 1M ids, and reading two trigrams instead of the
    four that cover 12 characters took 0.45 ms against 0.78 at 1M ids. If they leave more
    than ``FEW_CANDIDATES`` (ids alike at both ends, ``order-…``), the trigrams that cover
    the text are read instead, as ever."""
    covering = _covering_trigrams(text)
    ends = _end_trigrams(text)
    if ends != covering:
        sql = "SELECT rowid FROM instance_search WHERE instance_search MATCH ? LIMIT ?"
        seqs = [row[0] for row in c.execute(sql, (ends, FEW_CANDIDATES + 1))]
        if len(seqs) <= FEW_CANDIDATES:
            return _BY_SEQ, [json.dumps(seqs)]
    return _BY_TRIGRAMS, [covering]


def _end_trigrams(text: str) -> str:
    """An FTS5 query for the ids holding the first and the last trigram of ``text``."""
    return _fts_terms(sorted({0, len(text) - TRIGRAM}), text)


def _fts_terms(starts: list[int], text: str) -> str:
    terms = (text[i : i + TRIGRAM].replace('"', '""') for i in starts)
    return " AND ".join(f'"{term}"' for term in terms)


def _covering_trigrams(text: str) -> str:
    """An FTS5 query for the ids holding trigrams that cover ``text``: every third one and
    the last (``'0f3a9c2e'``: ``"0f3" AND "a9c" AND "c2e"``). A superset of the ids containing
    it, which the LIKE narrows; reading 4 of the 10 trigrams of a 12-character search instead
    of the whole phrase took 1.4 ms against 3.6 at 1M ids."""
    starts = list(range(0, len(text) - TRIGRAM + 1, TRIGRAM))
    if starts[-1] != len(text) - TRIGRAM:
        starts.append(len(text) - TRIGRAM)
    return _fts_terms(starts, text)


def _supports(feature: str | None) -> bool:
    """Whether this process's SQLite has what a migration requires."""
    if feature is None:
        return True
    if feature != "fts5-trigram":
        raise StoreError(f"a migration requires {feature!r}, which fw does not know")
    return _has_fts5_trigram()


@functools.cache
def _has_fts5_trigram() -> bool:
    with closing(sqlite3.connect(":memory:")) as probe:
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='trigram')")
        except sqlite3.OperationalError:  # no FTS5, or no trigram tokenizer (before 3.34)
            return False
    return True


SEARCH_PAGE_SIZE = 500
"""Bytes per leaf page of the id index (FTS5's ``pgsz``; its default is 4,050).

FTS5 merges its index as it is written, in the commit or statement that crosses a count of
pages written, and each such merge writes 64 pages per level of the index: with pages of
4,050 bytes, 30-117 ms of merging inside whichever transaction crossed the count (a worker's
commit, or a prune batch deleting ids, beyond the batch's time check) at 100k-1M ids. With
pages of 500 bytes each merge is about an eighth as long, and they come more often: the same
work in steps short enough that no commit waits long behind one. Searches read the smaller
pages as fast. Applied to pages written from now on (an existing index is not rebuilt)."""


def _set_search_page_size(c: sqlite3.Connection) -> None:
    """Give the id index ``SEARCH_PAGE_SIZE`` (once per file: FTS5 stores it)."""
    row = c.execute("SELECT v FROM instance_search_config WHERE k = 'pgsz'").fetchone()
    if row is None or row[0] != SEARCH_PAGE_SIZE:
        c.execute(
            "INSERT INTO instance_search (instance_search, rank) VALUES ('pgsz', ?)",
            (SEARCH_PAGE_SIZE,),
        )


def _has_table(c: sqlite3.Connection, name: str) -> bool:
    found = c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return found.fetchone() is not None


def _statements(sql: str) -> list[str]:
    """The statements of a migration, one by one (a trigger's body holds several ``;``)."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines():
        if line.lstrip().startswith("--"):
            continue
        pending += line + "\n"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


def _instance(row: Sequence[Any]) -> InstanceRow:
    return InstanceRow(*row)


def _instances_by_id(c: sqlite3.Connection, ids: Sequence[str]) -> list[InstanceRow]:
    rows: list[InstanceRow] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        sql = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id IN ({','.join('?' * len(chunk))})"
        rows.extend(_instance(r) for r in c.execute(sql, chunk))
    return rows


def _step(row: Sequence[Any]) -> StepRow:
    return StepRow(*row)


def _one_instance(c: sqlite3.Connection, instance_id: str) -> InstanceRow | None:
    row = c.execute(
        f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id=?", (instance_id,)
    ).fetchone()
    return None if row is None else _instance(row)


def _require(c: sqlite3.Connection, instance_id: str) -> InstanceRow:
    row = _one_instance(c, instance_id)
    if row is None:
        raise InstanceNotFoundError(instance_id)
    return row


def _steps_of(c: sqlite3.Connection, instance_id: str) -> list[StepRow]:
    sql = f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_id=? ORDER BY seq"
    return [_step(r) for r in c.execute(sql, (instance_id,))]


def _keep_logs(c: sqlite3.Connection, instance_id: str, logs: list[LogRow]) -> None:
    c.executemany(
        "INSERT INTO logs (instance_id, run, line, at, level, step, step_count, message, fields) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (instance_id, r.run, r.line, r.at, r.level, r.step, r.step_count, r.message, r.fields)
            for r in logs
        ],
    )
    c.execute(
        "DELETE FROM logs WHERE instance_id=? AND seq <= (SELECT seq FROM logs "
        "WHERE instance_id=? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (instance_id, instance_id, LOG_LIMIT),
    )


def _waiting_steps(c: sqlite3.Connection, ids: list[str]) -> list[StepRow]:
    rows: list[StepRow] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        sql = (
            f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_id IN "
            f"({','.join('?' * len(chunk))}) AND status='waiting' ORDER BY instance_id, seq"
        )
        rows.extend(_step(r) for r in c.execute(sql, chunk))
    return rows


def _due(c: sqlite3.Connection, now: float, limit: int, since: float | None) -> list[Any]:
    """The instances a claim of ``limit`` takes: ``newest_share`` of them the most recently
    due, the rest the longest due (see ``Store.claim``), in order of due time; only those due
    at or after ``since`` when given."""
    low = float("-inf") if since is None else since
    newest = c.execute(DUE_NEWEST, (now, low, newest_share(limit, now))).fetchall()
    taken = {row[1] for row in newest}
    oldest = c.execute(DUE, (now, low, limit)).fetchall()
    rest = [row for row in oldest if row[1] not in taken][: limit - len(newest)]
    return sorted(rest + newest, key=lambda row: (row[12], row[0]))


def _next_wake_at(
    c: sqlite3.Connection,
    limits: Sequence[ConcurrencyLimit] = (),
    now: float | None = None,
    since: float | None = None,
) -> float | None:
    if limits and now is not None and since is None:
        row = c.execute(NEXT_WAKE_LIMITED, (_limits_json(limits), now)).fetchone()
    else:
        low = float("-inf") if since is None else since
        row = c.execute(NEXT_WAKE, (low,)).fetchone()
    return None if row[0] is None else float(row[0])


def _limits_json(limits: Sequence[ConcurrencyLimit]) -> str:
    return json.dumps([[limit.workflow, limit.limit, limit.keyed] for limit in limits])


class Fenced(NamedTuple):
    """What a fenced write reads of the instance whose lease it holds."""

    status: Status
    parent_id: str | None
    crash_count: int
    version: str | None
    wake_at: float | None


def _fence(c: sqlite3.Connection, instance_id: str, token: str) -> Fenced:
    """The instance's status, parent, crash count, version and wake time, if ``token`` holds
    its lease."""
    row = c.execute(
        "SELECT lease_token, status, parent_id, crash_count, version, wake_at FROM instances "
        "WHERE id=?",
        (instance_id,),
    ).fetchone()
    if row is None or row[0] != token:
        raise LeaseLostError(instance_id)
    return Fenced(*row[1:])


def _upsert_steps(c: sqlite3.Connection, steps: Sequence[StepRow]) -> None:
    c.executemany(
        UPSERT_STEP,
        [
            (
                s.instance_id,
                s.name,
                s.count,
                s.seq,
                s.kind,
                s.status,
                s.attempts,
                s.started_at,
                s.finished_at,
                s.wake_at,
                s.input,
                s.output,
                s.error,
                s.detail,
            )
            for s in steps
        ],
    )


def _with_output(step: StepRow, payload: str) -> StepRow:
    from dataclasses import replace

    return replace(step, output=payload, status="complete")


def _apply(c: sqlite3.Connection, t: Transition, now: float) -> WriteResult[Status]:
    fenced = _fence(c, t.instance_id, t.token)
    if t.logs:
        _keep_logs(c, t.instance_id, t.logs)
    if t.steps:
        _upsert_steps(c, t.steps)
    if t.status is None and not (t.children or t.release or t.output or t.error):
        # A journal entry mid-run: the step row is the whole write (one row, one commit).
        if (fenced.crash_count and t.steps) or (fenced.version is None and t.version):
            c.execute(
                "UPDATE instances SET crash_count=0, version=coalesce(version, ?) WHERE id=?",
                (t.version, t.instance_id),
            )
        return WriteResult(fenced.status)
    if t.children:
        c.executemany(
            INSERT_INSTANCE,
            [
                (
                    i.id,
                    i.workflow,
                    i.params,
                    i.version,
                    i.parent_id,
                    i.created_at,
                    now,
                    now,
                    None,
                    i.concurrency_key,
                )
                for i in t.children
            ],
        )
    state = State(fenced.status, held=True)
    ready = t.status == "waiting" and (
        _has_pending_event(c, t.instance_id, t.wake_on_events)
        or _has_ended_child(c, t.wake_on_children)
    )
    outcome = decide(t.instance_id, state, commit_move(t.status, ready))
    status = next_status(state, outcome)
    release = releases(outcome, t.release)
    wake_at = resolve_wake_at(
        state, outcome, current=fenced.wake_at, now=now, asked=t.wake_at, asked_release=t.release
    )
    c.execute(
        "UPDATE instances SET status=?, wake_at=?, "
        "updated_at=?, output=coalesce(?, output), error=coalesce(?, error), "
        "version=coalesce(version, ?), crash_count=CASE WHEN ? THEN 0 ELSE crash_count END, "
        "control=CASE WHEN ? THEN NULL ELSE control END, "
        "lease_owner=CASE WHEN ? THEN NULL ELSE lease_owner END, "
        "lease_token=CASE WHEN ? THEN NULL ELSE lease_token END WHERE id=?",
        (
            status,
            wake_at,
            now,
            t.output,
            t.error,
            t.version,
            bool(t.steps),
            outcome.control == "clear",
            release,
            release,
            t.instance_id,
        ),
    )
    woke = outcome.wake_parent and _wake_parent(c, t.instance_id, fenced.parent_id, now)
    return WriteResult(status, wake_workers=outcome.notify or woke or bool(t.children))


def _insert_new(
    c: sqlite3.Connection, instances: Sequence[NewInstance], handoff: Handoff | None
) -> tuple[dict[str, InstanceRow], dict[str, Claim]]:
    """Insert the instances whose ids are not stored yet, the first ``handoff.limit`` of them
    already claimed by ``handoff``'s worker (one statement each, not an insert then a claim);
    the rows stored and those claims, by id. They have no steps yet."""
    stored: dict[str, InstanceRow] = {}
    claims: dict[str, Claim] = {}
    status, wake_at = _claimed_state(handoff) if handoff is not None else ("queued", None)
    for i in instances:
        if handoff is not None and len(claims) < handoff.limit:
            token = uuid.uuid4().hex
            rows = c.execute(
                INSERT_CLAIMED,
                (i.id, i.workflow, status, i.params, i.version, i.parent_id, i.created_at,
                 handoff.now, wake_at, i.retention, i.concurrency_key, handoff.owner, token),
            ).fetchall()  # fmt: skip
            if rows:
                stored[i.id] = _instance(rows[0])
                claims[i.id] = Claim(stored[i.id], [], token, False)
            continue
        rows = c.execute(
            INSERT_RETURNING,
            (i.id, i.workflow, i.params, i.version, i.parent_id, i.created_at, i.created_at,
             i.created_at, i.retention, i.concurrency_key),
        ).fetchall()  # fmt: skip
        if rows:
            stored[i.id] = _instance(rows[0])
    return stored, claims


def _claimed_state(handoff: Handoff) -> tuple[str, float | None]:
    """The status and wake time of a new instance claimed by ``handoff``'s worker, by the
    same state table as a claim."""
    state = state_of("queued", None)
    outcome = decide("(new)", state, "claim")
    wake_at = resolve_wake_at(
        state, outcome, current=None, now=handoff.now, lease_until=handoff.lease_until
    )
    return next_status(state, outcome), wake_at


def _claim_row(
    c: sqlite3.Connection, previous: InstanceRow, owner: str, now: float, lease_until: float
) -> Claim:
    """Claim the runnable instance ``previous`` for ``owner`` under a new lease token."""
    token = uuid.uuid4().hex
    state = state_of(previous.status, previous.lease_owner)
    outcome = decide(previous.id, state, "claim")
    crashed = outcome.crash
    crashes = previous.crashes
    if crashed:
        history: list[object] = json.loads(crashes) if crashes else []
        history.append({"worker": previous.lease_owner, "lease_expired_at": previous.wake_at})
        crashes = json.dumps(history[-20:])
    wake_at = resolve_wake_at(
        state, outcome, current=previous.wake_at, now=now, lease_until=lease_until
    )
    c.execute(
        "UPDATE instances SET status=?, lease_owner=?, lease_token=?, "
        "wake_at=?, updated_at=?, crash_count=crash_count+?, crashes=?, runs=runs+1 "
        "WHERE id=?",
        (next_status(state, outcome), owner, token, wake_at, now, int(crashed), crashes,
         previous.id),
    )
    return Claim(_require(c, previous.id), _steps_of(c, previous.id), token, crashed)


def _wake_at(state: State, outcome: Outcome, row: InstanceRow, now: float) -> float | None:
    """The ``wake_at`` of ``row`` after a control move's ``outcome``."""
    return resolve_wake_at(state, outcome, current=row.wake_at, now=now)


def _awaits(c: sqlite3.Connection, instance_id: str, kind: str, key: str, value: str) -> bool:
    """Whether a waiting step of ``kind`` of the instance names ``value`` (at ``key`` of its
    detail): the event type or the child it waits for."""
    return (
        c.execute(
            "SELECT 1 FROM steps WHERE instance_id=? AND kind=? AND status='waiting' "
            "AND json_extract(detail, ?)=? LIMIT 1",
            (instance_id, kind, key, value),
        ).fetchone()
        is not None
    )


def _has_pending_event(c: sqlite3.Connection, instance_id: str, types: Sequence[str]) -> bool:
    if not types:
        return False
    marks = ",".join("?" * len(types))
    return (
        c.execute(
            "SELECT 1 FROM events WHERE instance_id=? AND consumed_by IS NULL "
            f"AND type IN ({marks}) LIMIT 1",
            (instance_id, *types),
        ).fetchone()
        is not None
    )


def _has_ended_child(c: sqlite3.Connection, child_ids: Sequence[str]) -> bool:
    if not child_ids:
        return False
    marks = ",".join("?" * len(child_ids))
    return (
        c.execute(
            f"SELECT 1 FROM instances WHERE id IN ({marks}) "
            "AND status IN ('complete', 'errored', 'terminated') LIMIT 1",
            list(child_ids),
        ).fetchone()
        is not None
    )


def _wake_parent(c: sqlite3.Connection, child_id: str, parent_id: str | None, now: float) -> bool:
    """Make the parent runnable now if it is waiting for this child (``ctx.parallel``);
    whether workers should look."""
    if parent_id is None:
        return False
    parent = _one_instance(c, parent_id)
    if parent is None or not _awaits(c, parent_id, "child", "$.child_id", child_id):
        return False
    state = state_of(parent.status, parent.lease_owner)
    outcome = decide(parent_id, state, "child_ended")
    if outcome.wake != "keep":
        c.execute(
            "UPDATE instances SET wake_at=? WHERE id=?",
            (_wake_at(state, outcome, parent, now), parent_id),
        )
    return outcome.notify


def _terminate_tree(c: sqlite3.Connection, instance_id: str, now: float, outcome: Outcome) -> None:
    """Apply a terminate ``outcome`` (at once, or queued to compensate) to the instance and,
    depth first, to each of its descendants that has not ended (a stack, not recursion: a
    chain of children may be thousands deep)."""
    stack = [instance_id]
    while stack:
        current = stack.pop()
        row = _require(c, current)
        state = state_of(row.status, row.lease_owner)
        c.execute(
            "UPDATE instances SET status=?, control=?, wake_at=?, lease_owner=NULL, "
            "lease_token=NULL, updated_at=? WHERE id=?",
            (
                next_status(state, outcome),
                next_control(row.control, outcome),
                _wake_at(state, outcome, row, now),
                now,
                current,
            ),
        )
        if not outcome.tree:
            return
        children = c.execute(
            "SELECT id FROM instances WHERE parent_id=? "
            "AND status NOT IN ('complete', 'errored', 'terminated')",
            (current,),
        ).fetchall()
        stack.extend(child_id for (child_id,) in reversed(children))
