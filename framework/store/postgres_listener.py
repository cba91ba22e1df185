"""Wake-ups for the PostgreSQL store: one connection per store that LISTENs on ``fw_wakeup``.

Transactions that make work runnable (a created instance, a sent event, a resume or restart,
a finished child) send ``NOTIFY fw_wakeup`` before they commit; PostgreSQL delivers it to
every listener once the commit is durable. The listening connection is opened on the first
``wait`` (clients that only start instances never open it), pinged while quiet, and reopened
with backoff when it drops. Each (re)connection counts as a wake-up, since notifications sent
while nobody listened are gone; workers also poll, so nothing waits longer than the poll
interval even then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg

from framework.errors import StoreError

CHANNEL = "fw_wakeup"
QUIET_PING = 15.0
PING_TIMEOUT = 10.0
CLOSE_WAIT = 5.0
"""Seconds ``close`` waits for the listening task to end."""
LOG = logging.getLogger("fw.store")

Connect = Callable[[], Coroutine[Any, Any, psycopg.AsyncConnection[Any]]]


class Listener:
    """The LISTEN connection of one store and the event its notifications set."""

    def __init__(self, connect: Connect, display: str) -> None:
        self._connect = connect
        self._display = display
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def wait(self, timeout: float) -> None:
        """Return at the next notification (or one received since the last wait), or after
        ``timeout`` seconds."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="fw-listen")
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # Python 3.11's wait_for may swallow a cancel
                    await self._wake.wait()
        self._wake.clear()

    def poke(self) -> None:
        """Wake the waiter now (work was made runnable in this process), without waiting for
        the notification to come back from the server."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=CLOSE_WAIT)  # a stop never hangs on it
            if not self._task.done():
                LOG.warning(
                    "PostgreSQL at %s: the wake-up connection did not stop within %g s; "
                    "leaving it", self._display, CLOSE_WAIT,
                )  # fmt: skip
            self._task = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                connection = self._connection = await self._connect()
                await connection.execute(f"LISTEN {CHANNEL}")
                if delay > 0.1:
                    LOG.warning("PostgreSQL at %s: listening for wake-ups again", self._display)
                delay = 0.1
                self._wake.set()  # notifications may have been missed while not listening
                await self._serve(connection)
            except (psycopg.Error, StoreError, TimeoutError, OSError) as exc:
                LOG.warning(
                    "PostgreSQL at %s: the wake-up connection failed (%s); reconnecting in "
                    "%.1f s (workers poll meanwhile)",
                    self._display, str(exc).strip().splitlines()[0] if str(exc).strip()
                    else type(exc).__name__, delay,
                )
            finally:
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
                    self._connection = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _serve(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Turn notifications into wake-ups, pinging when quiet, until the connection fails.
        (Notifications that arrive during a ping are kept by psycopg for the next loop.)"""
        while True:
            async for _ in connection.notifies(timeout=QUIET_PING):
                self._wake.set()
            async with asyncio.timeout(PING_TIMEOUT):
                await connection.execute("SELECT 1")
