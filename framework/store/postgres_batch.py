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

``Journal`` is the group commit of single-statement writes (``fw_apply_v2``): a batch is one
simple-protocol query holding all its statements, its values bound by psycopg on the client
(``AsyncClientCursor``), which PostgreSQL runs as one transaction. One message, not a
pipeline: the server runs it only once it has all of it, so a client cut off mid-send leaves
no transaction open on the server holding its instances' rows (a half-sent pipeline in an
explicit transaction did, until the server noticed the dead peer, hours later by default).
Each result says whether its statement ran more than once (``Outcome.replayed``), so the
caller can recognise a write its lost first try already committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, LiteralString, TypeVar

import psycopg

from framework.errors import StoreClosedError, StoreUnavailableError
from framework.store.postgres_connection import Connection, Database

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
class Statement:
    """One statement returning one row, written for instance ``key``."""

    key: str
    sql: LiteralString
    arguments: Sequence[Any]


class Journal:
    """The group commit of single-statement writes: a batch is one multi-statement query, one
    transaction; each write's ``Outcome`` is the first column of its row."""

    def __init__(self, db: Database, what: str) -> None:
        self._db = db
        self._what = what
        self._group = GroupCommit(self._alone, self._together, lambda s: s.key)

    async def run(self, key: str, sql: LiteralString, arguments: Sequence[Any]) -> Outcome:
        """Run ``sql`` for instance ``key`` and commit it, with others arriving meanwhile."""
        return await self._group.run(Statement(key, sql, arguments))

    async def close(self) -> None:
        """Wait for the batches under way (the pool must still be open)."""
        await self._group.close()

    async def _alone(self, statement: Statement) -> Outcome:
        attempts = 0

        async def commit(c: Connection) -> Outcome:
            nonlocal attempts
            attempts += 1
            row = await (await c.execute(statement.sql, statement.arguments)).fetchone()
            return Outcome(None if row is None else row[0], attempts > 1)

        return await self._db.run(self._what, commit, replay_safe=True)

    async def _together(self, statements: list[Statement]) -> list[Outcome]:
        attempts = 0

        async def commit(c: Connection) -> list[Outcome]:
            nonlocal attempts
            attempts += 1
            cursor = psycopg.AsyncClientCursor(c)
            await cursor.execute(
                "; ".join(s.sql for s in statements),
                [argument for s in statements for argument in s.arguments],
            )
            outcomes: list[Outcome] = []
            for _ in statements:
                row = await cursor.fetchone()
                outcomes.append(Outcome(None if row is None else row[0], attempts > 1))
                cursor.nextset()
            return outcomes

        what = f"{self._what} ({len(statements)} at once)"
        return await self._db.run(what, commit, replay_safe=True)


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
