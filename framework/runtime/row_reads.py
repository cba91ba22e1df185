"""Reading the rows of many awaited instances in one query.

``result()`` and ``outcome()`` poll their instance's row until it ends. A process awaiting a
thousand instances at once would send a thousand queries a round, taking every pooled
connection from its own worker's commits; here the reads of one moment share one query
(``Store.get_instances``, ``BATCH`` ids at a time), and two rounds start at least
``ROUND_GAP`` apart, so a round costs a query however many wait.

A wait's first read is ``urgent``: alone, it is read at once in the caller's task; else it
starts a round at once (with the other reads of that moment) rather than after the gap. A
process creating instances one after another and awaiting each waited up to the gap for every
first read, and then for a round that ran only once the instance had run, idle meanwhile (1.5
ms of its 5.6 ms each); the polls that follow, which are what many waiters multiply, keep
the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.store.base import InstanceRow, Store

ROUND_GAP = 0.005
"""Seconds between the starts of two rounds of reads."""
BATCH = 500
"""Ids read by one query."""


class RowReads:
    """The row reads of one event loop, gathered into rounds."""

    def __init__(self, store: Callable[[], Awaitable[Store]]) -> None:
        self._store = store
        self._pending: dict[str, list[asyncio.Future[InstanceRow | None]]] = {}
        self._rounds: asyncio.Task[None] | None = None
        self._last = float("-inf")
        self._hurry = asyncio.Event()
        self._reading_alone = False

    async def read(self, instance_id: str, urgent: bool = False) -> InstanceRow | None:
        """The row of ``instance_id`` (None: there is none), read in the next round, which
        an ``urgent`` read starts without waiting out the gap."""
        loop = asyncio.get_running_loop()
        if urgent and not self._pending and not self._reading_alone and not self._rounding():
            self._reading_alone = True  # others arriving meanwhile gather in a round
            try:
                return (await self._read([instance_id])).get(instance_id)
            finally:
                self._reading_alone = False
        future: asyncio.Future[InstanceRow | None] = loop.create_future()
        self._pending.setdefault(instance_id, []).append(future)
        if urgent:
            self._hurry.set()
        if not self._rounding():
            self._rounds = loop.create_task(self._run(), name="fw-row-reads")
        return await future

    def _rounding(self) -> bool:
        """Whether a round task is running (or about to)."""
        return self._rounds is not None and not self._rounds.done()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            gap = self._last + ROUND_GAP - loop.time()
            if gap > 0 and not self._hurry.is_set():  # keep rounds ROUND_GAP apart
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(gap):
                        await self._hurry.wait()
            await asyncio.sleep(0)  # let the readers of this moment join
            self._hurry.clear()
            self._last = loop.time()
            pending, self._pending = self._pending, {}
            try:
                rows = await self._read(list(pending))
            except asyncio.CancelledError:
                _fail(pending, None)
                raise
            except Exception as exc:
                _fail(pending, exc)
                continue
            for instance_id, futures in pending.items():
                row = rows.get(instance_id)
                for future in futures:
                    if not future.done():
                        future.set_result(row)

    async def _read(self, ids: list[str]) -> dict[str, InstanceRow]:
        store = await self._store()
        rows: dict[str, InstanceRow] = {}
        for start in range(0, len(ids), BATCH):
            rows.update((r.id, r) for r in await store.get_instances(ids[start : start + BATCH]))
        return rows


def _fail(
    pending: dict[str, list[asyncio.Future[InstanceRow | None]]], error: Exception | None
) -> None:
    """Raise ``error`` in every reader of ``pending`` (None: cancel them)."""
    for futures in pending.values():
        for future in futures:
            if future.done():
                continue
            if error is None:
                future.cancel()
            else:
                future.set_exception(error)
