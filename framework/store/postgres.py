"""The scale-out store: PostgreSQL, shared by any number of workers on any number of machines.

Claims take due instances with ``FOR UPDATE SKIP LOCKED``, so no two workers ever hold one
instance, and every write a running instance makes is fenced on its lease token. The hot
paths are PL/pgSQL functions from the schema (``fw_claim_v2``, ``fw_apply_v2``,
``fw_take_event``): one round trip and one transaction each. Wake-ups travel by
``LISTEN/NOTIFY`` (``postgres_listener``); connections, retries and error messages live in
``postgres_connection``.

Replays after a lost connection: an operation whose commit outcome is unknown is retried only
when running it twice is harmless. ``claim`` tags its leases with a per-call batch id and, on a
retry, first collects what the lost call claimed. ``apply`` is fenced on the lease token:
replaying a transition that did commit rewrites the same journal rows and instance fields
(children are inserted with ``ON CONFLICT DO NOTHING``); if it released the lease, the replay
finds no lease and the store reports the status that commit left, recognised by its
``updated_at``. ``take_event`` returns the event its step already consumed rather than
taking a second one. ``create_instances`` inserts with ``ON CONFLICT``, so a replay stores
nothing twice; it reports as created the rows identical to those it asked for (same params
and creation time), which are the lost try's. Control operations (pause, resume, terminate,
restart, send_event) are not replayed: a lost connection during one is a ``StoreError`` that
says the outcome is unknown.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, LiteralString

import psycopg

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
from framework.store.postgres_connection import Connection, Database, PostgresSettings
from framework.store.postgres_listener import CHANNEL, Listener

MIGRATION_LOCK = 0x66770001  # pg_advisory_xact_lock key: one migrating process at a time
INSTANCE_COLUMNS = (
    "seq, id, workflow, status, params, output, error, version, parent_id, generation, "
    "created_at, updated_at, wake_at, lease_owner, crash_count, crashes, control"
)
ROW_WIDTH = 17
STEP_COLUMNS = (
    "instance_id, name, count, seq, kind, status, attempts, started_at, finished_at, wake_at, "
    "input, output, error, detail"
)
STEPS_JSON = (
    "(SELECT json_agg(json_build_array(s.name, s.count, s.seq, s.kind, s.status, s.attempts, "
    "s.started_at, s.finished_at, s.wake_at, s.input, s.output, s.error, s.detail) "
    "ORDER BY s.seq) FROM steps s WHERE s.instance_id = i.id)"
)
CREATE = (  # an id of another workflow comes back "updated" (to itself), for the check
    "WITH new AS (INSERT INTO instances (id, workflow, status, params, version, parent_id, "
    "created_at, updated_at, wake_at) "
    "SELECT n.id, n.workflow, 'queued', n.params, n.version, n.parent_id, n.created_at, "
    "n.created_at, n.created_at FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::float8[]) AS n(id, workflow, params, version, parent_id, created_at) "
    "ON CONFLICT (id) DO UPDATE SET workflow = instances.workflow "
    f"WHERE instances.workflow <> excluded.workflow RETURNING {INSTANCE_COLUMNS}) "
    f"SELECT {INSTANCE_COLUMNS}, true FROM new UNION ALL SELECT {INSTANCE_COLUMNS}, false "
    "FROM instances WHERE id = ANY(%s::text[]) AND id NOT IN (SELECT id FROM new)"
)
APPLY = "SELECT fw_apply_v2(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
TAKE_EVENT = (
    "SELECT r_held, r_payload, r_created_at FROM fw_take_event("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
CLAIM = "SELECT * FROM fw_claim_v2(%s, %s, %s, %s, %s)"
RECLAIM = (
    f"SELECT {', '.join('i.' + c.strip() for c in INSTANCE_COLUMNS.split(','))}, i.lease_token, "
    f"false, {STEPS_JSON} FROM instances i WHERE i.lease_owner = %s AND i.lease_token LIKE %s"
)
TREE = (  # the instance and, depth first, its descendants that have not ended
    "WITH RECURSIVE tree(id) AS (SELECT %s::text UNION SELECT c.id FROM instances c "
    "JOIN tree t ON c.parent_id = t.id "
    "WHERE c.status NOT IN ('complete', 'errored', 'terminated')) "
)
TREE_ROWS = (
    "WHERE id IN (SELECT id FROM tree) "
    "AND (id = %s OR status NOT IN ('complete', 'errored', 'terminated'))"
)
TERMINATE_TREE = (
    f"{TREE}UPDATE instances SET status = 'terminated', control = NULL, wake_at = NULL, "
    f"lease_owner = NULL, lease_token = NULL, updated_at = %s {TREE_ROWS}"
)
COMPENSATE_TREE = (  # a worker runs the compensation, then ends each one
    f"{TREE}UPDATE instances SET status = 'queued', control = 'terminate', wake_at = %s, "
    f"lease_owner = NULL, lease_token = NULL, updated_at = %s {TREE_ROWS}"
)
NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"


class PostgresStore:
    """The Store protocol on a PostgreSQL database (``postgresql://...``; see docs/postgres.md
    for the URL's pool parameters)."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = PostgresSettings.from_url(url)
        self._db = Database(self.settings)
        self._listener = Listener(self._listen_connection, self.settings.display)
        self._opened = False

    # Lifecycle.

    async def open(self) -> None:
        if self._opened:
            return
        connection = await self._db.connect(autocommit=True)
        try:
            await migrate(connection, self.settings.display)
        finally:
            await connection.close()
        await self._db.open()
        self._opened = True

    async def close(self) -> None:
        await self._listener.close()
        await self._db.close()
        self._opened = False

    async def schema_version(self) -> int:
        """The schema version of the database (0 when it has none yet)."""
        return await self._db.run("reading the schema version", schema_version, replay_safe=True)

    # Instances.

    async def create_instances(self, instances: Sequence[NewInstance]) -> list[Created]:
        if not instances:
            return []
        check_distinct_ids(instances)
        ids = [i.id for i in instances]
        params = [
            ids, [i.workflow for i in instances], [i.params for i in instances],
            [i.version for i in instances], [i.parent_id for i in instances],
            [i.created_at for i in instances], ids,
        ]
        attempts = 0

        async def create(c: Connection) -> list[Created]:
            nonlocal attempts
            attempts += 1
            async with c.pipeline(), c.transaction():
                cursor = await c.execute(CREATE, params)
                found: dict[str, InstanceRow] = {}
                inserted: set[str] = set()
                for values in await cursor.fetchall():
                    row = _instance(values[:ROW_WIDTH])
                    found[row.id] = row
                    if values[ROW_WIDTH]:
                        inserted.add(row.id)
                missing = [i for i in ids if i not in found]
                if missing:  # committed meanwhile by a transaction our snapshot could not see
                    found.update((r.id, r) for r in await _instances_by_id(c, missing))
                check_same_workflow(instances, found)  # raising rolls the batch back
                outcomes = [_created(i, found, inserted, attempts > 1) for i in instances]
                if inserted:
                    await c.execute(NOTIFY)
            return outcomes

        return await self._db.run("creating instances", create, replay_safe=True)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        if _holds_nul(instance_id):
            return None

        async def read(c: Connection) -> InstanceRow | None:
            return await _one_instance(c, instance_id)

        return await self._db.run("reading an instance", read, replay_safe=True)

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRow]:
        instance_ids = [i for i in instance_ids if not _holds_nul(i)]
        if not instance_ids:
            return []

        async def read(c: Connection) -> list[InstanceRow]:
            return await _instances_by_id(c, list(instance_ids))

        return await self._db.run("reading instances", read, replay_safe=True)

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
        if _holds_nul(workflow, status, search, parent_id):
            return Page([], None)
        clauses: list[LiteralString] = []
        args: list[Any] = []
        filters: tuple[tuple[LiteralString, str | None], ...] = (
            ("workflow = %s", workflow), ("status = %s", status), ("parent_id = %s", parent_id)
        )
        for clause, value in filters:
            if value is not None:
                clauses.append(clause)
                args.append(value)
        if search:
            clauses.append("id ILIKE %s ESCAPE '\\'")
            args.append(contains_pattern(search))
        if cursor is not None:
            clauses.append("seq < %s")
            args.append(cursor_seq(cursor))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {INSTANCE_COLUMNS} FROM instances {where} ORDER BY seq DESC LIMIT %s"

        async def read(c: Connection) -> list[InstanceRow]:
            cur = await c.execute(query, [*args, limit + 1])
            return [_instance(r) for r in await cur.fetchall()]

        rows = await self._db.run("listing instances", read, replay_safe=True)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, str(rows[-1].seq) if more and rows else None)

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        async def read(c: Connection) -> dict[str, dict[str, int]]:
            cur = await c.execute(
                "SELECT workflow, status, count(*) FROM instances GROUP BY workflow, status"
            )
            counts: dict[str, dict[str, int]] = {}
            for workflow, status, number in await cur.fetchall():
                counts.setdefault(workflow, {})[status] = number
            return counts

        return await self._db.run("counting instances", read, replay_safe=True)

    async def list_steps(self, instance_id: str) -> list[StepRow]:
        if _holds_nul(instance_id):
            return []

        async def read(c: Connection) -> list[StepRow]:
            return await _steps_of(c, instance_id)

        return await self._db.run("reading steps", read, replay_safe=True)

    # Control.

    async def pause(self, instance_id: str, now: float) -> InstanceRow:
        async def pause(c: Connection) -> InstanceRow:
            # A held instance keeps its lease expiry as wake_at, so a dead holder is noticed.
            cur = await c.execute(
                "UPDATE instances SET status = 'paused', updated_at = %s, wake_at = CASE "
                "WHEN lease_owner IS NULL THEN NULL ELSE wake_at END WHERE id = %s "
                f"AND status IN ('queued', 'waiting', 'running') RETURNING {INSTANCE_COLUMNS}",
                [now, instance_id],
            )
            row = await cur.fetchone()
            if row is not None:
                return _instance(row)
            current = await _require(c, instance_id)
            raise InstanceStateError(f"instance {instance_id!r} is {current.status}: cannot pause")

        return await self._db.run("pausing an instance", pause, replay_safe=False)

    async def resume(self, instance_id: str, now: float) -> InstanceRow:
        async def resume(c: Connection) -> InstanceRow:
            cur = await c.execute(
                "WITH resumed AS (UPDATE instances SET "
                "status = CASE WHEN lease_owner IS NULL THEN 'queued' ELSE 'running' END, "
                "wake_at = CASE WHEN lease_owner IS NULL THEN %s ELSE wake_at END, "
                "error = CASE WHEN lease_owner IS NULL THEN NULL ELSE error END, "
                "updated_at = %s WHERE id = %s AND status = 'paused' "
                f"RETURNING {INSTANCE_COLUMNS}) "
                f"SELECT {INSTANCE_COLUMNS}, pg_notify('{CHANNEL}', '') FROM resumed",
                [now, now, instance_id],
            )
            row = await cur.fetchone()
            if row is not None:
                return _instance(row[:ROW_WIDTH])
            current = await _require(c, instance_id)
            raise InstanceStateError(f"instance {instance_id!r} is {current.status}: not paused")

        return await self._db.run("resuming an instance", resume, replay_safe=False)

    async def terminate(
        self, instance_id: str, now: float, compensate: bool = False
    ) -> InstanceRow:
        async def terminate(c: Connection) -> InstanceRow:
            row = await _require(c, instance_id, lock=True)
            if row.status in TERMINAL:
                raise InstanceStateError(
                    f"instance {instance_id!r} is already {row.status}: cannot terminate"
                )
            if compensate:
                await c.execute(COMPENSATE_TREE, [instance_id, now, now, instance_id])
                await c.execute(NOTIFY)
                return await _require(c, instance_id)
            await c.execute(TERMINATE_TREE, [instance_id, now, instance_id])
            if row.parent_id is not None:
                cur = await c.execute(
                    "SELECT fw_wake_parent(%s, %s, %s)", [instance_id, row.parent_id, now]
                )
                woke = await cur.fetchone()
                if woke is not None and woke[0]:
                    await c.execute(NOTIFY)
            return await _require(c, instance_id)

        return await self._db.run("terminating an instance", terminate, replay_safe=False)

    async def restart(
        self, instance_id: str, now: float, from_step: tuple[str, int] | None
    ) -> InstanceRow:
        async def restart(c: Connection) -> InstanceRow:
            await _require(c, instance_id, lock=True)
            first_seq = -1
            if from_step is not None:
                cur = await c.execute(
                    "SELECT seq FROM steps WHERE instance_id = %s AND name = %s AND count = %s",
                    [instance_id, *from_step],
                )
                found = await cur.fetchone()
                if found is None:
                    names = [s.name for s in await _steps_of(c, instance_id)]
                    raise UnknownStepError(instance_id, *from_step, names)
                first_seq = found[0]
            cur = await c.execute(
                "DELETE FROM steps WHERE instance_id = %s AND seq >= %s "
                "RETURNING name || '#' || count",
                [instance_id, first_seq],
            )
            dropped = [key for (key,) in await cur.fetchall()]
            if dropped:
                await c.execute(
                    "UPDATE events SET consumed_by = NULL WHERE instance_id = %s "
                    "AND consumed_by = ANY(%s::text[])",
                    [instance_id, dropped],
                )
            cur = await c.execute(
                "UPDATE instances SET status = 'queued', wake_at = %s, updated_at = %s, "
                "output = NULL, error = NULL, lease_owner = NULL, lease_token = NULL, "
                "crash_count = 0, control = NULL, generation = generation + 1 WHERE id = %s "
                f"RETURNING {INSTANCE_COLUMNS}",
                [now, now, instance_id],
            )
            restarted = _instance(await _fetch_one(cur))
            await c.execute(NOTIFY)
            return restarted

        return await self._db.run("restarting an instance", restart, replay_safe=False)

    async def send_event(
        self, instance_id: str, event_type: str, payload: str, now: float
    ) -> InstanceRow:
        async def send(c: Connection) -> InstanceRow:
            # Lock first: a transition to `waiting` either committed before (and the
            # statements below see its waiting step) or runs after (and sees the event).
            row = await _require(c, instance_id, lock=True)
            if row.status in TERMINAL:
                raise InstanceStateError(
                    f"instance {instance_id!r} is {row.status}: it takes no more events"
                )
            await c.execute(
                "INSERT INTO events (instance_id, type, payload, created_at) "
                "VALUES (%s, %s, %s, %s)",
                [instance_id, event_type, payload, now],
            )
            cur = await c.execute(
                "UPDATE instances SET wake_at = %s, updated_at = %s WHERE id = %s "
                "AND status = 'waiting' AND EXISTS (SELECT 1 FROM steps WHERE "
                "instance_id = %s AND kind = 'event' AND status = 'waiting' "
                f"AND detail::jsonb ->> 'type' = %s) RETURNING {INSTANCE_COLUMNS}",
                [now, now, instance_id, instance_id, event_type],
            )
            woken = await cur.fetchone()
            if woken is None:
                return row
            await c.execute(NOTIFY)
            return _instance(woken)

        return await self._db.run("sending an event", send, replay_safe=False)

    # Workers.

    async def claim(self, owner: str, limit: int, now: float, lease_until: float) -> list[Claim]:
        batch = uuid.uuid4().hex
        attempts = 0

        async def claim(c: Connection) -> list[Claim]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the last try may have claimed before its connection dropped
                cur = await c.execute(RECLAIM, [owner, f"{batch}:%"])
                recovered = await cur.fetchall()
                if recovered:
                    return [_claim(row) for row in recovered]
            cur = await c.execute(CLAIM, [owner, limit, now, lease_until, batch])
            return [_claim(row) for row in await cur.fetchall()]

        return await self._db.run("claiming instances", claim, replay_safe=True)

    async def heartbeat(
        self, owner: str, instance_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        if not instance_ids:
            return set()

        async def heartbeat(c: Connection) -> set[str]:
            cur = await c.execute(
                "UPDATE instances SET wake_at = CASE WHEN status IN ('running', 'paused') "
                "THEN %s ELSE wake_at END WHERE lease_owner = %s AND id = ANY(%s) RETURNING id",
                [lease_until, owner, list(instance_ids)],
            )
            return {row[0] for row in await cur.fetchall()}

        return await self._db.run("extending leases", heartbeat, replay_safe=True)

    async def apply(self, transition: Transition, now: float) -> Status:
        t = transition
        steps = list({(s.name, s.count): s for s in t.steps}.values())
        children = t.children
        params: list[Any] = [
            t.instance_id, t.token, now, t.status, t.wake_at, t.output, t.error, t.release,
            t.version, t.wake_on_events or None, t.wake_on_children or None,
            json.dumps([
                [s.name, s.count, s.seq, s.kind, s.status, s.attempts, s.started_at,
                 s.finished_at, s.wake_at, s.input, s.output, s.error, s.detail]
                for s in steps
            ]) if steps else None,
            json.dumps([
                [i.id, i.workflow, i.params, i.version, i.parent_id, i.created_at]
                for i in children
            ]) if children else None,
        ]
        attempts = 0

        async def apply(c: Connection) -> Status:
            nonlocal attempts
            attempts += 1
            cur = await c.execute(APPLY, params)
            status = (await _fetch_one(cur))[0]
            if status is not None:
                return status  # type: ignore[no-any-return]
            if attempts > 1:  # did the lost try commit, releasing the lease?
                row = await _one_instance(c, t.instance_id)
                if row is not None and row.lease_owner is None and row.updated_at == now:
                    return row.status
            raise LeaseLostError(t.instance_id)

        return await self._db.run("journaling a step", apply, replay_safe=True)

    async def take_event(
        self, token: str, instance_id: str, event_type: str, step: StepRow, now: float
    ) -> TakenEvent | None:
        params = [
            instance_id, token, event_type, now, step.name, step.count, step.seq, step.kind,
            step.attempts, step.started_at, step.finished_at, step.wake_at, step.input,
            step.error, step.detail,
        ]

        async def take(c: Connection) -> TakenEvent | None:
            cur = await c.execute(TAKE_EVENT, params)
            held, payload, created_at = await _fetch_one(cur)
            if not held:
                raise LeaseLostError(instance_id)
            return None if payload is None else TakenEvent(payload, created_at)

        return await self._db.run("taking an event", take, replay_safe=True)

    async def next_wake_at(self) -> float | None:
        async def read(c: Connection) -> float | None:
            cur = await c.execute(
                "SELECT min(wake_at) FROM instances WHERE wake_at IS NOT NULL "
                "AND status IN ('queued', 'waiting', 'running')"
            )
            value = (await _fetch_one(cur))[0]
            return None if value is None else float(value)

        return await self._db.run("reading the next wake time", read, replay_safe=True)

    def note_load(self, running: int) -> None:
        """Commits go through the pool whatever the load."""

    async def wait_for_work(self, timeout: float) -> None:
        await self._listener.wait(timeout)

    async def prune(self, statuses: Sequence[str], before: float, batch: int) -> int:
        if not statuses:
            return 0

        async def prune(c: Connection) -> int:
            cur = await c.execute(
                "WITH doomed AS (SELECT id FROM instances i WHERE status = ANY(%s::text[]) "
                "AND updated_at < %s AND NOT EXISTS (SELECT 1 FROM instances p "
                "WHERE p.id = i.parent_id AND p.status NOT IN ('complete', 'errored', "
                "'terminated')) ORDER BY seq LIMIT %s FOR UPDATE OF i SKIP LOCKED), "
                "gone_steps AS (DELETE FROM steps WHERE instance_id IN (SELECT id FROM doomed)), "
                "gone_events AS (DELETE FROM events WHERE instance_id IN (SELECT id FROM doomed)) "
                "DELETE FROM instances WHERE id IN (SELECT id FROM doomed)",
                [list(statuses), before, batch],
            )
            return max(cur.rowcount, 0)

        return await self._db.run("pruning instances", prune, replay_safe=True)

    # Studio login sessions.

    async def create_session(self, session: str, now: float, expires_at: float) -> None:
        async def create(c: Connection) -> None:
            await c.execute("DELETE FROM sessions WHERE expires_at <= %s", [now])
            await c.execute(
                "INSERT INTO sessions (id, created_at, expires_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                [session, now, expires_at],
            )

        await self._db.run("creating a session", create, replay_safe=True)

    async def session_active(self, session: str, now: float) -> bool:
        async def read(c: Connection) -> bool:
            cur = await c.execute(
                "SELECT 1 FROM sessions WHERE id = %s AND expires_at > %s", [session, now]
            )
            return await cur.fetchone() is not None

        return await self._db.run("reading a session", read, replay_safe=True)

    async def delete_session(self, session: str) -> None:
        async def delete(c: Connection) -> None:
            await c.execute("DELETE FROM sessions WHERE id = %s", [session])

        await self._db.run("ending a session", delete, replay_safe=True)

    async def _listen_connection(self) -> Connection:
        return await self._db.connect(autocommit=True)


# Schema.


async def schema_version(c: Connection) -> int:
    """The version recorded in ``fw_schema`` (0 when the table does not exist)."""
    cur = await c.execute("SELECT to_regclass('fw_schema') IS NOT NULL")
    if not (await _fetch_one(cur))[0]:
        return 0
    cur = await c.execute("SELECT coalesce(max(version), 0) FROM fw_schema")
    return int((await _fetch_one(cur))[0])


async def migrate(c: Connection, display: str) -> int:
    """Bring the schema to the latest version, one process at a time; return the version.

    Raises:
        StoreError: the database has a newer schema than this fw knows.
    """
    known = migrations("postgres")
    try:
        current = await schema_version(c)
        _check_not_newer(current, len(known), display)
        if current == len(known):
            return current
        async with c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            await c.execute(
                "CREATE TABLE IF NOT EXISTS fw_schema (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = await schema_version(c)  # another process may have migrated meanwhile
            _check_not_newer(current, len(known), display)
            for migration in known[current:]:
                await c.execute(migration.sql.encode())  # several statements, no parameters
                await c.execute(
                    "INSERT INTO fw_schema (version, name) VALUES (%s, %s)",
                    [migration.version, migration.name],
                )
        return len(known)
    except psycopg.Error as exc:
        raise StoreError(
            f"PostgreSQL at {display}: migrating the fw schema failed "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0]})"
        ) from None


