"""Group commit on PostgreSQL: the writes of many instances in one transaction.

A busy worker journals thousands of steps a second (each one ``fw_apply_v2`` call), and a busy
app creates instances one at a time from many requests. Committed one by one, each write costs
a pool checkout, a round trip and a commit of its own (the server's CPU and a WAL flush).
``GroupCommit`` runs the writes that arrive while others are being committed together
instead, in one transaction. A write that finds nothing under way goes straight through on
its own, so one instance alone is not slowed down.

A batch holds its writes in key (instance id) order, so that it takes its row locks in the
order a heartbeat takes them (``HEARTBEAT`` locks in id order too) and the two cannot
deadlock; with ``distinct`` keys, two writes of one key never share a batch. A rarer cycle
(an instance's end locks its parent, a terminated tree locks its rows in its own order) is
broken by PostgreSQL's deadlock detection after ``deadlock_timeout`` (1 s): the transaction
it rolls back is retried by ``Database.run``, as any operation is after a deadlock. If a batch
fails on a write's own error, its transaction rolled back whole, and each write of the batch
is run again alone: one bad write fails alone. A batch lost with its connection is replayed
by ``Database.run`` like any replay-safe operation.

``Journal`` is the group commit of ``fw_apply_v2`` calls: a batch is one statement in
autocommit (``APPLY_MANY``: the calls' arguments as one JSON document, one call per row in
order), so one transaction. One statement, not a pipeline of statements in an explicit
transaction: a client cut off mid-pipeline left that transaction open on the server, holding
its instances' rows until the server noticed the dead peer (hours later by default); a
statement runs only once the server has all of it, and commits without waiting for the client.
Each result says whether the batch ran more than once (``Outcome.replayed``), so the caller
can recognise a write its lost first try already committed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from framework.errors import StoreClosedError, StoreUnavailableError
from framework.store.base import LOG_LIMIT
from framework.store.postgres_connection import Connection, Database

APPLY = "SELECT fw_apply_v2(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
APPLY_WITH_LOGS = (
    "SELECT s, CASE WHEN s IS NULL THEN NULL ELSE fw_keep_logs(%s, %s, %s) END FROM "
    "(SELECT fw_apply_v2(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) AS s) AS applied"
)
APPLY_MANY = (  # APPLY (and APPLY_WITH_LOGS) for many transitions: one row each, in order
    "SELECT a.s, CASE WHEN a.s IS NOT NULL AND a.lines IS NOT NULL "
    "THEN fw_keep_logs(a.id, a.lines::json, %s) END FROM ("
    "SELECT w.ord, w.id, w.lines, fw_apply_v2(w.id, w.token, w.now, w.status, w.wake_at, "
    "w.output, w.error, w.release, w.version, "
    "CASE WHEN jsonb_typeof(w.events) = 'array' "
    "THEN ARRAY(SELECT jsonb_array_elements_text(w.events)) END, "
    "CASE WHEN jsonb_typeof(w.waited) = 'array' "
    "THEN ARRAY(SELECT jsonb_array_elements_text(w.waited)) END, "
    "w.steps::jsonb, w.children::jsonb) AS s FROM ("
    "SELECT e.ord, x->>0 AS id, x->>1 AS token, (x->>2)::float8 AS now, x->>3 AS status, "
    "(x->>4)::float8 AS wake_at, x->>5 AS output, x->>6 AS error, (x->>7)::bool AS release, "
    "x->>8 AS version, x->9 AS events, x->10 AS waited, x->>11 AS steps, x->>12 AS children, "
    "x->>13 AS lines FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(x, ord)) AS w "
    "OFFSET 0) AS a ORDER BY a.ord"  # OFFSET 0: each row's fw_apply_v2 runs once, in order
)
"""The writes go as one JSON document, a row of ``fw_apply_v2`` arguments and log lines per
write: psycopg dumps a text array element by element in Python (a regex escape each), which
took a sixth of a busy client's CPU; ``json.dumps`` encodes the whole batch in C."""

W = TypeVar("W")
R = TypeVar("R")

MOST_PER_BATCH = 200
"""The most writes one transaction carries."""
MOST_IN_FLIGHT = 2
"""The most commits one group commit has under way at once (batches and writes alone)."""


