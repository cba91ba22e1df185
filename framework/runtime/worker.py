"""Workers: claim runnable instances, run them, heartbeat their leases, stop cleanly.

A worker claims up to ``concurrency`` instances at once, each under a lease it extends every
third of the lease. It sleeps until the next due timer, a wake-up from another process (a
created instance, a sent event, a finished child) or the poll interval, whichever is first.
On ``stop()`` (SIGTERM in ``fw worker``) it claims nothing more, lets running instances reach
their next step boundary and releases them for another worker, then exits. A worker whose
database server cannot be reached when it starts (a restart, a failover) waits for it, as it
waits out a later outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from framework.errors import FwError, LeaseLostError, StoreError, StoreUnavailableError
from framework.runtime.aio import first_of
from framework.runtime.app import App
from framework.runtime.clock import Clock
from framework.runtime.execution import InstanceRun
from framework.store.base import Claim, Store, Transition

LOG = logging.getLogger("fw.worker")
MAX_BACKOFF = 30.0
MAX_OPEN_BACKOFF = 5.0


class Worker:
    """Runs an app's instances in this process.

    Use ``async with Worker(app_dir): ...`` in scripts and tests, or ``fw worker``.
    """

    def __init__(
        self,
        app: App | Path | str,
        *,
        concurrency: int | None = None,
        clock: Clock | None = None,
        shutdown_grace: float | None = None,
    ) -> None:
        self.app = app if isinstance(app, App) else App.for_root(Path(app))
        if clock is not None:
            self.app.clock = clock
        settings = self.app.settings.runtime
        self.concurrency = concurrency or settings.concurrency
        self.lease = settings.lease
        self.poll_interval = settings.poll_interval
        self.shutdown_grace = self.lease / 2 if shutdown_grace is None else shutdown_grace
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runs: dict[str, tuple[InstanceRun, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._store: Store | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Check the app's generated package, open the store and work in the background."""
        self.app.entrypoints  # noqa: B018 - fails early and clearly when codegen never ran
        self._store = await self.app.store()
        self._main = asyncio.create_task(self.run(), name=f"fw-worker {self.id}")

    async def run(self) -> None:
        """Work until ``stop()``; then release what is still held."""
        self.app.entrypoints  # noqa: B018 - fails early and clearly when codegen never ran
        store = self._store or await self._open_store()
        if store is None:
            return
        self._store = store
        heartbeat = asyncio.create_task(self._heartbeat_loop(store))
        pruner = asyncio.create_task(self._prune_loop())
        self.app.local_workers += 1
        store.note_load(0)
        LOG.info(
            "worker %s: started on %s (concurrency %d)",
            self.id,
            self.app.database_url,
            self.concurrency,
        )
        try:
            await self._claim_loop(store)
        finally:
            await self._drain(store)
            self.app.local_workers -= 1
            for task in (heartbeat, pruner):
                task.cancel()
            await asyncio.gather(heartbeat, pruner, return_exceptions=True)
            LOG.info("worker %s: stopped", self.id)

    async def _open_store(self) -> Store | None:
        """The app's store, waiting (with backoff) while its server cannot be reached; None
        when asked to stop meanwhile. Other store errors (a wrong password, a missing
        database) are raised at once."""
        backoff = 0.5
        while True:
            try:
                return await self.app.store()
            except StoreUnavailableError as exc:
                LOG.warning(
                    "worker %s: waiting for the database: %s; retrying in %.1f s",
                    self.id, exc, backoff,
                )
            await self._pause(backoff)
            if self._stopping.is_set():
                return None
            backoff = min(backoff * 2, MAX_OPEN_BACKOFF)

    def request_stop(self) -> None:
        """Stop claiming and ask running instances to stop at their next step."""
        self._stopping.set()

    async def stop(self) -> None:
        """Stop and wait until every held instance is finished or released."""
        self.request_stop()
        if self._main is not None:
            await self._main

    @property
    def running(self) -> int:
        """How many instances this worker runs now."""
        return len(self._runs)

    async def _claim_loop(self, store: Store) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                claimed = await self._claim(store)
                backoff = 0.5
            except StoreError as exc:
                LOG.error("worker %s: %s; retrying in %.1f s", self.id, exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if claimed:
                continue
            await self._idle(store)

    async def _claim(self, store: Store) -> int:
        free = self.concurrency - len(self._runs)
        if free <= 0:
            self._slot_freed.clear()
            await self._first_of(self._slot_freed.wait(), timeout=self.poll_interval)
            return 0
        now = self.app.clock.now()
        claims = await store.claim(self.id, free, now, now + self.lease)
        for claim in claims:
            self._start_run(store, claim)
        return len(claims)

    async def _idle(self, store: Store) -> None:
        # Clear before reading: a run that ends (suspending on a timer, say) while the next
        # wake time is read sets it again, so that wake-up is never lost.
        self._slot_freed.clear()
        next_wake = await store.next_wake_at()
        now = self.app.clock.now()
        if (
            next_wake is not None
            and next_wake > now
            and not self._runs
            and self.app.clock.may_skip()
        ):
            self.app.clock.skip_to(next_wake)
            return
        timeout = self.poll_interval
        if next_wake is not None:
            timeout = min(timeout, max(0.0, next_wake - now))
        await self._first_of(store.wait_for_work(timeout), self._slot_freed.wait(), timeout=timeout)

    def _start_run(self, store: Store, claim: Claim) -> None:
        run = InstanceRun(self.app, store, claim)
        task = asyncio.create_task(run.execute(), name=f"fw-instance {claim.instance.id}")
        self._runs[claim.instance.id] = (run, task)
        store.note_load(len(self._runs))
        task.add_done_callback(lambda _: self._finished(claim.instance.id, task))

    def _finished(self, instance_id: str, task: asyncio.Task[None]) -> None:
        current = self._runs.get(instance_id)
        if current is not None and current[1] is task:
            del self._runs[instance_id]
        if self._store is not None:
            self._store.note_load(len(self._runs))
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            LOG.error("instance %s: the run crashed", instance_id, exc_info=task.exception())

    async def _heartbeat_loop(self, store: Store) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            running = dict(self._runs)
            if not running:
                continue
            try:
                held = await store.heartbeat(
                    self.id, list(running), self.app.clock.now() + self.lease
                )
            except StoreError as exc:
                LOG.error("worker %s: heartbeat failed: %s", self.id, exc)
                continue
            for instance_id, (_, task) in running.items():
                if instance_id not in held and not task.done():
                    LOG.info(
                        "instance %s: lease lost (terminated, restarted or expired); stopping it",
                        instance_id,
                    )
                    task.cancel()

    async def _prune_loop(self) -> None:
        """Delete ended instances past their retention, when fw.toml sets one."""
        from framework.runtime.retention import Retention, prune

        retention = Retention.of(self.app)
        if not retention.configured:
            return
        while True:
            try:
                report = await prune(self.app, retention)
                if report.total:
                    LOG.info("worker %s: pruned %d ended instances", self.id, report.total)
            except StoreError as exc:
                LOG.error("worker %s: pruning failed: %s", self.id, exc)
            await asyncio.sleep(self.app.settings.runtime.prune_interval)

    async def _drain(self, store: Store) -> None:
        """Let running instances reach a step boundary, then release the rest."""
        for run, _ in self._runs.values():
            run.stop("shutdown")
        tasks = [task for _, task in self._runs.values()]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.shutdown_grace)
        late_runs = [run for run, task in self._runs.values() if task in late]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        now = self.app.clock.now()
        for run in late_runs:
            transition = Transition(
                run.instance_id, run.token, status="queued", wake_at=now, release=True
            )
            with contextlib.suppress(LeaseLostError, FwError):
                await store.apply(transition, now)

    async def _pause(self, seconds: float) -> None:
        await self._first_of(self._stopping.wait(), timeout=seconds)

    async def _first_of(self, *waits: Coroutine[Any, Any, object], timeout: float) -> None:
        await first_of(*waits, self._stopping.wait(), timeout=timeout)