def _check_not_newer(current: int, latest: int, display: str) -> None:
    if current > latest:
        raise StoreError(
            f"PostgreSQL at {display} has fw schema version {current}, newer than this fw "
            f"knows ({latest}); upgrade fw on this machine"
        )


# Rows.


def _instance(row: Sequence[Any]) -> InstanceRow:
    return InstanceRow(*row)


def _created(
    instance: NewInstance, found: dict[str, InstanceRow], inserted: set[str], replayed: bool
) -> Created:
    """What ``create_instances`` did with ``instance``. On a replay after a lost connection,
    a row identical to the one asked for (same params and creation time) is the lost try's."""
    row = found.get(instance.id)
    if row is None:
        raise StoreError(f"instance {instance.id!r} was deleted while it was being created")
    if instance.id in inserted:
        return Created(row, True)
    ours = replayed and (row.workflow, row.params, row.created_at, row.version, row.parent_id) == (
        instance.workflow, instance.params, instance.created_at, instance.version,
        instance.parent_id,
    )
    return Created(row, ours)


def _claim(row: Sequence[Any]) -> Claim:
    instance = _instance(row[:ROW_WIDTH])
    token, crashed = row[ROW_WIDTH], row[ROW_WIDTH + 1]
    steps: list[list[Any]] = row[ROW_WIDTH + 2] or []
    return Claim(instance, [_step_from_json(instance.id, s) for s in steps], token, bool(crashed))


