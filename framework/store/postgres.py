"""The scale-out store: PostgreSQL, shared by any number of workers on any number of machines.

Claims take due instances with ``FOR UPDATE SKIP LOCKED``, so no two workers ever hold one
instance, and every write a running instance makes is fenced on its lease token. The hot
paths are PL/pgSQL functions from the schema (``fw_claim_v2``, ``fw_apply_v2``,
``fw_take_event``): one round trip and one transaction each, except that journal writes
arriving together share one transaction (``postgres_batch``). Wake-ups travel by
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

import contextlib
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, LiteralString

import psycopg

from framework.errors import (
    InstanceNotFoundError,
    InstanceStateError,
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
    TERMINAL,
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
    no_retry_error,
    prefix_successor,
    too_many_events_error,
    unstorable,
)
from framework.store.migrations import migrations
from framework.store.postgres_batch import (
    APPLY,
    APPLY_WITH_LOGS,
    GroupCommit,
    Journal,
    JournalWrite,
    run_noting_replays,
)
from framework.store.postgres_connection import Connection, Database, PostgresSettings
from framework.store.postgres_listener import CHANNEL, Listener
from framework.store.workers import (
    EXPIRE_LEASES,
    LIVENESS_LOCKS,
    POSTGRES_REGISTER,
    WorkerInfo,
    WorkerRow,
    postgres_workers,
    register_values,
)

_DURATION_CLASS: LiteralString = duration_class_sql("updated_at - created_at")  # pyright: ignore[reportAssignmentType]
"""The duration class of an instance (its text holds only numbers of ``DURATION_EDGES``)."""
MIGRATION_LOCK = 0x66770001  # pg_advisory_xact_lock key: one migrating process at a time
CLAIMED_COLUMNS = (
    "seq, id, workflow, status, params, output, error, version, parent_id, generation, "
    "created_at, updated_at, wake_at, lease_owner, crash_count, crashes, control"
)
"""The columns of an instance the claim functions return (``fw_claim_v2``)."""
CLAIM_WIDTH = 17
INSTANCE_COLUMNS = f"{CLAIMED_COLUMNS}, runs, retention"
ROW_WIDTH = 19
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
    # The first %(claimed)s new rows are claimed at once for a Handoff (claim's transition
    # of a queued instance: running, leased to the worker, due again when the lease ends).
    "WITH new AS (INSERT INTO instances (id, workflow, status, params, version, parent_id, "
    "created_at, updated_at, wake_at, retention, concurrency_key, lease_owner, lease_token, "
    "runs) "
    "SELECT n.id, n.workflow, CASE WHEN n.ord <= %s THEN 'running' ELSE 'queued' END, "
    "n.params, n.version, n.parent_id, n.created_at, "
    "CASE WHEN n.ord <= %s THEN %s ELSE n.created_at END, "
    "CASE WHEN n.ord <= %s THEN %s ELSE n.created_at END, n.retention, n.key, "
    "CASE WHEN n.ord <= %s THEN %s END, CASE WHEN n.ord <= %s THEN %s || ':' || n.ord END, "
    "CASE WHEN n.ord <= %s THEN 1 ELSE 0 END "
    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], "
    "%s::float8[], %s::text[]) WITH ORDINALITY AS n(id, workflow, params, version, parent_id, "
    "created_at, retention, key, ord) "
    "ON CONFLICT (id) DO UPDATE SET workflow = instances.workflow "
    f"WHERE instances.workflow <> excluded.workflow RETURNING {INSTANCE_COLUMNS}, lease_token) "
    # A row inserted and not claimed wakes the workers: one NOTIFY (the subquery runs once,
    # and only when the CASE reaches it), sent when the statement's transaction commits. A
    # row of another workflow comes back from `new` too, but its workflow is not among those
    # asked for (the %s list), so it notifies nobody.
    f"SELECT {INSTANCE_COLUMNS}, true, lease_token, "
    "CASE WHEN lease_token IS NULL AND workflow = ANY(%s::text[]) "
    f"THEN (SELECT true FROM pg_notify('{CHANNEL}', '') AS sent) END FROM new UNION ALL "
    f"SELECT {INSTANCE_COLUMNS}, false, NULL, NULL FROM instances "
    "WHERE id = ANY(%s::text[]) AND id NOT IN (SELECT id FROM new)"
)
LOG_COLUMNS = "instance_id, run, line, at, level, message, step, step_count, fields, seq"
TAKE_EVENT = (
    "SELECT r_held, r_payload, r_created_at FROM fw_take_event("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
FOLD_AFTER = 1_000
"""Delta rows of ``instance_counts`` a count leaves unfolded (folding them costs a write)."""
CLAIM = "SELECT * FROM fw_claim_v3(%s, %s, %s, %s, %s, %s)"
CLAIM_LIMITED = (
    "SELECT * FROM fw_claim_limited(%s, %s, %s, %s, %s, %s::text[], %s::int[], %s::bool[])"
)
NEXT_WAKE = (
    "SELECT min(wake_at) FROM instances WHERE wake_at IS NOT NULL AND wake_at >= %s "
    "AND status IN ('queued', 'waiting', 'running')"
)
NEXT_WAKE_LIMITED = (  # as NEXT_WAKE, leaving out the due instances of full groups
    "WITH limits AS (SELECT * FROM unnest(%s::text[], %s::int[], %s::bool[]) "
    "AS l(workflow, slots, keyed)), "
    "held AS (SELECT i.workflow, CASE WHEN l.keyed THEN i.concurrency_key END AS key, "
    "count(*) AS n FROM instances i JOIN limits l ON l.workflow = i.workflow "
    "WHERE i.lease_owner IS NOT NULL GROUP BY 1, 2) "
    "SELECT min(w) FROM (SELECT min(wake_at) AS w FROM instances "
    "WHERE wake_at IS NOT NULL AND status IN ('queued', 'waiting', 'running') "
    "AND (status = 'running' OR workflow <> ALL(%s::text[])) "
    "UNION ALL SELECT min(i.wake_at) FROM instances i JOIN limits l ON l.workflow = i.workflow "
    "LEFT JOIN held h ON h.workflow = i.workflow "
    "AND h.key IS NOT DISTINCT FROM (CASE WHEN l.keyed THEN i.concurrency_key END) "
    "WHERE i.wake_at IS NOT NULL AND i.status IN ('queued', 'waiting') "
    "AND (i.wake_at > %s OR coalesce(h.n, 0) < l.slots)) AS m"
)
SET_CHILD_KEYS = (
    "UPDATE instances SET concurrency_key = k.key FROM unnest(%s::text[], %s::text[]) "
    "AS k(id, key) WHERE instances.id = k.id AND instances.concurrency_key IS NULL"
)
RECLAIM = (
    f"SELECT {', '.join('i.' + c.strip() for c in CLAIMED_COLUMNS.split(','))}, i.lease_token, "
    f"false, {STEPS_JSON} FROM instances i WHERE i.lease_owner = %s AND i.lease_token LIKE %s"
)
TREE = (  # the instance and, depth first, its descendants that have not ended
    "WITH RECURSIVE tree(id) AS (SELECT %s::text UNION SELECT c.id FROM instances c "
    "JOIN tree t ON c.parent_id = t.id "
    "WHERE c.status NOT IN ('complete', 'errored', 'terminated')) "
)
LOCK_TREE = (  # the part of the tree not locked yet (%s: the ids that are), locked
    f"{TREE}SELECT id FROM instances WHERE id IN (SELECT id FROM tree) AND id <> ALL(%s) "
    "ORDER BY id FOR UPDATE"
)
TREE_ROWS = (
    "WHERE id = ANY(%s) AND (id = %s OR status NOT IN ('complete', 'errored', 'terminated'))"
)
TERMINATE_TREE = (
    "UPDATE instances SET status = 'terminated', control = NULL, wake_at = NULL, "
    f"lease_owner = NULL, lease_token = NULL, updated_at = %s {TREE_ROWS}"
)
COMPENSATE_TREE = (  # a worker runs the compensation, then ends each one
    "UPDATE instances SET status = 'queued', control = 'terminate', wake_at = %s, "
    f"lease_owner = NULL, lease_token = NULL, updated_at = %s {TREE_ROWS}"
)
HEARTBEAT = (  # locks its rows in id order, as a batch of journal writes does (no deadlock)
    "WITH held AS (SELECT id FROM instances WHERE lease_owner = %s AND id = ANY(%s) "
    "ORDER BY id FOR UPDATE) "
    "UPDATE instances i SET wake_at = CASE WHEN i.status IN ('running', 'paused') "
    "THEN %s ELSE i.wake_at END FROM held WHERE i.id = held.id RETURNING i.id"
)
NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"


@dataclass(frozen=True)
class _Create:
    """One instance to create, handed off (claimed for a worker of this process) or not."""

    instance: NewInstance
    handoff: Handoff | None


class PostgresStore:
    """The Store protocol on a PostgreSQL database (``postgresql://...``; see docs/postgres.md
    for the URL's pool parameters)."""

    dialect = "postgres"
    liveness_final = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = PostgresSettings.from_url(url)
        self._db = Database(self.settings)
        self._journal = Journal(self._db, "journaling a step")
        self._creates: dict[str | None, GroupCommit[_Create, Created]] = {}
        """Single creates arriving together, by the owner of their hand-off (None: none)."""
        self._listener = Listener(self._listen_connection, self.settings.display)
        self._liveness: dict[str, tuple[Connection, int]] = {}
        """Worker id -> the connection holding its advisory lock, and the lock's key."""
        self._opened = False
        self._id_search = False
        """Whether ids are indexed by trigram (instance_search): set when opened."""

    # Lifecycle.

    async def open(self) -> None:
        if self._opened:
            return
        connection = await self._db.connect(autocommit=True)
        try:
            await migrate(connection, self.settings.display)
            self._id_search = await id_search_ready(connection, self.settings.display)
        finally:
            await connection.close()
        await self._db.open()
        self._opened = True

    async def close(self) -> None:
        self._opened = False  # a liveness lock being taken meanwhile lets its connection go
        for connection, _ in self._liveness.values():
            with contextlib.suppress(psycopg.Error):
                await connection.close()
        self._liveness.clear()
        await self._listener.close()
        await self._journal.close()
        for creates in list(self._creates.values()):
            await creates.close()
        await self._db.close()
        self._opened = False

    async def schema_version(self) -> int:
        """The schema version of the database (0 when it has none yet)."""
        return await self._db.run("reading the schema version", schema_version, replay_safe=True)

    # Instances.

    async def create_instances(
        self, instances: Sequence[NewInstance], handoff: Handoff | None = None
    ) -> list[Created]:
        """Insert ``instances`` in one statement. A single instance's first try is that one
        statement in autocommit (one round trip: it is atomic on its own, and an id of another
        workflow inserts nothing, so nothing needs rolling back); a batch, and any retry after
        a lost connection (which first collects the lost try's claims), runs in a transaction.
        Single creates that arrive while others are under way are stored together, as a batch.
        """
        if len(instances) != 1:
            return await self._create(instances, handoff)
        owner = None if handoff is None else handoff.owner
        creates = self._creates.get(owner)
        if creates is None:
            creates = self._creates[owner] = GroupCommit(
                self._create_alone, self._create_together, lambda c: c.instance.id, distinct=True
            )
        return [await creates.run(_Create(instances[0], handoff))]

    async def _create_alone(self, create: _Create) -> Created:
        [created] = await self._create([create.instance], create.handoff)
        return created

    async def _create_together(self, creates: list[_Create]) -> list[Created]:
        """Single creates of one hand-off owner (or none) as one batch, each handed off."""
        handoffs = [c.handoff for c in creates if c.handoff is not None]
        merged = None if not handoffs else Handoff(
            handoffs[0].owner, len(handoffs), max(h.now for h in handoffs),
            min(h.lease_until for h in handoffs),
        )
        return await self._create([c.instance for c in creates], merged)

    async def _create(
        self, instances: Sequence[NewInstance], handoff: Handoff | None
    ) -> list[Created]:
        if not instances:
            return []
        check_distinct_ids(instances)
        ids = [i.id for i in instances]
        workflows = [i.workflow for i in instances]
        batch = uuid.uuid4().hex
        taking = 0 if handoff is None else handoff.limit
        owner = None if handoff is None else handoff.owner
        now = None if handoff is None else handoff.now
        until = None if handoff is None else handoff.lease_until
        params = [
            taking, taking, now, taking, until, taking, owner, taking, batch, taking,
            ids, workflows, [i.params for i in instances],
            [i.version for i in instances], [i.parent_id for i in instances],
            [i.created_at for i in instances], [i.retention for i in instances],
            [i.concurrency_key for i in instances], workflows, ids,
        ]
        attempts = 0
        notified = False

        async def insert(c: Connection, claims: dict[str, Claim]) -> list[Created]:
            nonlocal notified
            cursor = await c.execute(CREATE, params)
            found: dict[str, InstanceRow] = {}
            inserted: set[str] = set()
            for values in await cursor.fetchall():
                row = _instance(values[:ROW_WIDTH])
                found[row.id] = row
                notified = notified or bool(values[ROW_WIDTH + 2])
                if values[ROW_WIDTH]:
                    inserted.add(row.id)
                    token = values[ROW_WIDTH + 1]
                    if token is not None and token.startswith(f"{batch}:"):
                        claims[row.id] = Claim(row, [], token, False)
            missing = [i for i in ids if i not in found]
            if missing:  # committed meanwhile by a transaction our snapshot could not see
                found.update((r.id, r) for r in await _instances_by_id(c, missing))
            check_same_workflow(instances, found)  # in a transaction, raising rolls it back
            return [
                replace(_created(i, found, inserted, attempts > 1), claim=claims.get(i.id))
                for i in instances
            ]

        async def create(c: Connection) -> list[Created]:
            nonlocal attempts, notified
            attempts += 1
            notified = False
            if attempts == 1 and len(instances) == 1:
                outcomes = await insert(c, {})
            else:
                claims: dict[str, Claim] = {}
                async with c.transaction():
                    if handoff is not None and attempts > 1:  # the lost try's, if it committed
                        cur = await c.execute(RECLAIM, [handoff.owner, f"{batch}:%"])
                        for claim in map(_claim, await cur.fetchall()):
                            claims[claim.instance.id] = claim
                    outcomes = await insert(c, claims)
            if notified:
                self._listener.poke()  # a worker of this process need not wait for the NOTIFY
            return outcomes

        return await self._db.run("creating instances", create, replay_safe=True)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        if unstorable(instance_id):
            return None

        async def read(c: Connection) -> InstanceRow | None:
            return await _one_instance(c, instance_id)

        return await self._db.run("reading an instance", read, replay_safe=True)

    async def restarted_at(self, instance_id: str) -> float | None:
        if unstorable(instance_id):
            return None

        async def read(c: Connection) -> float | None:
            cur = await c.execute("SELECT restarted_at FROM instances WHERE id = %s", [instance_id])
            found = await cur.fetchone()
            return None if found is None else found[0]

        return await self._db.run("reading an instance", read, replay_safe=True)

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRow]:
        instance_ids = [i for i in instance_ids if not unstorable(i)]
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
        id_prefix: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        if unstorable(workflow, status, search, id_prefix, parent_id):
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
            if self._id_search and len(search) >= TRIGRAM:  # the ids holding its trigrams
                clauses.append(
                    "seq IN (SELECT seq FROM instance_search WHERE id ILIKE %s ESCAPE '\\')"
                )
                args.append(contains_pattern(search))
        if id_prefix:  # a range of the index on id in code point order (instances_id_c)
            clauses.append('id COLLATE "C" >= %s AND id COLLATE "C" < %s')
            args.extend((id_prefix, prefix_successor(id_prefix)))
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
                "SELECT workflow, status, sum(n)::bigint, count(*) FROM instance_counts "
                "GROUP BY workflow, status"
            )
            counts: dict[str, dict[str, int]] = {}
            rows = await cur.fetchall()
            for workflow, status, number, _ in rows:
                if number > 0:
                    counts.setdefault(workflow, {})[status] = number
            if sum(deltas for *_, deltas in rows) > FOLD_AFTER + len(rows):
                await c.execute("SELECT fw_fold_instance_counts()")
            return counts

        return await self._db.run("counting instances", read, replay_safe=True)

    async def count_due(self, now: float) -> dict[str, int]:
        async def read(c: Connection) -> dict[str, int]:
            cur = await c.execute(
                "SELECT workflow, count(*) FROM instances WHERE wake_at <= %s "
                "AND status IN ('queued', 'waiting', 'running') GROUP BY workflow",
                (now,),
            )
            return {workflow: number for workflow, number in await cur.fetchall()}

        return await self._db.run("counting due instances", read, replay_safe=True)

    async def count_ended(
        self, workflow: str, since: float, width: float, buckets: int
    ) -> list[EndedCount]:
        if unstorable(workflow):
            return []
        until = since + width * buckets
        sql = (
            "SELECT floor((updated_at - %s) / %s)::integer AS bucket, status, "
            f"{_DURATION_CLASS} AS class, count(*) "
            "FROM instances WHERE workflow = %s "
            "AND status IN ('complete', 'errored', 'terminated') "
            "AND updated_at >= %s AND updated_at < %s "
            "GROUP BY bucket, status, class"
        )

        async def read(c: Connection) -> list[EndedCount]:
            cur = await c.execute(sql, (since, width, workflow, since, until))
            return [EndedCount(*row) for row in await cur.fetchall()]

        return await self._db.run("counting ended instances", read, replay_safe=True)

    async def list_steps(self, instance_id: str) -> list[StepRow]:
        if unstorable(instance_id):
            return []

        async def read(c: Connection) -> list[StepRow]:
            return await _steps_of(c, instance_id)

        return await self._db.run("reading steps", read, replay_safe=True)

    async def list_logs(self, instance_id: str, limit: int = LOG_LIMIT) -> list[LogRow]:
        if unstorable(instance_id):
            return []

        async def read(c: Connection) -> list[LogRow]:
            cur = await c.execute(
                f"SELECT {LOG_COLUMNS} FROM logs WHERE instance_id = %s ORDER BY seq DESC LIMIT %s",
                [instance_id, limit],
            )
            return [LogRow(*r) for r in await cur.fetchall()][::-1]

        return await self._db.run("reading logs", read, replay_safe=True)

    async def list_waiting_steps(self, instance_ids: Sequence[str]) -> list[StepRow]:
        ids = [i for i in instance_ids if not unstorable(i)]
        if not ids:
            return []

        async def read(c: Connection) -> list[StepRow]:
            return await _waiting_steps(c, ids)

        return await self._db.run("reading waiting steps", read, replay_safe=True)

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
            tree = await _lock_tree(c, instance_id)
            if compensate:
                await c.execute(COMPENSATE_TREE, [now, now, tree, instance_id])
                await c.execute(NOTIFY)
                return await _require(c, instance_id)
            await c.execute(TERMINATE_TREE, [now, tree, instance_id])
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
        self,
        instance_id: str,
        now: float,
        from_step: tuple[str, int] | None,
        version: str | None = None,
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
                "crash_count = 0, control = NULL, version = %s, generation = generation + 1, "
                f"restarted_at = %s WHERE id = %s RETURNING {INSTANCE_COLUMNS}",
                [now, now, version, now, instance_id],
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
            cur = await c.execute(
                "SELECT count(*) FROM (SELECT 1 FROM events WHERE instance_id = %s "
                "AND consumed_by IS NULL LIMIT %s) AS held",
                [instance_id, MAX_BUFFERED_EVENTS],
            )
            if ((await cur.fetchone()) or (0,))[0] >= MAX_BUFFERED_EVENTS:
                raise too_many_events_error(instance_id)
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

    async def retry_now(self, instance_id: str, now: float) -> InstanceRow:
        async def retry(c: Connection) -> InstanceRow:
            row = await _require(c, instance_id, lock=True)
            waiting = await _waiting_steps(c, [instance_id])
            retries = [s for s in waiting if s.kind in RETRIED_KINDS]
            if row.status != "waiting" or not retries:
                raise no_retry_error(row, waiting)
            await c.execute(
                "UPDATE steps SET wake_at = %s WHERE instance_id = %s AND status = 'waiting' "
                "AND kind = ANY(%s::text[])",
                [now, instance_id, list(RETRIED_KINDS)],
            )
            await c.execute(
                "UPDATE instances SET wake_at = %s, updated_at = %s WHERE id = %s",
                [now, now, instance_id],
            )
            await c.execute(NOTIFY)
            return await _require(c, instance_id)

        return await self._db.run("making a retry due now", retry, replay_safe=False)

    async def claim(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_until: float,
        limits: Sequence[ConcurrencyLimit] = (),
        since: float | None = None,
    ) -> list[Claim]:
        batch = uuid.uuid4().hex
        attempts = 0
        statement: LiteralString = CLAIM
        arguments: list[Any] = [owner, limit, now, lease_until, batch, _since(since)]
        if limits:
            if since is not None:
                raise ValueError("a claim takes concurrency limits or a due-time bound, not both")
            arguments = arguments[:-1]
            statement = CLAIM_LIMITED
            arguments += _limit_arrays(limits)

        async def claim(c: Connection) -> list[Claim]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the last try may have claimed before its connection dropped
                cur = await c.execute(RECLAIM, [owner, f"{batch}:%"])
                recovered = await cur.fetchall()
                if recovered:
                    return [_claim(row) for row in recovered]
            cur = await c.execute(statement, arguments)
            return [_claim(row) for row in await cur.fetchall()]

        return await self._db.run("claiming instances", claim, replay_safe=True)

    async def heartbeat(
        self, owner: str, instance_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        if not instance_ids:
            return set()

        async def heartbeat(c: Connection) -> set[str]:
            cur = await c.execute(HEARTBEAT, [owner, list(instance_ids), lease_until])
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
        lines = json.dumps([
            [r.run, r.line, r.at, r.level, r.step, r.step_count, r.message, r.fields]
            for r in t.logs
        ]) if t.logs else None
        keyed = [(i.id, i.concurrency_key) for i in children if i.concurrency_key is not None]
        if keyed:  # fw_apply_v2 inserts children without their key: set it in the same commit
            statement, arguments = APPLY, params
            if lines is not None:
                statement = APPLY_WITH_LOGS
                arguments = [t.instance_id, lines, LOG_LIMIT, *params]
            outcome = await run_noting_replays(
                self._db, "journaling a step", _apply_keyed(statement, arguments, keyed)
            )
        else:
            outcome = await self._journal.run(JournalWrite(params, lines))
        if outcome.value is not None:
            return outcome.value  # type: ignore[no-any-return]
        if outcome.replayed:  # did the lost try commit, releasing the lease?
            row = await self.get_instance(t.instance_id)
            if row is not None and row.lease_owner is None and row.updated_at == now:
                return row.status
        raise LeaseLostError(t.instance_id)

    async def take_event(
        self, token: str, instance_id: str, event_type: str, step: StepRow, now: float
    ) -> TakenEvent | None:
        params = [
            instance_id,
            token,
            event_type,
            now,
            step.name,
            step.count,
            step.seq,
            step.kind,
            step.attempts,
            step.started_at,
            step.finished_at,
            step.wake_at,
            step.input,
            step.error,
            step.detail,
        ]

        async def take(c: Connection) -> TakenEvent | None:
            cur = await c.execute(TAKE_EVENT, params)
            held, payload, created_at = await _fetch_one(cur)
            if not held:
                raise LeaseLostError(instance_id)
            return None if payload is None else TakenEvent(payload, created_at)

        return await self._db.run("taking an event", take, replay_safe=True)

    async def next_wake_at(
        self,
        limits: Sequence[ConcurrencyLimit] = (),
        now: float | None = None,
        since: float | None = None,
    ) -> float | None:
        async def read(c: Connection) -> float | None:
            if limits and now is not None and since is None:
                workflows, slots, keyed = _limit_arrays(limits)
                arguments = [workflows, slots, keyed, workflows, now]
                cur = await c.execute(NEXT_WAKE_LIMITED, arguments)
            else:
                cur = await c.execute(NEXT_WAKE, [_since(since)])
            value = (await _fetch_one(cur))[0]
            return None if value is None else float(value)

        return await self._db.run("reading the next wake time", read, replay_safe=True)

    def note_load(self, running: int) -> None:
        """Commits go through the pool whatever the load."""

    async def wait_for_work(self, timeout: float) -> None:
        await self._listener.wait(timeout)

    # The worker registry (store/workers.py): liveness by a session advisory lock held on
    # a connection of the worker's own.

    async def register_worker(self, worker: WorkerInfo) -> None:
        key = await self._take_liveness_lock(worker.id)

        async def register(c: Connection) -> None:
            await c.execute(POSTGRES_REGISTER, register_values(worker, key))

        await self._db.run("registering a worker", register, replay_safe=True)

    async def beat_worker(self, worker_id: str, now: float, running: int) -> bool:
        async def beat(c: Connection) -> bool:
            cur = await c.execute(
                "UPDATE workers SET heartbeat_at = %s, running = %s WHERE id = %s "
                "AND dead_at IS NULL RETURNING id",
                [now, running, worker_id],
            )
            return await cur.fetchone() is not None

        return await self._db.run("beating a worker's heartbeat", beat, replay_safe=True)

    async def locks_lost_at(self) -> float | None:
        async def read(c: Connection) -> float:
            cur = await c.execute("SELECT extract(epoch FROM pg_postmaster_start_time())")
            return float((await _fetch_one(cur))[0])

        return await self._db.run("reading the server's start time", read, replay_safe=True)

    async def ensure_worker_lock(self, worker_id: str) -> bool:
        held = self._liveness.get(worker_id)
        if held is not None:
            try:
                await held[0].execute("SELECT 1")
                return True
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    await held[0].close()
                del self._liveness[worker_id]
        key = await self._take_liveness_lock(worker_id)

        async def rekey(c: Connection) -> None:
            await c.execute("UPDATE workers SET lock_key = %s WHERE id = %s", [key, worker_id])

        await self._db.run("taking a worker's lock again", rekey, replay_safe=True)
        return False

    async def deregister_worker(self, worker_id: str) -> None:
        async def deregister(c: Connection) -> None:
            await c.execute("DELETE FROM workers WHERE id = %s", [worker_id])

        try:
            await self._db.run("deregistering a worker", deregister, replay_safe=True)
        finally:
            held = self._liveness.pop(worker_id, None)
            if held is not None:
                with contextlib.suppress(psycopg.Error):
                    await held[0].close()

    async def list_workers(self, with_held: bool = True) -> list[WorkerRow]:
        async def read(c: Connection) -> list[WorkerRow]:
            return await postgres_workers(c, with_held)

        return await self._db.run("listing workers", read, replay_safe=True)

    async def reclaim_worker(self, worker_id: str, now: float) -> int:
        async def reclaim(c: Connection) -> int:
            await c.execute(
                "UPDATE workers SET dead_at = %s WHERE id = %s AND dead_at IS NULL",
                [now, worker_id],
            )
            cur = await c.execute(EXPIRE_LEASES.format(mark="%s"), [now, worker_id])
            if cur.rowcount > 0:
                await c.execute(NOTIFY)
            return max(cur.rowcount, 0)

        return await self._db.run("taking a dead worker's instances over", reclaim,
                                  replay_safe=True)

    async def forget_workers(self, before: float) -> int:
        async def forget(c: Connection) -> int:
            cur = await c.execute("DELETE FROM workers WHERE dead_at < %s", [before])
            return max(cur.rowcount, 0)

        return await self._db.run("forgetting dead workers", forget, replay_safe=True)

    async def _take_liveness_lock(self, worker_id: str) -> int:
        """Open the worker's own connection and take a free advisory lock on it; its key."""
        if worker_id in self._liveness:
            return self._liveness[worker_id][1]
        connection = await self._db.connect(autocommit=True)
        try:
            while True:
                key = random.randrange(1, 2**31)
                cur = await connection.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", [LIVENESS_LOCKS, key]
                )
                if (await _fetch_one(cur))[0]:
                    break
        except psycopg.Error as exc:
            await connection.close()
            raise self._db.error(exc, "taking a worker's liveness lock") from None
        except BaseException:
            await connection.close()
            raise
        if not self._opened:  # closed while connecting (a worker's watch left running)
            await connection.close()
            raise StoreClosedError(f"the PostgreSQL store at {self.settings.display} is closed")
        self._liveness[worker_id] = (connection, key)
        return key

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
        where: LiteralString = (
            "status = ANY(%s::text[]) AND updated_at < %s AND retention IS NULL "
            "AND (%s::text[] IS NULL OR workflow = ANY(%s::text[])) "
            "AND workflow <> ALL(%s::text[]) "
        )
        chosen = None if workflows is None else list(workflows)
        values = [list(statuses), before, chosen, chosen, list(other_than)]
        return await self._prune(where, values, batch)

    async def prune_own_retention(
        self, statuses: Sequence[str], now: float, batch: int
    ) -> int:
        if not statuses:
            return 0
        where: LiteralString = (
            "status = ANY(%s::text[]) AND retention IS NOT NULL AND updated_at < %s - retention "
        )
        return await self._prune(where, [list(statuses), now], batch)

    async def _prune(self, where: LiteralString, values: list[Any], batch: int) -> int:
        """Delete up to ``batch`` instances matching ``where`` (never a child whose parent
        has not ended), with their journals, events and logs."""

        async def prune(c: Connection) -> int:
            deadline = time.perf_counter() + PRUNE_SECONDS
            deleted = 0
            while deleted < batch:  # PRUNE_CHUNK at a time until PRUNE_SECONDS have passed
                chunk = min(PRUNE_CHUNK, batch - deleted)
                cur = await c.execute(
                    f"WITH doomed AS (SELECT id FROM instances i WHERE {where}"
                    "AND NOT EXISTS (SELECT 1 FROM instances p "
                    "WHERE p.id = i.parent_id AND p.status NOT IN ('complete', 'errored', "
                    "'terminated')) ORDER BY seq LIMIT %s FOR UPDATE OF i SKIP LOCKED), "
                    "gone_steps AS (DELETE FROM steps WHERE instance_id IN "
                    "(SELECT id FROM doomed)), "
                    "gone_events AS (DELETE FROM events WHERE instance_id IN "
                    "(SELECT id FROM doomed)), "
                    "gone_logs AS (DELETE FROM logs WHERE instance_id IN (SELECT id FROM doomed)) "
                    "DELETE FROM instances WHERE id IN (SELECT id FROM doomed)",
                    [*values, chunk],
                )
                gone = max(cur.rowcount, 0)
                deleted += gone
                if gone < chunk or time.perf_counter() >= deadline:
                    break
            await c.execute("SELECT fw_fold_instance_counts()")
            return deleted

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


