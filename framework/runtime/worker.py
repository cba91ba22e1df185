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
import math
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
from framework.runtime.gc_pauses import freeze_loaded_objects
from framework.runtime.liveness import Liveness
from framework.runtime.stall import LoopWatchdog
from framework.store.base import Claim, ConcurrencyLimit, Handoff, Store, Transition

LOG = logging.getLogger("fw.worker")
MAX_BACKOFF = 30.0
LOCKED_RETRY = 0.1
"""Seconds before a worker looks again at due instances it could not claim because another
client's transaction held them."""
MAX_OPEN_BACKOFF = 5.0
STOP_WAIT = 10.0
"""Seconds a stopping worker waits for each of its background tasks to end."""


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
        if concurrency is not None and (isinstance(concurrency, bool) or concurrency < 1):
            raise ValueError(
                f"concurrency {concurrency!r} is not a number of instances (1 or more)"
            )
        self.concurrency = concurrency or settings.concurrency
        self.lease = settings.lease
        self.poll_interval = settings.poll_interval
        self.shutdown_grace = self.lease / 2 if shutdown_grace is None else shutdown_grace
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runs: dict[str, tuple[InstanceRun, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        """The task of ``run`` (``_main``, or the caller's own)."""
        self._store: Store | None = None
        self._liveness: Liveness | None = None
        self._attempts = 0  # claims started so far
        self._idle_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._change = asyncio.Event()
        self._reserved = 0  # slots promised to creates in flight in this process (handoff)
        # While a backlog is worked through, the last tenth of the slots (none below 10) is
        # kept for instances falling due after the last ordinary claim: a short timer set
        # during a storm of due ones starts when it is due, not when the storm has drained
        # (see _claim_fresh). With no backlog every free slot is claimed into.
        self.headroom = self.concurrency // 10
        self._fresh_since = float("-inf")  # when the last ordinary claim looked
        self._fresh_due: float | None = None  # the next due time since then (None: read it)
        self._headroom_idle_since: float | None = None  # loop time the headroom sat idle from
        self._backlog = False  # the last ordinary claim took all it asked for
        self._idling = False  # the claim loop waits in _idle: its last claim found nothing

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
        self._liveness = Liveness(self, self._store)
        await self._liveness.register()  # shown in the registry once started
        self._take_handoffs()  # from now on, not only once the task below has started
        self._main = asyncio.create_task(self.run(), name=f"fw-worker {self.id}")

    async def run(self) -> None:
        """Work until ``stop()``; then release what is still held."""
        self._task = asyncio.current_task()
        self.app.entrypoints  # noqa: B018 - fails early and clearly when codegen never ran
        store = self._store or await self._open_store()
        if store is None:
            return
        self._store = store
        liveness = self._liveness or Liveness(self, store)
        if not liveness.registered:
            await liveness.register()
        heartbeat = asyncio.create_task(self._heartbeat_loop(store), name="heartbeat")
        pruner = asyncio.create_task(self._prune_loop(), name="pruner")
        watcher = asyncio.create_task(liveness.watch(), name="liveness watch")
        watchdog = LoopWatchdog(asyncio.get_running_loop())
        watchdog.start()
        freeze_loaded_objects()
        self.app.local_workers += 1
        self._take_handoffs()
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
            self._release_idle_waiters(RuntimeError(f"worker {self.id} stopped"))
            self._stop_handoffs()
            await self._drain(store)
            self.app.local_workers -= 1
            liveness.stop()
            watchdog.stop()
            for task in (heartbeat, pruner, watcher):
                task.cancel()
            await self._await_bounded(heartbeat, pruner, watcher)
            await self._await_bounded(asyncio.create_task(liveness.deregister(), name="deregister"))
            LOG.info("worker %s: stopped", self.id)

    async def _await_bounded(self, *tasks: asyncio.Task[None]) -> None:
        """Wait for ``tasks``, but never past ``STOP_WAIT``: a store call cut short by a lost
        connection can swallow a cancellation or retry for long, and a stop must not hang."""
        _, late = await asyncio.wait(tasks, timeout=STOP_WAIT)
        for task in late:
            task.cancel()
            LOG.warning(
                "worker %s: %s did not end within %g s of the stop; leaving it",
                self.id, task.get_name(), STOP_WAIT,
            )  # fmt: skip

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
        self._stop_handoffs()

    @property
    def running(self) -> int:
        """How many instances this worker runs now."""
        return len(self._runs)

    async def idle(self, timeout: float = 10.0) -> None:
        """Return once this worker runs nothing and a claim that started after this call found
        nothing due: everything done before the call has run as far as it can for now
        (instances wait for events or timers that are not due, or have ended).

        Exact, not a guess: it waits for the worker's own claim, never for a fixed time.

        Raises:
            TimeoutError: the worker was still busy after ``timeout`` seconds.
            RuntimeError: the worker is not running, or stopped meanwhile.
        """
        if self._main is None or self._main.done():
            raise RuntimeError(f"worker {self.id} is not running")
        entry = (self._attempts + 1, asyncio.get_running_loop().create_future())
        self._idle_waiters.append(entry)
        self._slot_freed.set()  # wake the claim loop for a fresh look
        try:
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            running = ", ".join(sorted(self._runs)) or "none"
            raise TimeoutError(
                f"worker {self.id} still busy after {timeout} s (running now: {running})"
            ) from None
        finally:
            if entry in self._idle_waiters:
                self._idle_waiters.remove(entry)

    def next_change(self) -> asyncio.Event:
        """An event set the next time this worker claims instances or a run of one ends."""
        return self._change

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def _reached_idle(self, attempt: int) -> None:
        """Claim ``attempt`` started with nothing running and found nothing due."""
        for entry in [e for e in self._idle_waiters if e[0] <= attempt]:
            self._idle_waiters.remove(entry)
            if not entry[1].done():
                entry[1].set_result(None)

    def _release_idle_waiters(self, error: BaseException) -> None:
        for _, waiter in self._idle_waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._idle_waiters.clear()

    def _idle_asked(self) -> bool:
        """Whether ``idle()`` waits for a claim that has not started yet."""
        return any(target > self._attempts for target, _ in self._idle_waiters)

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
            if claimed is None or claimed or self._idle_asked():
                continue
            await self._idle(store)

    # Hand-off: instances created in this process, claimed for this worker by their create.

    def reserve(self, store: Store, workflow: str, count: int) -> Handoff | None:
        """Up to ``count`` free slots for instances of ``workflow`` a create on ``store`` is
        about to store, or None (another store or loop, stopping, full, or a workflow whose
        concurrency limit only a claim enforces). Each slot is given back by ``adopt`` or
        ``unreserve``."""
        free = self.concurrency - len(self._runs) - self._reserved
        if (
            store is not self._store
            or self._stopping.is_set()
            or free <= 0
            or count <= 0
            or workflow in self.app.concurrency_limits
        ):
            return None
        limit = min(free, count)
        self._reserved += limit
        now = self.app.clock.now()
        return Handoff(self.id, limit, now, now + self.lease)

    def _take_handoffs(self) -> None:
        if self not in self.app.handoffs:
            self.app.handoffs.append(self)

    def _stop_handoffs(self) -> None:
        if self in self.app.handoffs:
            self.app.handoffs.remove(self)

    def unreserve(self, handoff: Handoff) -> None:
        """Give back the slots of ``handoff`` (its create failed)."""
        self._reserved -= handoff.limit
        self._slot_freed.set()  # a claim loop waiting for a free slot looks again

    async def adopt(self, store: Store, handoff: Handoff, claims: list[Claim]) -> None:
        """Run the instances a create claimed for this worker (``handoff``); released for
        another worker at once if this one stopped meanwhile."""
        self._reserved -= handoff.limit
        await self._start_runs(store, claims, due=handoff.now)

    async def _start_runs(self, store: Store, claims: list[Claim], due: float) -> None:
        """Run what was claimed; or, once the worker is stopping (it may have been asked to
        while a claim was under way), release it at once, due again at ``due``."""
        if self._stopping.is_set():
            for claim in claims:
                await self._release(store, claim.instance.id, claim.token, due)
            return
        for claim in claims:
            self._start_run(store, claim)
        if claims:
            self._changed()

    async def _claim(self, store: Store) -> int | None:
        """Claim due instances into the free slots (but the headroom, while a backlog is
        being worked through); the number claimed, or None when every slot but the headroom
        is busy (it waited, or claimed into the headroom: the loop looks again at once)."""
        free = self.concurrency - len(self._runs) - self._reserved
        limits = self._limits()
        headroom = self.headroom if self._backlog and not limits else 0
        if free <= headroom:
            await self._claim_fresh(store, free)
            return None
        self._headroom_idle_since = None
        self._attempts += 1
        attempt, nothing_running = self._attempts, not self._runs
        now = self.app.clock.now()
        self._fresh_since = now
        if self._fresh_due is not None and self._fresh_due < now:
            self._fresh_due = None  # due before this claim looked: no longer fresh
        asked = free - headroom
        claims = await store.claim(self.id, asked, now, now + self.lease, limits)
        self._backlog = len(claims) >= asked  # more may be due than was taken
        await self._start_runs(store, claims, due=now)
        if claims:
            # The runs just started take their first turn (their first step) before this
            # loop looks again: on SQLite that look runs on this thread and would come first.
            await asyncio.sleep(0)
        if not claims and nothing_running:
            self._reached_idle(attempt)
        return len(claims)

    async def _claim_fresh(self, store: Store, free: int) -> None:
        """With every slot but the headroom busy: claim into the headroom what fell due after
        the last ordinary claim looked (a timer set meanwhile, a create), or wait for it, a
        free slot or a wake-up. Whatever fell due before is a backlog, left to the ordinary
        claims as slots free (each takes the most recently due half first).

        The next such due time is read once and then kept up to date with the timers of the
        runs that end here (``_finished``); it is read again after a wake-up from another
        process, a poll interval or a claim into the headroom.

        A headroom that sat idle a whole poll interval is lent to the backlog: ``concurrency``
        instances still run at once when nothing fresh falls due (N instances waiting for
        each other at concurrency N all start)."""
        self._slot_freed.clear()
        if free <= 0:
            self._headroom_idle_since = None
            await self._first_of(self._slot_freed.wait(), timeout=self.poll_interval)
            return
        loop_now = asyncio.get_running_loop().time()
        if self._headroom_idle_since is None:
            self._headroom_idle_since = loop_now
        elif loop_now - self._headroom_idle_since >= self.poll_interval:
            self._headroom_idle_since = None
            await self._claim_into_headroom(store, free, since=None)
            return
        now = self.app.clock.now()
        if self._fresh_due is None:
            due = await store.next_wake_at((), now, since=self._fresh_since)
            self._fresh_due = math.inf if due is None else due
            now = self.app.clock.now()
        if self._fresh_due <= now:
            self._fresh_due = None
            if not await self._claim_into_headroom(store, free, since=self._fresh_since):
                # Due, yet none could be claimed: another client's transaction holds them (a
                # claim under way elsewhere, a client cut off mid-transaction; PostgreSQL's
                # claims skip locked rows). Look again shortly, not at once: a busy loop.
                self._fresh_due = now + min(LOCKED_RETRY, self.poll_interval)
            return
        timeout = min(self.poll_interval, self._fresh_due - now)
        await self._first_of(store.wait_for_work(timeout), self._slot_freed.wait(), timeout=timeout)
        if not self._slot_freed.is_set() and self.app.clock.now() < self._fresh_due:
            self._fresh_due = None  # woken from elsewhere, or a poll interval passed

    async def _claim_into_headroom(self, store: Store, free: int, since: float | None) -> int:
        """Claim up to ``free`` due instances (only those due from ``since``, if given);
        nothing once the worker is stopping (it may have been asked to while this looked).
        The number claimed."""
        self._headroom_idle_since = None
        if self._stopping.is_set():
            return 0
        now = self.app.clock.now()
        claims = await store.claim(self.id, free, now, now + self.lease, since=since)
        await self._start_runs(store, claims, due=now)
        return len(claims)

    async def _idle(self, store: Store) -> None:
        # Clear before reading: a run that ends (suspending on a timer, say) while the next
        # wake time is read sets it again, so that wake-up is never lost. Such a run was
        # still running when read, its lease expiry standing in for its wake time: only a
        # worker idle throughout the read may skip the clock ahead.
        self._slot_freed.clear()
        self._idling = True
        try:
            await self._wait_idle(store)
        finally:
            self._idling = False

    async def _wait_idle(self, store: Store) -> None:
        limits = self._limits()
        next_wake = await store.next_wake_at(limits, self.app.clock.now())
        now = self.app.clock.now()
        if (
            next_wake is not None
            and next_wake > now
            and not self._runs
            and not self._slot_freed.is_set()
            and self.app.clock.may_skip()
        ):
            self.app.clock.skip_to(next_wake)
            return
        timeout = self.poll_interval
        if next_wake is not None:
            timeout = min(timeout, max(0.0, next_wake - now))
        await self._first_of(store.wait_for_work(timeout), self._slot_freed.wait(), timeout=timeout)

    def _limits(self) -> list[ConcurrencyLimit]:
        """The concurrency limits of the app's workflows, as claims enforce them."""
        return [c.store_limit for c in self.app.concurrency_limits.values()]

    def _start_run(self, store: Store, claim: Claim) -> None:
        run = InstanceRun(self.app, store, claim)
        run.worker_stopping = self._shutting_down
        task = asyncio.create_task(run.execute(), name=f"fw-instance {claim.instance.id}")
        self._runs[claim.instance.id] = (run, task)
        store.note_load(len(self._runs))
        task.add_done_callback(lambda _: self._finished(claim.instance.id, task))

    def _shutting_down(self) -> bool:
        """Whether this worker stops (asked to, or its task cancelled: the end of the
        process's event loop cancels every task at once)."""
        task = self._main if self._main is not None else self._task
        return self._stopping.is_set() or (task is not None and task.cancelling() > 0)

    def _finished(self, instance_id: str, task: asyncio.Task[None]) -> None:
        current = self._runs.get(instance_id)
        ended = False
        if current is not None and current[1] is task:
            del self._runs[instance_id]
            ended = current[0].ended
            waits_until = current[0].waits_until
            if waits_until is not None and self._fresh_due is not None:
                self._fresh_due = min(self._fresh_due, waits_until)
        if self._store is not None:
            self._store.note_load(len(self._runs))
        if not (ended and self._stays_idle()):
            self._slot_freed.set()
        self._changed()
        if not task.cancelled() and task.exception() is not None:
            LOG.error("instance %s: the run crashed", instance_id, exc_info=task.exception())

    def _stays_idle(self) -> bool:
        """Whether the claim loop, idle, may go on waiting when a run ends its instance:
        its last claim found less due than it asked for, and what falls due since then
        comes with a wake-up or a timer it waits for (a parent woken by this end is
        notified). But the end of a run may free a place under a workflow's concurrency
        limit, which no wake-up announces; ``idle()`` waits for a claim; and a test's
        skipping clock jumps to the next timer only once nothing runs, which the loop must
        look at."""
        return (
            self._idling
            and not self._backlog
            and not self.app.concurrency_limits
            and not self._idle_waiters
            and not self.app.clock.may_skip()
        )

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
            for instance_id, (run, task) in running.items():
                if instance_id not in held and not task.done():
                    LOG.info(
                        "instance %s: lease lost (terminated, restarted or expired); stopping it",
                        instance_id,
                    )
                    run.cancelled_by_worker = True
                    task.cancel()

    async def _prune_loop(self) -> None:
        """Delete ended instances past their retention (the app's, their workflow's or
        their own, set at create)."""
        from framework.runtime.retention import prune

        while True:
            try:
                report = await prune(self.app)
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
        for run in late_runs:
            run.cancelled_by_worker = True
        for task in late:
            task.cancel()
        if late:  # a step that swallows its cancellation is left behind, fenced by its lease
            await asyncio.wait(late, timeout=STOP_WAIT)
        now = self.app.clock.now()
        for run in late_runs:
            await self._release(store, run.instance_id, run.token, now)

    async def _release(self, store: Store, instance_id: str, token: str, due: float) -> None:
        """Give up this worker's lease (``token``) on ``instance_id``, queued, due at ``due``
        (nothing if it was lost meanwhile or the store fails: the lease then expires)."""
        transition = Transition(instance_id, token, status="queued", wake_at=due, release=True)
        with contextlib.suppress(LeaseLostError, FwError):
            await store.apply(transition, self.app.clock.now())

    async def _pause(self, seconds: float) -> None:
        await self._first_of(self._stopping.wait(), timeout=seconds)

    async def _first_of(self, *waits: Coroutine[Any, Any, object], timeout: float) -> None:
        await first_of(*waits, self._stopping.wait(), timeout=timeout)