def _step_from_json(instance_id: str, values: list[Any]) -> StepRow:
    # JSON writes a float with no fraction as an integer; times are floats.
    for position in (6, 7, 8):
        if values[position] is not None:
            values[position] = float(values[position])
    return StepRow(instance_id, *values)


async def _fetch_one(cur: Any) -> Sequence[Any]:
    row = await cur.fetchone()
    if row is None:
        raise StoreError("PostgreSQL returned no row where one was expected")
    return row  # type: ignore[no-any-return]


async def _one_instance(
    c: Connection, instance_id: str, *, lock: bool = False
) -> InstanceRow | None:
    suffix = " FOR UPDATE" if lock else ""
    cur = await c.execute(
        f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = %s{suffix}", [instance_id]
    )
    row = await cur.fetchone()
    return None if row is None else _instance(row)


async def _require(c: Connection, instance_id: str, *, lock: bool = False) -> InstanceRow:
    row = await _one_instance(c, instance_id, lock=lock)
    if row is None:
        raise InstanceNotFoundError(instance_id)
    return row


async def _instances_by_id(c: Connection, ids: list[str]) -> list[InstanceRow]:
    cur = await c.execute(
        f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ANY(%s::text[])", [ids]
    )
    return [_instance(r) for r in await cur.fetchall()]


async def _steps_of(c: Connection, instance_id: str) -> list[StepRow]:
    cur = await c.execute(
        f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_id = %s ORDER BY seq", [instance_id]
    )
    return [StepRow(*r) for r in await cur.fetchall()]


def _holds_nul(*texts: str | None) -> bool:
    """Whether a text holds NUL, which PostgreSQL text cannot store (so no row matches it)."""
    return any(text is not None and "\x00" in text for text in texts)
