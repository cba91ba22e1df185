"""A worker's place in the registry, and taking over the instances of workers that died.

A worker registers itself when it starts (``store/workers.py`` says what a row holds and how
the liveness lock works), beats its row every third of the lease, and deletes it when it
stops cleanly. Every ``CHECK_INTERVAL`` it also looks at the other workers' liveness locks:
a registered worker whose lock is free has died (its process is gone: the operating system
let the lock go), so its running instances are made due at once and the workers woken, and
one of them resumes each within a second or so instead of when its lease would expire.

A worker that is alive but starved of CPU, or stopped (SIGSTOP), keeps its lock, so nothing
is taken from it: the lock is held by the operating system, not renewed on a clock. On
PostgreSQL a lock must stay free for ``CONFIRM_AFTER`` seconds before its worker counts as
dead, while the checking worker held its own lock throughout. A server restart (or failover)
frees every lock at once, and a live worker may need several seconds to connect again and
take its own back; so a worker that had to take its own lock again trusts the others' locks
only a lease later (a worker that died meanwhile is recovered by its lease, as before), and
so does a worker that starts within a lease of the server's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, computed_field

from framework.errors import StoreError
from framework.resources import VERSION
from framework.store.base import Store
from framework.store.workers import FORGET_DEAD_AFTER, WorkerInfo, WorkerRow, WorkerState

if TYPE_CHECKING:
    from framework.runtime.app import App

LOG = logging.getLogger("fw.worker")
CHECK_INTERVAL = 0.5
"""Seconds between two looks at the other workers' liveness locks."""
CONFIRM_AFTER = 1.5
"""Seconds a PostgreSQL liveness lock must stay free before its worker counts as dead."""
FORGET_INTERVAL = 60.0
"""Seconds between two prunings of long-dead workers' rows."""


def code_version(app: App) -> str:
    """A hash of the app's workflow files as they are now (each as instances record it)."""
    try:
        names = sorted(app.entrypoints)
        parts = [f"{name}={app.version_of(name)}" for name in names]
    except Exception:  # a version is shown, never worth stopping a worker for
        return "unknown"
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


class Registrant(Protocol):
    """What ``Liveness`` reads of a worker (``runtime/worker.py``)."""

    @property
    def id(self) -> str: ...
    @property
    def app(self) -> App: ...
    @property
    def concurrency(self) -> int: ...
    @property
    def lease(self) -> float: ...
    @property
    def running(self) -> int: ...


