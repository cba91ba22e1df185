"""One run of one instance, its lifecycle: replay the journal, run new steps, then stop,
finish or fail.

A run starts when a worker claims the instance and ends in one of four ways: the body
returns (``complete``), raises (``errored``, after rollbacks and ``on_failure``), must wait
(``waiting``: a timer, a retry delay, an event or children; the lease is released and a
later claim replays from the top), or loses its lease (another actor terminated or restarted
it, or its worker stalled past the lease), in which case it writes nothing more.

The run is made of parts, each in its own module: the ``Recorder`` (journal bookkeeping:
``recorder.py``), the ``StepExecutor`` (one step, durably: ``durable.py``), the ``StepApi``
(what the body asks for: ``step_api.py``) and the ``Compensator`` (rollbacks and
``on_failure``: ``compensation.py``). This module only decides how the run ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from framework.errors import (
    CrashLoopError,
    FwError,
    LeaseLostError,
    NonDeterminismError,
    SerializationError,
    WorkflowTimeoutError,
)
from framework.runtime import serialization
from framework.runtime.compensation import Compensator
from framework.runtime.context import WorkflowContext, WorkflowLogger
from framework.runtime.definition import WorkflowDefinition
from framework.runtime.durable import StepExecutor
from framework.runtime.durations import format_duration
from framework.runtime.failures import error_info, message_of, raised_by_user
from framework.runtime.journal import Journal
from framework.runtime.recorder import Recorder, StopReason
from framework.runtime.records import ErrorInfo, cut_text
from framework.runtime.step_api import StepApi
from framework.runtime.steps import WorkflowStep
from framework.runtime.suspension import Suspend
from framework.store.base import TERMINAL, Claim, Status, Store

if TYPE_CHECKING:
    from framework.runtime.app import App

LOG = logging.getLogger("fw.worker")


class InstanceRun:
    """Runs one claim of one instance."""

    def __init__(self, app: App, store: Store, claim: Claim, *, replay_only: bool = False) -> None:
        row = claim.instance
        self._app = app
        self._claim = claim
        self._row = row
        self.instance_id = row.id
        self.workflow = row.workflow
        self._recorder = Recorder(
            store,
            app.clock,
            claim,
            replay_only=replay_only,
            retry_budget=app.settings.runtime.lease / 2,
            on_ended=app.signals.changed,
            metrics=app.metrics,
        )
        self._executor = StepExecutor(app, self._recorder, row.workflow)
        self._log = WorkflowLogger(row.workflow, row.id, self._executor)
        self._api = StepApi(app, self._recorder, self._executor, self._log)
        self._compensator = Compensator(app, self._recorder, self._executor, self._log)
        self._params: Any = None
        self._deadline: float | None = None
        self.cancelled_by_worker = False
        """Set by the worker before it cancels this run's task (a stop, a lost lease)."""
        self._cancelled_by_its_code = False
        self.worker_stopping: Callable[[], bool] = lambda: True
        """Whether the process is stopping its worker (then any cancellation is fw's). The
        worker that runs this sets it; alone (``fw replay``), every cancellation is fw's."""
        self.waits_until: float | None = None
        """When this run ended waiting for a time: that time (its worker's next look)."""

    @property
    def token(self) -> str:
        """The lease token of this claim."""
        return self._recorder.token

    @property
    def journal(self) -> Journal:
        """The instance's journal, as replayed so far."""
        return self._recorder.journal

    @property
    def frontier(self) -> str | None:
        """In replay-only mode, the first step the journal did not hold."""
        return self._recorder.frontier

    @property
    def ended(self) -> bool:
        """Whether this run left the instance ended (complete, errored or terminated)."""
        return self._recorder.status in TERMINAL

    @property
    def fatal(self) -> FwError | None:
        """The error (non-determinism) that holds the instance, if one was found."""
        return self._recorder.fatal

    def stop(self, reason: StopReason) -> None:
        """Ask the body to stop at its next step (a shutdown or a pause)."""
        self._recorder.stop(reason)

    # The run.

    async def execute(self) -> None:
        """Run until the instance completes, fails, waits or is lost. Never raises but for
        cancellation; store failures are logged and the lease left to expire."""
        try:
            await self._execute()
        except LeaseLostError:
            LOG.info(
                "instance %s: no longer held by this worker; dropped this run", self.instance_id
            )
        except FwError as exc:
            LOG.error("instance %s (%s): %s", self.instance_id, self.workflow, cut_text(str(exc)))

    async def _execute(self) -> None:
        limit = self._app.settings.runtime.crash_loop_limit
        if self._claim.crashed and self._row.crash_count > limit:
            await self._end_crash_loop(limit)
            return
        try:
            definition = self._app.definition(self.workflow)
            self._recorder.use_version(self._app.version_of(self.workflow))
            self._params = serialization.load(
                self._row.params, definition.params_type, "the stored JSON of its params"
            )
            self._deadline = self._app.deadline(self.workflow)
        except SerializationError as exc:  # no code change can make these params readable
            await self._refuse_params(exc)
            return
        except BaseException as exc:
            if not self._users(exc):
                raise
            await self._park(self._as_raised(exc))
            return
        if self._deadline is not None and not self._recorder.replay_only:
            self._recorder.use_deadline(await self._run_started_at() + self._deadline)
        ctx = WorkflowContext(
            self._api,
            self._params,
            WorkflowStep(self._api),
            instance_id=self.instance_id,
            created_at=self._row.created_at,
            log=self._log,
        )
        try:
            output = await definition.invoke(ctx)
        except Suspend:
            await self._recorder.settle()
            if self._recorder.terminating:
                await self._terminate(definition)
            elif self._recorder.expired_at is not None:
                await self._time_out(definition)
            else:
                await self._commit_stop()
            return
        except BaseException as exc:
            if not self._users(exc):
                raise
            exc = self._as_raised(exc)
            await self._recorder.settle()
            if self._recorder.terminating:
                await self._terminate(definition)
            elif self._recorder.expired_at is not None:
                await self._time_out(definition)
            else:
                await self._fail(definition, exc)
            return
        await self._recorder.settle()
        if self._recorder.terminating:
            await self._terminate(definition)
        elif self._recorder.expired_at is not None:
            await self._time_out(definition)
        else:
            await self._complete(definition, output)

    def _users(self, exc: BaseException) -> bool:
        """Whether ``exc``, caught around the workflow's code, is that code's failure: what
        ``raised_by_user`` says, and a cancellation of this run's task that neither its
        worker nor the process's stop asked for (the code cancelled its own task, say).
        Such a run was left holding its instance, to be run again and again after its
        lease, then blamed on a dying worker."""
        if raised_by_user(exc):
            return True
        if not isinstance(exc, asyncio.CancelledError) or self.cancelled_by_worker:
            return False
        if self.worker_stopping():
            return False
        task = asyncio.current_task()
        while task is not None and task.cancelling():
            task.uncancel()  # what follows (the commit of the failure) is not cancelled
        self._cancelled_by_its_code = True
        return True

    def _as_raised(self, exc: BaseException) -> BaseException:
        """A cancellation the workflow's code caused, said as such (with its traceback)."""
        if not self._cancelled_by_its_code or str(exc):
            return exc
        said = asyncio.CancelledError(
            "the workflow's code cancelled the task running it (a cancellation fw did not ask for)"
        )
        return said.with_traceback(exc.__traceback__)

    async def _run_started_at(self) -> float:
        """When the instance's deadline started counting: its creation, or its last restart."""
        if self._row.generation == 0:
            return self._row.created_at
        restarted = await self._recorder.store.restarted_at(self.instance_id)
        return self._row.created_at if restarted is None else restarted

    async def _time_out(self, definition: WorkflowDefinition) -> None:
        """Past its deadline: compensate, then end errored with ``WorkflowTimeoutError``."""
        assert self._deadline is not None
        error = ErrorInfo(
            name=WorkflowTimeoutError.__name__,
            message=(
                f"instance {self.instance_id!r} ran past its deadline of "
                f"{format_duration(self._deadline)} at step {self._recorder.expired_at!r}"
            ),
            step=self._recorder.expired_at,
            retryable=False,
        )
        if await self._compensate(definition, error):
            await self._recorder.commit(
                status="errored", error=error.model_dump_json(), release=True
            )
            LOG.warning("instance %s (%s): errored: %s", self.instance_id, self.workflow, error)

    async def _complete(self, definition: WorkflowDefinition, output: Any) -> None:
        leftover = [
            r
            for r in self._recorder.journal.unreplayed()
            if r.kind in ("do", "sleep", "event", "child")
        ]
        if self._recorder.fatal is None and leftover:
            names = ", ".join(repr(r.name) for r in leftover)
            self._recorder.hold(
                NonDeterminismError(
                    f"instance {self.instance_id!r}: the workflow returned without asking for "
                    f"journaled steps {names}; the workflow changed under this instance",
                    step=leftover[0].name,
                )
            )
        if self._recorder.fatal is not None:
            await self._commit_stop()
            return
        try:
            data = serialization.dump(
                output,
                definition.output_type,
                self._app.settings.runtime.payload_limit,
                f"the output of instance {self.instance_id!r}",
            )
        except FwError as exc:
            await self._fail(definition, exc)
            return
        await self._recorder.commit(status="complete", output=data, release=True)
        LOG.info("instance %s (%s): complete", self.instance_id, self.workflow)

    async def _commit_stop(self) -> None:
        """Commit whatever made the body stop: a fatal error, a wait, a pause, a shutdown."""
        if self._recorder.fatal is not None:
            await self._hold(self._recorder.fatal)
        elif self._recorder.stop_reason == "wait":
            waits = self._recorder.waits
            wake_at = self._recorder.wake_by_deadline(waits.wake_at)
            await self._recorder.commit(
                status="waiting",
                wake_at=wake_at,
                wake_on_events=waits.event_types,
                wake_on_children=waits.children,
                release=True,
            )
            self.waits_until = wake_at
        else:
            await self._recorder.commit(
                status="queued", wake_at=self._recorder.clock.now(), release=True
            )

    async def _fail(self, definition: WorkflowDefinition, exc: BaseException) -> None:
        error = error_info(exc)
        if await self._compensate(definition, error):
            await self._recorder.commit(
                status="errored", error=error.model_dump_json(), release=True
            )
            LOG.warning("instance %s (%s): errored: %s", self.instance_id, self.workflow, error)

    async def _terminate(self, definition: WorkflowDefinition) -> None:
        """Terminated with compensation: roll back what completed, call on_failure, end."""
        error = ErrorInfo(
            name="Terminated", message="terminated on request; compensation ran", retryable=False
        )
        if await self._compensate(definition, error):
            await self._recorder.commit(
                status="terminated", error=error.model_dump_json(), release=True
            )
            LOG.info(
                "instance %s (%s): terminated after compensating", self.instance_id, self.workflow
            )

    async def _compensate(self, definition: WorkflowDefinition, error: ErrorInfo) -> bool:
        """Run the compensation; False when a wait stopped it (committed here; the next run
        carries on)."""
        done = await self._compensator.compensate(
            definition, error, self._api.rollbacks, self._params
        )
        if not done:
            await self._commit_stop()
        return done

    async def _hold(self, exc: FwError) -> None:
        error = error_info(exc)
        block = self._app.settings.runtime.on_nondeterminism == "block"
        status: Status = "paused" if block else "errored"
        await self._recorder.commit(status=status, error=error.model_dump_json(), release=True)
        LOG.error(
            "instance %s (%s): %s; held %s", self.instance_id, self.workflow, error.message, status
        )

    async def _refuse_params(self, exc: SerializationError) -> None:
        """The stored params cannot be read (stored before fw refused such JSON): end it."""
        error = error_info(exc)
        await self._recorder.commit(status="errored", error=error.model_dump_json(), release=True)
        LOG.error("instance %s (%s): errored: %s", self.instance_id, self.workflow, error.message)

    async def _park(self, exc: BaseException) -> None:
        """The workflow's code cannot be loaded: keep the instance and try again later."""
        retry_at = self._recorder.clock.now() + max(10.0, self._app.settings.runtime.poll_interval)
        await self._recorder.commit(status="queued", wake_at=retry_at, release=True)
        LOG.error(
            "instance %s (%s): cannot load the workflow, will retry in 10 s: %s: %s",
            self.instance_id,
            self.workflow,
            type(exc).__name__,
            message_of(exc),
        )

    async def _end_crash_loop(self, limit: int) -> None:
        crashes: list[object] = json.loads(self._row.crashes) if self._row.crashes else []
        error = ErrorInfo(
            name=CrashLoopError.__name__,
            message=(
                f"the worker running this instance died {self._row.crash_count} times in a row, "
                f"more than [runtime] crash_loop_limit = {limit} allows (the first run and "
                f"{limit} recoveries); fix the cause (memory, a native crash, a killed process) "
                "and restart it"
            ),
            details={"crashes": crashes},
            retryable=False,
        )
        await self._recorder.commit(status="errored", error=error.model_dump_json(), release=True)
        LOG.error("instance %s (%s): %s", self.instance_id, self.workflow, error.message)