class GroupCommit(Generic[W, R]):
    """Runs writes of type ``W`` alone when nothing is under way, else together."""

    def __init__(
        self,
        alone: Callable[[W], Awaitable[R]],
        together: Callable[[list[W]], Awaitable[list[R]]],
        key: Callable[[W], str],
        *,
        distinct: bool = False,
    ) -> None:
        self._alone = alone
        self._together = together
        self._key = key
        self._distinct = distinct
        self._pending: list[tuple[W, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._batches: set[asyncio.Task[None]] = set()

    async def run(self, write: W) -> R:
        """Commit ``write``, with those that arrive meanwhile, and return its result."""
        if self._in_flight < MOST_IN_FLIGHT and not self._pending:
            self._in_flight += 1
            self._drained.clear()
            try:
                return await self._alone(write)
            finally:
                self._ended_one()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        self._start_batches()
        return await future

    async def close(self) -> None:
        """Wait until every write under way or waiting has its result (the pool must still
        be open)."""
        await self._drained.wait()

    def _ended_one(self) -> None:
        self._in_flight -= 1
        self._start_batches()
        if not self._in_flight:
            self._drained.set()

    def _start_batches(self) -> None:
        while self._pending and self._in_flight < MOST_IN_FLIGHT:
            self._in_flight += 1
            self._drained.clear()
            task = asyncio.get_running_loop().create_task(self._commit(self._take_batch()))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    def _take_batch(self) -> list[tuple[W, asyncio.Future[R]]]:
        """The next batch of pending writes, in arrival order (with ``distinct`` keys, a
        key's later writes wait for a later batch)."""
        taken: list[tuple[W, asyncio.Future[R]]] = []
        left: list[tuple[W, asyncio.Future[R]]] = []
        keys: set[str] = set()
        for item in self._pending:
            key = self._key(item[0]) if self._distinct else ""
            if len(taken) == MOST_PER_BATCH or key in keys:
                left.append(item)
            else:
                taken.append(item)
                if self._distinct:
                    keys.add(key)
        self._pending = left
        return taken

    async def _commit(self, batch: list[tuple[W, asyncio.Future[R]]]) -> None:
        try:
            if len(batch) == 1:
                await _settle(batch[0][1], self._alone(batch[0][0]))
            else:
                await self._commit_together(sorted(batch, key=lambda item: self._key(item[0])))
        finally:
            self._ended_one()

    async def _commit_together(self, batch: list[tuple[W, asyncio.Future[R]]]) -> None:
        try:
            results = await self._together([write for write, _ in batch])
        except (StoreClosedError, StoreUnavailableError) as exc:
            for _, future in batch:
                _fail(future, exc)
            return
        except Exception:  # a write's own error rolled the batch back: each alone
            for write, future in batch:
                await _settle(future, self._alone(write))
            return
        except BaseException as exc:
            for _, future in batch:
                _fail(future, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


@dataclass(frozen=True)
class Outcome:
    """What a write's statement returned, and whether it ran more than once (a replay after a
    lost connection, whose first try may have committed)."""

    value: Any
    replayed: bool


@dataclass(frozen=True)
class JournalWrite:
    """One transition for ``fw_apply_v2``: its arguments (the instance id first), and the
    ``ctx.log`` lines to keep with it (JSON), if any."""

    arguments: Sequence[Any]
    lines: str | None = None

    @property
    def instance_id(self) -> str:
        return str(self.arguments[0])


class Journal:
    """The group commit of ``fw_apply_v2`` calls: alone, one statement (with its log lines,
    ``APPLY_WITH_LOGS``); together, one statement for the whole batch (``APPLY_MANY``), one
    transaction. Each write's ``Outcome`` is what its ``fw_apply_v2`` returned."""

    def __init__(self, db: Database, what: str) -> None:
        self._db = db
        self._what = what
        self._group = GroupCommit(self._alone, self._together, lambda w: w.instance_id)

    async def run(self, write: JournalWrite) -> Outcome:
        """Apply ``write`` and commit it, with others arriving meanwhile."""
        return await self._group.run(write)

    async def close(self) -> None:
        """Wait until every write under way or waiting has its result (the pool must still
        be open)."""
        await self._group.close()

    async def _alone(self, write: JournalWrite) -> Outcome:
        statement, arguments = APPLY, list(write.arguments)
        if write.lines is not None:
            statement = APPLY_WITH_LOGS
            arguments = [write.instance_id, write.lines, LOG_LIMIT, *arguments]

        async def apply(c: Connection) -> Any:
            cursor = c.kept_cursor()
            await cursor.execute(statement, arguments)
            row = await cursor.fetchone()
            return None if row is None else row[0]

        return await run_noting_replays(self._db, self._what, apply)

    async def _together(self, writes: list[JournalWrite]) -> list[Outcome]:
        # allow_nan=False: an infinite time (not JSON) fails the batch, and each goes alone.
        rows = json.dumps([[*w.arguments, w.lines] for w in writes], allow_nan=False)
        arguments = [LOG_LIMIT, rows]

        async def apply(c: Connection) -> list[Any]:
            cursor = c.kept_cursor()
            await cursor.execute(APPLY_MANY, arguments)
            return [row[0] for row in await cursor.fetchall()]

        what = f"{self._what} ({len(writes)} at once)"
        applied = await run_noting_replays(self._db, what, apply)
        return [Outcome(value, applied.replayed) for value in applied.value]


async def run_noting_replays(
    db: Database, what: str, fn: Callable[[Connection], Awaitable[Any]]
) -> Outcome:
    """``db.run(what, fn)`` for a replay-safe ``fn``: its result, and whether it ran more than
    once (a retry after a lost connection, whose first try may have committed)."""
    attempts = 0

    async def counted(c: Connection) -> Any:
        nonlocal attempts
        attempts += 1
        return await fn(c)

    value = await db.run(what, counted, replay_safe=True)
    return Outcome(value, attempts > 1)


async def _settle(future: asyncio.Future[R], outcome: Awaitable[R]) -> None:
    try:
        result = await outcome
    except BaseException as exc:
        _fail(future, exc)
        if not isinstance(exc, Exception):
            raise
        return
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, Exception):
        future.set_exception(exc)
    else:
        future.cancel()