TRIGRAM = 3
"""The shortest search the trigram index serves; a shorter one reads the instances."""


async def id_search_ready(c: Connection, display: str) -> bool:
    """Whether ids are indexed by trigram; if not, but pg_trgm has been created since the
    migration that would have indexed them, index them now (one process at a time).

    Raises:
        StoreError: indexing them failed.
    """
    ready = "SELECT to_regclass('instance_search') IS NOT NULL"
    if (await _fetch_one(await c.execute(ready)))[0]:
        return True
    trgm = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')"
    if not (await _fetch_one(await c.execute(trgm)))[0]:
        return False  # migration 12 warned; searches read the instances
    try:
        async with c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            indexing = next(m for m in migrations("postgres") if m.name == "id_search")
            await c.execute(indexing.sql.encode())
    except psycopg.Error as exc:
        raise StoreError(
            f"PostgreSQL at {display}: indexing instance ids by trigram failed "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0]})"
        ) from None
    return bool((await _fetch_one(await c.execute(ready)))[0])


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
        instance.workflow,
        instance.params,
        instance.created_at,
        instance.version,
        instance.parent_id,
    )
    return Created(row, ours)


def _claim(row: Sequence[Any]) -> Claim:
    instance = _instance(row[:CLAIM_WIDTH])
    token, crashed = row[CLAIM_WIDTH], row[CLAIM_WIDTH + 1]
    steps: list[list[Any]] = row[CLAIM_WIDTH + 2] or []
    return Claim(instance, [_step_from_json(instance.id, s) for s in steps], token, bool(crashed))


