"""Group commit on PostgreSQL: the journal writes of many instances in one transaction.

A busy worker journals thousands of steps a second, each one ``fw_apply_v2`` call. Committed
one by one, each costs a pool checkout, a round trip and a commit of its own (the server's
CPU and a WAL flush). ``GroupCommit`` sends the writes that arrive while others are being
committed together instead: one pipeline (one round trip), one transaction (one flush). A
write that finds nothing under way goes straight through on its own, so one instance alone
is not slowed down.

Each write is one statement returning one row; its first column is the write's result. A
batch takes its row locks in instance id order, the order a heartbeat's ``id = ANY(...)``
takes them in, so the two cannot deadlock. If the transaction fails on a statement's own
error, it rolled back whole, and each write of the batch is run again alone: one bad write
fails alone. A batch lost with its connection is replayed by ``Database.run`` like any
replay-safe operation, and says so with each result (``Outcome.replayed``), so the caller can
recognise a write its lost try already committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from framework.errors import StoreClosedError, StoreError, StoreUnavailableError
from framework.store.postgres_connection import Connection, Database

MOST_PER_BATCH = 200
"""The most writes one transaction carries."""
MOST_IN_FLIGHT = 2
"""The most commits one store has under way at once (batches and writes alone)."""


@dataclass(frozen=True)
class Outcome:
    """What a write's statement returned, and whether it ran more than once (a replay after a
    lost connection, whose first try may have committed)."""

    value: Any
    replayed: bool


@dataclass(frozen=True)
class _Write:
    key: str
    statement: LiteralString
    arguments: Sequence[Any]
    future: asyncio.Future[Outcome]


class GroupCommit:
    """Runs single-statement writes, committing those that arrive together as one."""

    def __init__(self, db: Database, what: str) -> None:
        self._db = db
        self._what = what
        self._pending: list[_Write] = []
        self._in_flight = 0
        self._batches: set[asyncio.Task[None]] = set()

    async def run(self, key: str, statement: LiteralString, arguments: Sequence[Any]) -> Outcome:
        """Run ``statement`` and commit it, with others that arrive meanwhile; ``key`` (an
        instance id) orders the writes of a batch."""
        if self._in_flight < MOST_IN_FLIGHT and not self._pending:
            self._in_flight += 1
            try:
                return await self._alone(statement, arguments)
            finally:
                self._in_flight -= 1
                self._start_batches()
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(key, statement, arguments, future))
        self._start_batches()
        return await future

    async def close(self) -> None:
        """Wait for the batches under way (the pool must still be open)."""
        while self._batches:
            await asyncio.wait(list(self._batches))

    def _start_batches(self) -> None:
        while self._pending and self._in_flight < MOST_IN_FLIGHT:
            batch, self._pending = (
                self._pending[:MOST_PER_BATCH], self._pending[MOST_PER_BATCH:]
            )
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._commit(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _commit(self, batch: list[_Write]) -> None:
        try:
            if len(batch) == 1:
                await _settle(batch[0], self._alone(batch[0].statement, batch[0].arguments))
            else:
                await self._together(sorted(batch, key=lambda w: w.key))
        finally:
            self._in_flight -= 1
            self._start_batches()

    async def _together(self, batch: list[_Write]) -> None:
        attempts = 0

        async def commit(c: Connection) -> list[Outcome]:
            nonlocal attempts
            attempts += 1
            async with c.transaction():
                async with c.pipeline():
                    cursors = [await c.execute(w.statement, w.arguments) for w in batch]
                rows = [await cursor.fetchone() for cursor in cursors]
            return [Outcome(None if row is None else row[0], attempts > 1) for row in rows]

        try:
            outcomes = await self._db.run(
                f"{self._what} ({len(batch)} at once)", commit, replay_safe=True
            )
        except (StoreClosedError, StoreUnavailableError) as exc:
            for write in batch:
                _fail(write, exc)
            return
        except StoreError:  # a statement's own error rolled the batch back: each alone
            for write in batch:
                await _settle(write, self._alone(write.statement, write.arguments))
            return
        except BaseException as exc:
            for write in batch:
                _fail(write, exc)
            raise
        for write, outcome in zip(batch, outcomes, strict=True):
            if not write.future.done():
                write.future.set_result(outcome)

    async def _alone(self, statement: LiteralString, arguments: Sequence[Any]) -> Outcome:
        attempts = 0

        async def commit(c: Connection) -> Outcome:
            nonlocal attempts
            attempts += 1
            row = await (await c.execute(statement, arguments)).fetchone()
            return Outcome(None if row is None else row[0], attempts > 1)

        return await self._db.run(self._what, commit, replay_safe=True)


async def _settle(write: _Write, outcome: Awaitable[Outcome]) -> None:
    try:
        result = await outcome
    except BaseException as exc:
        _fail(write, exc)
        if not isinstance(exc, Exception):
            raise
        return
    if not write.future.done():
        write.future.set_result(result)


def _fail(write: _Write, exc: BaseException) -> None:
    if write.future.done():
        return
    if isinstance(exc, Exception):
        write.future.set_exception(exc)
    else:
        write.future.cancel()
