"""The embedded store: one SQLite file in WAL mode, shared by the worker processes of a machine.

Writes go through one thread per process that commits them in groups (``sqlite_writer``);
reads use their own connection, which WAL lets run beside the writer. Commits are durable
(``synchronous=FULL``): a journaled step survives a crash of the process or the machine.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

from framework.errors import (
    InstanceNotFoundError,
    InstanceStateError,
    LeaseLostError,
    StoreError,
    UnknownStepError,
)
from framework.store.base import (
    TERMINAL,
    Claim,
    Created,
    InstanceRow,
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
)
from framework.store.migrations import migrations
from framework.store.sqlite_writer import SQLiteWriter, WriteResult
from framework.store.wakeup import WakeupChannel

T = TypeVar("T")
BUSY_TIMEOUT = 15.0
"""Seconds a write waits for another process's lock (``sqlite:///x.db?timeout=5``)."""
INSTANCE_COLUMNS = (
    "seq, id, workflow, status, params, output, error, version, parent_id, generation, "
    "created_at, updated_at, wake_at, lease_owner, crash_count, crashes, control"
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
ID_CHUNK = 500
"""Ids per ``IN (...)`` query (SQLite limits the parameters of one statement)."""
INSERT_INSTANCE = (
    "INSERT INTO instances (id, workflow, status, params, version, parent_id, created_at, "
    "updated_at, wake_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)


class SQLiteStore:
    """The Store protocol on a SQLite file."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        location, _, query = url.removeprefix("sqlite:///").partition("?")
        self.path = Path(location)
        options = parse_qs(query)
        self.busy_timeout = float(options.get("timeout", [BUSY_TIMEOUT])[0])
        self._wakeup = WakeupChannel(self.path)
        self._writer = self._new_writer()
        self._reader: ThreadPoolExecutor | None = self._new_reader()
        self._reader_local = threading.local()
        self._closing = threading.Event()  # tells a connect still waiting for a lock to give up
        self._opened = False

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
        return SQLiteWriter(self._connect_writer, self._wakeup.notify, self._store_error, name)

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

    async def create_instances(self, instances: Sequence[NewInstance]) -> list[Created]:
        check_distinct_ids(instances)

        def write(c: sqlite3.Connection) -> WriteResult:
            # Inside the write transaction (BEGIN IMMEDIATE): no other writer runs meanwhile.
            existing = {row.id: row for row in _instances_by_id(c, [i.id for i in instances])}
            check_same_workflow(instances, existing)
            fresh = [i for i in instances if i.id not in existing]
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
                        i.created_at,
                        i.created_at,
                    )
                    for i in fresh
                ],
            )
            stored = {row.id: row for row in _instances_by_id(c, [i.id for i in fresh])}
            stored.update(existing)
            created = [Created(stored[i.id], i.id not in existing) for i in instances]
            return WriteResult(created, wake_workers=bool(fresh))

        return list(await self._writer.write(write)) if instances else []

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        return await self._read(lambda c: _one_instance(c, instance_id))

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRow]:
        ids = list(instance_ids)
        return await self._read(lambda c: _instances_by_id(c, ids)) if ids else []

    async def list_instances(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        search: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        clauses: list[str] = []
        args: list[object] = []
        for column, value in (("workflow", workflow), ("status", status), ("parent_id", parent_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if search:
            clauses.append("id LIKE ? ESCAPE '\\'")
            args.append(contains_pattern(search))
        if cursor is not None:
            clauses.append("seq < ?")
            args.append(cursor_seq(cursor))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {INSTANCE_COLUMNS} FROM instances {where} ORDER BY seq DESC LIMIT ?"

        def read(c: sqlite3.Connection) -> list[InstanceRow]:
            return [_instance(r) for r in c.execute(sql, [*args, limit + 1])]

        rows = await self._read(read)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, str(rows[-1].seq) if more and rows else None)

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        def read(c: sqlite3.Connection) -> dict[str, dict[str, int]]:
            counts: dict[str, dict[str, int]] = {}
            sql = "SELECT workflow, status, count(*) FROM instances GROUP BY workflow, status"
            for workflow, status, number in c.execute(sql):
                counts.setdefault(workflow, {})[status] = number
            return counts

        return await self._read(read)

    async def list_steps(self, instance_id: str) -> list[StepRow]:
        return await self._read(lambda c: _steps_of(c, instance_id))

    # Control.

    async def pause(self, instance_id: str, now: float) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult:
            row = _require(c, instance_id)
            if row.status not in ("queued", "waiting", "running"):
                raise InstanceStateError(f"instance {instance_id!r} is {row.status}: cannot pause")
            # A held instance keeps its lease expiry as wake_at, so a dead holder is noticed.
            c.execute(
                "UPDATE instances SET status='paused', updated_at=?, "
                "wake_at=CASE WHEN lease_owner IS NULL THEN NULL ELSE wake_at END WHERE id=?",
                (now, instance_id),
            )
            return WriteResult(_require(c, instance_id))

        return await self._writer.write(write)  # type: ignore[no-any-return]

    async def resume(self, instance_id: str, now: float) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult:
            row = _require(c, instance_id)
            if row.status != "paused":
                raise InstanceStateError(f"instance {instance_id!r} is {row.status}: not paused")
            if row.lease_owner is None:
                c.execute(
                    "UPDATE instances SET status='queued', wake_at=?, updated_at=?, error=NULL "
                    "WHERE id=?",
                    (now, now, instance_id),
                )
            else:  # still held by the worker that was running it when paused
                c.execute(
                    "UPDATE instances SET status='running', updated_at=? WHERE id=?",
                    (now, instance_id),
                )
            return WriteResult(_require(c, instance_id), wake_workers=True)

        return await self._writer.write(write)  # type: ignore[no-any-return]

    async def terminate(
        self, instance_id: str, now: float, compensate: bool = False
    ) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult:
            row = _require(c, instance_id)
            if row.status in TERMINAL:
                raise InstanceStateError(
                    f"instance {instance_id!r} is already {row.status}: cannot terminate"
                )
            _terminate_tree(c, instance_id, now, compensate)
            woke = compensate or _wake_parent(c, instance_id, row.parent_id, now)
            return WriteResult(_require(c, instance_id), wake_workers=woke)

        return await self._writer.write(write)  # type: ignore[no-any-return]

    async def restart(
        self, instance_id: str, now: float, from_step: tuple[str, int] | None
    ) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult:
            _require(c, instance_id)
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
                "UPDATE instances SET status='queued', wake_at=?, updated_at=?, output=NULL, "
                "error=NULL, lease_owner=NULL, lease_token=NULL, crash_count=0, control=NULL, "
                "generation=generation+1 WHERE id=?",
                (now, now, instance_id),
            )
            return WriteResult(_require(c, instance_id), wake_workers=True)

        return await self._writer.write(write)  # type: ignore[no-any-return]

    async def send_event(
        self, instance_id: str, event_type: str, payload: str, now: float
    ) -> InstanceRow:
        def write(c: sqlite3.Connection) -> WriteResult:
            row = _require(c, instance_id)
            if row.status in TERMINAL:
                raise InstanceStateError(
                    f"instance {instance_id!r} is {row.status}: it takes no more events"
                )
            c.execute(
                "INSERT INTO events (instance_id, type, payload, created_at) VALUES (?,?,?,?)",
                (instance_id, event_type, payload, now),
            )
            woke = c.execute(
                "UPDATE instances SET wake_at=?, updated_at=? WHERE id=? AND status='waiting' "
                "AND EXISTS (SELECT 1 FROM steps WHERE instance_id=? AND kind='event' "
                "AND status='waiting' AND json_extract(detail, '$.type')=?)",
                (now, now, instance_id, instance_id, event_type),
            ).rowcount
            return WriteResult(_require(c, instance_id), wake_workers=woke > 0)

        return await self._writer.write(write)  # type: ignore[no-any-return]

    # Workers.

    async def claim(self, owner: str, limit: int, now: float, lease_until: float) -> list[Claim]:
        def any_due(c: sqlite3.Connection) -> bool:
            due = _next_wake_at(c)
            return due is not None and due <= now

        def write(c: sqlite3.Connection) -> WriteResult:
            due = c.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE wake_at <= ? "
                "AND status IN ('queued', 'waiting', 'running') ORDER BY wake_at LIMIT ?",
                (now, limit),
            ).fetchall()
            claims: list[Claim] = []
            for previous in map(_instance, due):
                token = uuid.uuid4().hex
                crashed = previous.status == "running"
                crashes = previous.crashes
                if crashed:
                    history: list[object] = json.loads(crashes) if crashes else []
                    history.append(
                        {"worker": previous.lease_owner, "lease_expired_at": previous.wake_at}
                    )
                    crashes = json.dumps(history[-20:])
                c.execute(
                    "UPDATE instances SET status='running', lease_owner=?, lease_token=?, "
                    "wake_at=?, updated_at=?, crash_count=crash_count+?, crashes=? WHERE id=?",
                    (owner, token, lease_until, now, int(crashed), crashes, previous.id),
                )
                claims.append(
                    Claim(_require(c, previous.id), _steps_of(c, previous.id), token, crashed)
                )
            return WriteResult(claims)

        claims = await self._writer.write(
            write, durable=False, needed=any_due, otherwise=[], may_inline=True
        )
        return list(claims)

    async def heartbeat(
        self, owner: str, instance_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        if not instance_ids:
            return set()

        def write(c: sqlite3.Connection) -> WriteResult:
            marks = ",".join("?" * len(instance_ids))
            held = c.execute(
                f"UPDATE instances SET wake_at = CASE WHEN status IN ('running', 'paused') "
                f"THEN ? ELSE wake_at END WHERE lease_owner=? AND id IN ({marks}) RETURNING id",
                (lease_until, owner, *instance_ids),
            ).fetchall()
            return WriteResult({row[0] for row in held})

        return set(await self._writer.write(write, durable=False))

    async def apply(self, transition: Transition, now: float) -> Status:
        return await self._writer.write(lambda c: _apply(c, transition, now), may_inline=True)  # type: ignore[no-any-return]

    async def take_event(
        self, token: str, instance_id: str, event_type: str, step: StepRow, now: float
    ) -> TakenEvent | None:
        def write(c: sqlite3.Connection) -> WriteResult:
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

        return await self._writer.write(write, may_inline=True)  # type: ignore[no-any-return]

    async def next_wake_at(self) -> float | None:
        return await self._read(_next_wake_at)

    def note_load(self, running: int) -> None:
        self._writer.inline = running <= 1

    async def wait_for_work(self, timeout: float) -> None:
        await self._wakeup.wait(timeout)

    async def prune(self, statuses: Sequence[str], before: float, batch: int) -> int:
        def write(c: sqlite3.Connection) -> WriteResult:
            marks = ",".join("?" * len(statuses))
            ids = [
                row[0]
                for row in c.execute(
                    f"SELECT id FROM instances AS i WHERE status IN ({marks}) AND updated_at < ? "
                    "AND NOT EXISTS (SELECT 1 FROM instances AS p WHERE p.id = i.parent_id "
                    "AND p.status NOT IN ('complete', 'errored', 'terminated')) LIMIT ?",
                    (*statuses, before, batch),
                )
            ]
            for table, column in (
                ("steps", "instance_id"),
                ("events", "instance_id"),
                ("instances", "id"),
            ):
                c.executemany(f"DELETE FROM {table} WHERE {column}=?", [(i,) for i in ids])
            return WriteResult(len(ids))

        return int(await self._writer.write(write)) if statuses else 0

    # Studio login sessions.

    async def create_session(self, session: str, now: float, expires_at: float) -> None:
        def write(c: sqlite3.Connection) -> WriteResult:
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
        def write(c: sqlite3.Connection) -> WriteResult:
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
                if not _is_busy(exc) or time.monotonic() + pause > deadline:
                    raise
            if self._closing.wait(pause):
                raise StoreError(f"database {self.path}: closed while opening")
            pause = min(pause * 2, 0.05)

    def _migrate(self, c: sqlite3.Connection) -> WriteResult:
        current = c.execute("PRAGMA user_version").fetchone()[0]
        known = migrations("sqlite")
        if current > len(known):
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this fw knows "
                f"({len(known)}); upgrade fw"
            )
        for migration in known[current:]:
            for statement in _statements(migration.sql):
                c.execute(statement)
            c.execute(f"PRAGMA user_version={migration.version}")
        return WriteResult(None)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_pool(), self._read_in_thread, fn)

    def _read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._reader_pool().submit(self._read_in_thread, fn).result()

    def _reader_pool(self) -> ThreadPoolExecutor:
        if self._reader is None:
            raise StoreError(f"the SQLite store at {self.path} is closed")
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
        if _is_busy(exc):
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


def _is_busy(exc: BaseException) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


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


def _next_wake_at(c: sqlite3.Connection) -> float | None:
    row = c.execute(
        "SELECT min(wake_at) FROM instances WHERE wake_at IS NOT NULL "
        "AND status IN ('queued', 'waiting', 'running')"
    ).fetchone()
    return None if row[0] is None else float(row[0])


def _fence(
    c: sqlite3.Connection, instance_id: str, token: str
) -> tuple[str, str | None, int, str | None]:
    """The instance's status, parent, crash count and version, if ``token`` holds its lease."""
    row = c.execute(
        "SELECT status, lease_token, parent_id, crash_count, version FROM instances WHERE id=?",
        (instance_id,),
    ).fetchone()
    if row is None or row[1] != token:
        raise LeaseLostError(instance_id)
    return row[0], row[2], row[3], row[4]


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


def _apply(c: sqlite3.Connection, t: Transition, now: float) -> WriteResult:
    current, parent_id, crash_count, version = _fence(c, t.instance_id, t.token)
    if t.steps:
        _upsert_steps(c, t.steps)
    if t.status is None and not (t.children or t.release or t.output or t.error):
        # A journal entry mid-run: the step row is the whole write (one row, one commit).
        if (crash_count and t.steps) or (version is None and t.version):
            c.execute(
                "UPDATE instances SET crash_count=0, version=coalesce(version, ?) WHERE id=?",
                (t.version, t.instance_id),
            )
        return WriteResult(current)
    if t.children:
        c.executemany(
            INSERT_INSTANCE,
            [
                (i.id, i.workflow, i.params, i.version, i.parent_id, i.created_at, now, now)
                for i in t.children
            ],
        )
    status, wake_at, wake = _next_state(c, t, current, now)
    release = t.release or status in TERMINAL
    keep_lease_expiry = not release and status in ("running", "paused")
    c.execute(
        "UPDATE instances SET status=?, wake_at=CASE WHEN ? THEN wake_at ELSE ? END, "
        "updated_at=?, output=coalesce(?, output), error=coalesce(?, error), "
        "version=coalesce(version, ?), crash_count=CASE WHEN ? THEN 0 ELSE crash_count END, "
        "control=CASE WHEN ? THEN NULL ELSE control END, "
        "lease_owner=CASE WHEN ? THEN NULL ELSE lease_owner END, "
        "lease_token=CASE WHEN ? THEN NULL ELSE lease_token END WHERE id=?",
        (
            status,
            keep_lease_expiry,
            wake_at,
            now,
            t.output,
            t.error,
            t.version,
            bool(t.steps),
            status in TERMINAL,
            release,
            release,
            t.instance_id,
        ),
    )
    if status in TERMINAL:
        wake = _wake_parent(c, t.instance_id, parent_id, now) or wake
    return WriteResult(status, wake_workers=wake or bool(t.children))


def _next_state(
    c: sqlite3.Connection, t: Transition, current: str, now: float
) -> tuple[str, float | None, bool]:
    """The status and wake time after ``t``, and whether other workers should look."""
    if t.status is None:
        return current, None, False
    if current == "paused" and t.status not in TERMINAL:
        return "paused", None, False
    if t.status == "queued":
        return "queued", t.wake_at if t.wake_at is not None else now, True
    if t.status == "waiting" and (
        _has_pending_event(c, t.instance_id, t.wake_on_events)
        or _has_ended_child(c, t.wake_on_children)
    ):
        return "waiting", now, True
    return t.status, t.wake_at, False


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
    """Make the parent runnable now if it is waiting for this child (``ctx.parallel``)."""
    if parent_id is None:
        return False
    woke = c.execute(
        "UPDATE instances SET wake_at=? WHERE id=? AND status='waiting' AND EXISTS ("
        "SELECT 1 FROM steps WHERE instance_id=? AND kind='child' AND status='waiting' "
        "AND json_extract(detail, '$.child_id')=?)",
        (now, parent_id, parent_id, child_id),
    ).rowcount
    return woke > 0


def _terminate_tree(c: sqlite3.Connection, instance_id: str, now: float, compensate: bool) -> None:
    if compensate:  # a worker compensates, then ends it
        c.execute(
            "UPDATE instances SET status='queued', control='terminate', wake_at=?, "
            "lease_owner=NULL, lease_token=NULL, updated_at=? WHERE id=?",
            (now, now, instance_id),
        )
    else:
        c.execute(
            "UPDATE instances SET status='terminated', control=NULL, wake_at=NULL, "
            "lease_owner=NULL, lease_token=NULL, updated_at=? WHERE id=?",
            (now, instance_id),
        )
    children = c.execute(
        "SELECT id FROM instances WHERE parent_id=? "
        "AND status NOT IN ('complete', 'errored', 'terminated')",
        (instance_id,),
    ).fetchall()
    for (child_id,) in children:
        _terminate_tree(c, child_id, now, compensate)