def _step_from_json(instance_id: str, values: list[Any]) -> StepRow:
    # JSON writes a float with no fraction as an integer; times are floats.
    for position in (6, 7, 8):
        if values[position] is not None:
            values[position] = float(values[position])
    return StepRow(instance_id, *values)


def _apply_keyed(
    statement: LiteralString, arguments: list[Any], keyed: list[tuple[str, str]]
) -> Callable[[Connection], Awaitable[Any]]:
    """A transition that creates children with concurrency keys, in one transaction with
    the statement that sets their keys (``fw_apply_v2`` inserts them without)."""

    async def apply(c: Connection) -> Any:
        async with c.transaction():
            status = (await _fetch_one(await c.execute(statement, arguments)))[0]
            if status is not None:
                await c.execute(SET_CHILD_KEYS, [list(k) for k in zip(*keyed, strict=True)])
        return status

    return apply


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


async def _lock_tree(c: Connection, root: str) -> list[str]:
    """Lock the locked ``root``'s descendants that have not ended; their ids and its own.

    A descendant running meanwhile may commit a child of its own after a statement's
    snapshot was taken, and one statement would miss it (a subtree ran on after its root
    was terminated). Once locked, a descendant can commit nothing more (its journal write
    locks its row first), so the tree is read again until a read finds no new one."""
    tree = [root]
    while True:
        cur = await c.execute(LOCK_TREE, [root, tree])
        found = [row[0] for row in await cur.fetchall()]
        if not found:
            return tree
        tree.extend(found)


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


async def _waiting_steps(c: Connection, ids: list[str]) -> list[StepRow]:
    cur = await c.execute(
        f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_id = ANY(%s::text[]) "
        "AND status = 'waiting' ORDER BY instance_id, seq",
        [ids],
    )
    return [StepRow(*r) for r in await cur.fetchall()]


def _since(since: float | None) -> float:
    """A claim's or a wake time's lower bound on the due time, -infinity for none."""
    return float("-inf") if since is None else since


def _limit_arrays(limits: Sequence[ConcurrencyLimit]) -> list[Any]:
    """The limits as the arrays ``fw_claim_limited`` takes: workflows, limits, keyed."""
    return [[x.workflow for x in limits], [x.limit for x in limits], [x.keyed for x in limits]]
