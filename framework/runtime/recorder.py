"""The journal bookkeeping of one run: which step comes next, the rows held back for the next
commit, the commits themselves (retried while the database fails), and whether, and why, the
workflow body must stop.

The other parts of a run talk to it through methods: ``request`` the next step (a ``Suspend``
answers that the body must stop there), ``remember`` a row, ``commit``, ``suspend`` on a wait,
``stop`` for a pause or a shutdown. It knows nothing of steps' code, nor of how a run ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NoReturn

from framework.errors import FwError, NonDeterminismError, StoreClosedError, StoreError
from framework.runtime.clock import Clock
from framework.runtime.journal import Journal, StepKey
from framework.runtime.metrics import ProcessMetrics
from framework.runtime.signals import Ended
from framework.runtime.suspension import Suspend
from framework.store.base import (
    TERMINAL,
    Claim,
    LogRow,
    Status,
    StepKind,
    StepRow,
    Store,
    TakenEvent,
    Transition,
)

LOG = logging.getLogger("fw.worker")

StopReason = Literal["wait", "pause", "shutdown", "fatal"]


@dataclass
class Waits:
    """What a stopped body waits for: the earliest timer, event types and child instances."""

    wake_at: float | None = None
    event_types: list[str] = field(default_factory=list[str])
    children: list[str] = field(default_factory=list[str])

    def add(self, wake_at: float | None, event_type: str | None, children: Iterable[str]) -> None:
        if wake_at is not None:
            self.wake_at = wake_at if self.wake_at is None else min(self.wake_at, wake_at)
        if event_type is not None:
            self.event_types.append(event_type)
        self.children.extend(children)


class Recorder:
    """The journal bookkeeping of one claim of one instance."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        claim: Claim,
        *,
        replay_only: bool,
        retry_budget: float,
        on_ended: Callable[[str, Ended | None], None],
        metrics: ProcessMetrics | None = None,
    ) -> None:
        row = claim.instance
        self.store = store
        self.workflow = row.workflow
        self.metrics = None if replay_only else metrics
        """Where this run counts what it does (None: nowhere, as in ``fw replay``)."""
        self.clock = clock
        self.instance_id = row.id
        self.token = claim.token
        self.journal = Journal(row.id, claim.steps)
        self.replay_only = replay_only
        """Check the code against the journal, executing nothing (``fw replay``)."""
        self.terminating = row.control == "terminate"
        """Terminated with compensation: replay to the end of the journal, compensate, end."""
        self.status: Status | None = None
        """The instance's status after this claim's last commit (None: none committed yet)."""
        self._generation = row.generation
        self._retry_budget = retry_budget
        self._on_ended = on_ended
        self._version: str | None = None
        self._stop_reason: StopReason | None = None
        self._frontier: str | None = None
        self._fatal: FwError | None = None
        self._in_body = True
        self._last_key: StepKey | None = None
        self._pending: list[StepRow] = []
        self._deferred = False  # _pending holds a completed step's row (see ``defer``)
        self._flush_soon: asyncio.Handle | None = None
        self._flushing: asyncio.Task[Status] | None = None
        self._logs: list[LogRow] = []
        self._logs_written = 0
        self._waits = Waits()
        self._deadline_at: float | None = None
        self._expired_at: str | None = None
        self._inflight = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self._writes = asyncio.Lock()
        """Held by each write to the store, so that concurrent branches of the body
        (``asyncio.gather``) commit one at a time, in the order they asked: a store with
        several connections would otherwise commit them in any order (events of one type
        taken out of order, journal entries in another order than the code's)."""
        self._taking = asyncio.Lock()
        """Held by each event wait from before its catch-up commit to its take: gathered
        waits take their events in the order the body asked, whichever catch-up awaits."""

    # What the run reads.

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the body stopped (or must stop at its next step); None while it may go on."""
        return self._stop_reason

    @property
    def fatal(self) -> FwError | None:
        """The error that holds the instance (non-determinism), if one was found."""
        return self._fatal

    @property
    def frontier(self) -> str | None:
        """In replay-only mode, the first step the journal did not hold."""
        return self._frontier

    @property
    def waits(self) -> Waits:
        return self._waits

    @property
    def deadline_at(self) -> float | None:
        """When the instance's deadline passes (epoch seconds), None for no deadline."""
        return self._deadline_at

    @property
    def expired_at(self) -> str | None:
        """The step the body had reached when it ran past its deadline (None: it has not)."""
        return self._expired_at

    def use_deadline(self, deadline_at: float | None) -> None:
        """The instance must end by ``deadline_at``: past it, the body stops at its next step
        that is not journaled complete (``expire``), and a wait wakes by it."""
        self._deadline_at = deadline_at

    def past_deadline(self) -> bool:
        return self._deadline_at is not None and self.clock.now() >= self._deadline_at

    def expire(self, label: str) -> NoReturn:
        """The deadline passed at step ``label``: stop the body for good (the run times out,
        then compensates)."""
        self._expired_at = self._expired_at or label
        if self._stop_reason is None:
            self._stop_reason = "fatal"
        raise Suspend()

    def wake_by_deadline(self, wake_at: float | None) -> float | None:
        """``wake_at`` of a wait, brought forward to the deadline (while it is ahead), so a
        worker claims the instance when it passes, whatever it waits for."""
        deadline = self._deadline_at
        if deadline is None or deadline <= self.clock.now():
            return wake_at
        return deadline if wake_at is None else min(wake_at, deadline)

    def idempotency_key(self, key: StepKey) -> str:
        """The id of a step of this instance, stable across retries and replays (and a
        child's instance id); a restart (a new generation) gets new ones."""
        suffix = f":r{self._generation}" if self._generation else ""
        return f"{self.instance_id}:{key.name}:{key.count}{suffix}"

    # What changes the run's course.

    def use_version(self, version: str | None) -> None:
        """The code version recorded with each commit from now on."""
        self._version = version

    def request(self, name: str, kind: StepKind) -> tuple[StepKey, bool]:
        """The key of the body's next step and whether it runs concurrently with another;
        raises ``Suspend`` where the body must stop instead."""
        if not self._in_body and kind != "rollback":
            raise Suspend()
        if self._stop_reason is not None and not (
            self._stop_reason == "wait" and kind in ("sleep", "event")
        ):
            raise Suspend()  # a wait of another branch (gather) still joins the suspension
        try:
            key = self.journal.request(name, kind)
        except NonDeterminismError as exc:
            self.hold(exc)
            raise Suspend() from None
        self._last_key = key
        entry = self.journal.get(key)
        if (
            self._in_body
            and self._deadline_at is not None
            and (entry is None or entry.status == "waiting")
            and self.past_deadline()
        ):
            self.expire(key.label)
        if entry is None and (self.replay_only or (self.terminating and self._in_body)):
            self.stop_at_frontier(key.label)  # the end of the journal: run nothing new
        return key, self._inflight > 0

    def hold(self, exc: FwError) -> None:
        """Stop the body for good: ``exc`` (non-determinism) holds the instance."""
        self._fatal = exc
        if self._stop_reason is None:
            self._stop_reason = "fatal"

    def stop_at_frontier(self, label: str) -> NoReturn:
        """Replay-only (or terminating) run: the journal ends at ``label``; stop there."""
        self._frontier = self._frontier or label
        raise Suspend()

    def suspend(
        self,
        *,
        wake_at: float | None = None,
        event_type: str | None = None,
        children: Iterable[str] = (),
    ) -> NoReturn:
        """Stop the body to wait for a time, an event or children."""
        self._waits.add(wake_at, event_type, children)
        if self.replay_only and self._frontier is None and self._last_key is not None:
            self._frontier = f"{self._last_key.label} (waiting)"
        if self._stop_reason is None:
            self._stop_reason = "wait"
        raise Suspend()

    def stop(self, reason: StopReason) -> None:
        """Ask the body to stop at its next step (a shutdown or a pause)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def leave_body(self) -> None:
        """The body is over; only rollback steps may run now (compensation), whatever
        stopped the body."""
        self._in_body = False
        self._stop_reason = None

    # Concurrent steps (``gather`` in the body).

    def enter_step(self) -> None:
        self._inflight += 1
        self._settled.clear()

    def leave_step(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._settled.set()

    async def settle(self) -> None:
        """Wait for steps still running in other branches of the body (``gather``)."""
        await self._settled.wait()

    # Rows and commits.

    def make_row(
        self,
        key: StepKey,
        kind: StepKind,
        status: Literal["complete", "errored", "waiting"],
        *,
        concurrent: bool = False,
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> StepRow:
        extra = dict(detail or {})
        if concurrent:
            extra["concurrent"] = True
        return StepRow(
            self.instance_id,
            key.name,
            key.count,
            key.seq,
            kind,
            status,
            detail=json.dumps(extra) if extra else None,
            **fields,
        )

    def keep_log(self, row: LogRow) -> None:
        """Journal a ``ctx.log`` line with the next commit."""
        self._logs.append(row)

    @property
    def next_log_line(self) -> int:
        """The number of the next line this run logs."""
        return len(self._logs) + self._logs_written + 1

    def remember(self, row: StepRow) -> None:
        """Journal ``row`` with the next commit."""
        self._pending.append(row)
        self.journal.record(row)

    def defer(self, row: StepRow) -> None:
        """Journal the completed step ``row`` with the run's next commit, which comes before
        anything else the run does can follow from it: before the next step runs, an event
        is taken, the body waits or the instance ends (one transaction with that end), and
        at the latest once the body yields to the event loop. A body that returns right
        after its last step ends in one commit, not two; a crash in between runs the step
        again, as a crash just before its commit would."""
        self.remember(row)
        self._deferred = True
        if self._flush_soon is None:
            self._flush_soon = asyncio.get_running_loop().call_soon(self._flush_later)

    @property
    def behind(self) -> bool:
        """Whether a completed step's row is not committed yet (see ``defer``)."""
        return self._deferred or self._flushing is not None

    async def catch_up(self) -> None:
        """Before the run does what may follow from a completed step: commit the rows
        ``defer`` holds back (or wait for such a commit under way), and raise ``Suspend``
        if that commit found the instance paused (the body stops there)."""
        if self._deferred:
            await self.commit()
        else:
            await self._flushed()
        if self._stop_reason is not None:
            raise Suspend()

    def _flush_later(self) -> None:
        """The body yielded to the event loop with a completed step's row held back: commit
        it in a task of its own, which later commits wait for."""
        self._flush_soon = None
        if self._deferred and self._flushing is None:
            self._flushing = asyncio.ensure_future(self._commit(()))
            self._flushing.add_done_callback(self._flush_ended)

    def _flush_ended(self, task: asyncio.Task[Status]) -> None:
        """A failed flush is kept for the next commit to raise (its error retrieved here
        all the same: the run may have been cancelled meanwhile). A flush that succeeded
        makes way for the next: rows held back while it ran are committed in turn."""
        if task.cancelled() or task.exception() is not None:
            return
        if self._flushing is task:
            self._flushing = None
        if self._deferred and self._flush_soon is None:
            self._flush_soon = asyncio.get_running_loop().call_soon(self._flush_later)

    async def _flushed(self) -> None:
        """Wait for the commit ``_flush_later`` started, raising what it raised."""
        while (flushing := self._flushing) is not None:
            try:
                await asyncio.shield(flushing)
            finally:
                if self._flushing is flushing and flushing.done():
                    self._flushing = None

    async def commit(self, rows: Iterable[StepRow] = (), **changes: Any) -> Status:
        """Write the remembered rows, ``rows`` and the instance's ``changes`` in one
        transaction (after any commit of held-back rows under way); return the instance's
        status after it."""
        await self._flushed()
        return await self._commit(rows, **changes)

    async def _commit(self, rows: Iterable[StepRow], **changes: Any) -> Status:
        # What is written is taken before the commit yields: rows and log lines added
        # meanwhile (by a concurrent step) go with the next commit.
        written = [*self._pending, *rows]
        self._pending = []
        self._deferred = False
        logs, self._logs = self._logs, []
        self._logs_written += len(logs)
        transition = Transition(
            self.instance_id, self.token, steps=written, version=self._version, logs=logs,
            **changes,
        )
        status = self.status = await self._apply(transition)
        if self.metrics is not None:
            started: dict[str, int] = {}
            for child in transition.children:
                started[child.workflow] = started.get(child.workflow, 0) + 1
            for workflow, number in started.items():
                self.metrics.instance_started(workflow, number)
            if status in TERMINAL:
                self.metrics.instance_ended(self.workflow, status)
        if status in TERMINAL:
            self._on_ended(self.instance_id, _ended_by(transition, status))
        for row in written:
            self.journal.record(row)
        if status == "paused" and "status" not in changes:
            self.stop("pause")
        return status

    async def take_event(self, event_type: str, done: StepRow, now: float) -> TakenEvent | None:
        """Consume the oldest buffered event of ``event_type``, journaling ``done`` complete
        with its payload in the same transaction; None when no such event waits."""
        async with self._taking:  # taken before anything awaits: in the order asked
            await self.catch_up()
            async with self._writes:
                taken = await self.store.take_event(
                    self.token, self.instance_id, event_type, done, now
                )
        if taken is not None:
            self.journal.record(replace(done, output=taken.payload))
        return taken

    async def _apply(self, transition: Transition) -> Status:
        """Commit, retrying a failing database (locked, full) for up to half a lease so a
        step that ran is journaled rather than run again; then fail naming what was lost."""
        delay, waited = 0.05, 0.0
        while True:
            try:
                async with self._writes:
                    return await self.store.apply(transition, self.clock.now())
            except StoreClosedError:
                raise  # the app is shutting down: no later try can succeed
            except StoreError as exc:
                if waited + delay > self._retry_budget:
                    raise StoreError(f"{_describe(transition)}: {exc}") from None
                LOG.warning("%s: %s; retrying in %.2f s", _describe(transition), exc, delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 2.0)


def _ended_by(transition: Transition, status: Status) -> Ended | None:
    """How ``transition`` ended its instance, when it is the commit that did (None: the
    stored row must be read). A completion stores its output and an error its error as
    given; the other of the two is never read for that status."""
    if transition.status != status:
        return None
    if status == "complete" and transition.output is not None:
        return Ended(status, transition.output, None)
    if status == "errored" and transition.error is not None:
        return Ended(status, None, transition.error)
    return None


def _describe(transition: Transition) -> str:
    """What a failed commit would have recorded, for the error message."""
    what: list[str] = []
    if transition.steps:
        names = ", ".join(repr(s.name) for s in transition.steps)
        what.append(f"the result of step {names}")
    if transition.status is not None:
        what.append(f"its status {transition.status!r}")
    recorded = " and ".join(what) or "its progress"
    return f"instance {transition.instance_id!r}: could not record {recorded}"