class Liveness:
    """The registry row and liveness lock of one worker, and its watch over the others."""

    def __init__(self, worker: Registrant, store: Store) -> None:
        self.worker = worker
        self.store = store
        self.registered = False
        self.version = ""
        self._suspects: dict[str, float] = {}
        """Worker id -> when its lock was first seen free (PostgreSQL: to confirm)."""
        self._trusted_from = time.monotonic()
        """From when the others' free locks are believed (PostgreSQL)."""
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """End ``watch()`` at its next look, even if a cancellation of it was swallowed
        on the way (a store call cut short by a lost connection can do that)."""
        self._stopping.set()

    async def register(self) -> None:
        """Take the lock and insert the row; a store error is logged, and retried later."""
        self.version = code_version(self.worker.app)
        info = WorkerInfo(
            id=self.worker.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            fw_version=VERSION,
            code_version=self.version,
            concurrency=self.worker.concurrency,
            started_at=time.time(),
        )
        try:
            await self.store.register_worker(info)
        except StoreError as exc:
            LOG.error("worker %s: registering failed: %s", self.worker.id, exc)
            return
        self.registered = True
        self._trusted_from = max(self._trusted_from, time.monotonic())
        with contextlib.suppress(StoreError):
            await self._distrust_a_recent_restart()

    async def _distrust_a_recent_restart(self) -> None:
        """A worker that starts soon after a server restart, while the others may still be
        taking their locks again, believes their free locks only a lease after it."""
        lost_at = await self.store.locks_lost_at()
        if lost_at is None:
            return
        left = lost_at + self.worker.lease - time.time()
        if left > 0:
            self._trusted_from = max(self._trusted_from, time.monotonic() + left)

    async def deregister(self) -> None:
        """Delete the row and let the lock go (a clean stop)."""
        try:
            await self.store.deregister_worker(self.worker.id)
        except StoreError as exc:
            LOG.error("worker %s: deregistering failed: %s", self.worker.id, exc)

    async def watch(self) -> None:
        """Beat the row and look for dead workers, until cancelled."""
        beat_every = self.worker.lease / 3
        last_beat = last_forget = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_INTERVAL):  # wait_for may swallow a cancel
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                if not self.registered:
                    await self.register()
                    continue
                await self.keep_lock()
                await self.take_over_dead_workers()
                now = time.monotonic()
                if now - last_beat >= beat_every:
                    last_beat = now
                    await self.beat()
                if now - last_forget >= FORGET_INTERVAL:
                    last_forget = now
                    await self.store.forget_workers(time.time() - FORGET_DEAD_AFTER)
            except StoreError as exc:
                LOG.error("worker %s: watching workers failed: %s", self.worker.id, exc)

    async def keep_lock(self) -> None:
        """Take this worker's lock again if it was lost; then the others' free locks are
        believed only a lease later (they may have been lost with it, and be retaken)."""
        if await self.store.ensure_worker_lock(self.worker.id):
            return
        LOG.warning(
            "worker %s: took its liveness lock again (the database restarted or its "
            "connection dropped); trusting the others' locks in %s s",
            self.worker.id, f"{self.worker.lease:g}",
        )  # fmt: skip
        self._suspects.clear()
        self._trusted_from = time.monotonic() + self.worker.lease

    async def beat(self) -> None:
        """Record a heartbeat (registering again when the code changed or the row is gone)."""
        if code_version(self.worker.app) != self.version:
            await self.register()
        elif not await self.store.beat_worker(self.worker.id, time.time(), self.worker.running):
            LOG.warning("worker %s: its registry row was gone; registering again", self.worker.id)
            await self.register()

    async def take_over_dead_workers(self) -> list[str]:
        """Make the running instances of every worker found dead due now; their ids."""
        rows = await self.store.list_workers(with_held=False)
        now = time.monotonic()
        free = {
            row.id
            for row in rows
            if row.id != self.worker.id and row.dead_at is None and row.liveness == "dead"
        }
        self._suspects = {w: self._suspects.get(w, now) for w in free}
        dead = [
            w
            for w, since in self._suspects.items()
            if self.store.liveness_final
            or now - max(since, self._trusted_from) >= CONFIRM_AFTER
        ]
        for worker_id in dead:
            freed = await self.store.reclaim_worker(worker_id, self.worker.app.clock.now())
            del self._suspects[worker_id]
            LOG.warning(
                "worker %s: worker %s died (its liveness lock is free); %d of its running "
                "instances are due again",
                self.worker.id, worker_id, freed,
            )  # fmt: skip
        return dead


class WorkerStatus(BaseModel):
    """A registered worker as ``fw workers``, the API and Studio show it."""

    model_config = ConfigDict(frozen=True)

    id: str
    state: WorkerState
    """``alive``; ``stale``: alive by its lock, but its heartbeat is over a lease old (stopped
    or starved); ``dead``: its process is gone (its row is forgotten an hour later)."""
    host: str
    pid: int
    fw_version: str
    code_version: str
    """A hash of the app's workflow files as the worker loaded them."""
    concurrency: int
    started_at: float
    heartbeat_at: float
    dead_at: float | None
    instances: list[str]
    """The ids of the instances whose lease it holds."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def held(self) -> int:
        """How many instances it holds."""
        return len(self.instances)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def of(cls, row: WorkerRow, now: float, stale_after: float) -> WorkerStatus:
        return cls(
            id=row.id,
            state=row.state(now, stale_after),
            host=row.host,
            pid=row.pid,
            fw_version=row.fw_version,
            code_version=row.code_version,
            concurrency=row.concurrency,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            dead_at=row.dead_at,
            instances=list(row.held),
        )


async def worker_statuses(app: App) -> list[WorkerStatus]:
    """The app's registered workers, oldest first (a worker whose heartbeat is a lease old is
    ``stale``)."""
    store = await app.store()
    rows = await store.list_workers()
    now = time.time()
    return [WorkerStatus.of(row, now, app.settings.runtime.lease) for row in rows]
