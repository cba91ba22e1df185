"""One run of one instance: replay its journal, run new steps, then stop, finish or fail.

A run starts when a worker claims the instance and ends in one of four ways: the body
returns (``complete``), raises (``errored``, after rollbacks and ``on_failure``), must wait
(``waiting``: a timer, a retry delay, an event or children; the lease is released and a
later claim replays from the top), or loses its lease (another actor terminated or restarted
it, or its worker stalled past the lease), in which case it writes nothing more.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from framework.errors import (
    CrashLoopError,
    EventTimeoutError,
    FwError,
    LeaseLostError,
    NonDeterminismError,
    NonRetryableError,
    PayloadTooLargeError,
    SerializationError,
    StepError,
    StepTimeoutError,
    StoreError,
)
from framework.runtime import children, serialization
from framework.runtime.compensation import CompletedStep, compensate_all
from framework.runtime.context import (
    StepContext,
    WorkflowContext,
    WorkflowLogger,
)
from framework.runtime.definition import Branch, StepDefinition, WorkflowDefinition
from framework.runtime.durations import Duration, format_duration, parse_duration
from framework.runtime.failures import message_of, raised_by_user, traceback_of
from framework.runtime.journal import Journal, StepKey, detail_of
from framework.runtime.records import ErrorInfo, cut_text
from framework.runtime.retries import Retries, RetryPolicy
from framework.runtime.steps import WorkflowStep
from framework.runtime.suspension import Suspend
from framework.runtime.tracing import step_span
from framework.store.base import (
    TERMINAL,
    Claim,
    Status,
    StepKind,
    StepRow,
    Store,
    Transition,
)

if TYPE_CHECKING:
    from framework.runtime.app import App
    from framework.runtime.handles import Instance

LOG = logging.getLogger("fw.worker")
NOT_RETRYABLE = (NonRetryableError, SerializationError, PayloadTooLargeError)

StopReason = Literal["wait", "pause", "shutdown", "fatal", "closed"]


@dataclass
class _Waits:
    wake_at: float | None = None
    event_types: list[str] = field(default_factory=list[str])
    children: list[str] = field(default_factory=list[str])

    def add(self, wake_at: float | None, event_type: str | None, children: Iterable[str]) -> None:
        if wake_at is not None:
            self.wake_at = wake_at if self.wake_at is None else min(self.wake_at, wake_at)
        if event_type is not None:
            self.event_types.append(event_type)
        self.children.extend(children)


@dataclass(frozen=True)
class _StepScope:
    run: InstanceRun
    key: StepKey

    @property
    def idempotency_key(self) -> str:
        return self.run.idempotency_key(self.key)


_current_step: ContextVar[_StepScope | None] = ContextVar("fw_current_step", default=None)


class InstanceRun:
    """Runs one claim of one instance."""

    def __init__(self, app: App, store: Store, claim: Claim, *, replay_only: bool = False) -> None:
        row = claim.instance
        self.app = app
        self.store = store
        self.clock = app.clock
        self.row = row
        self.instance_id = row.id
        self.workflow = row.workflow
        self.created_at = row.created_at
        self.token = claim.token
        self.claim = claim
        self.journal = Journal(row.id, claim.steps)
        self.version: str | None = None
        self.stop_reason: StopReason | None = None
        self.replay_only = replay_only
        """Check the code against the journal, executing nothing (``fw replay``)."""
        self.frontier: str | None = None
        """In replay-only mode, the first step the journal did not hold."""
        self._last_key: StepKey | None = None
        self.terminating = row.control == "terminate"
        """Terminated with compensation: replay to the end of the journal, compensate, end."""
        self.fatal: FwError | None = None
        self.in_body = True
        self._pending: list[StepRow] = []
        self._waits = _Waits()
        self._inflight = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self.rollbacks: list[CompletedStep] = []
        self.step_outputs: dict[str, Any] = {}
        self.params: Any = None
        self.log = WorkflowLogger(self)

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
        limit = self.app.settings.runtime.crash_loop_limit
        if self.claim.crashed and self.row.crash_count > limit:
            await self._end_crash_loop(limit)
            return
        try:
            definition = self.app.definition(self.workflow)
            self.version = self.app.version_of(self.workflow)
            self.params = serialization.load(
                self.row.params, definition.params_type, "the stored JSON of its params"
            )
        except SerializationError as exc:  # no code change can make these params readable
            await self._refuse_params(exc)
            return
        except BaseException as exc:
            if not raised_by_user(exc):
                raise
            await self._park(exc)
            return
        ctx = WorkflowContext(self, self.params, WorkflowStep(self))
        try:
            output = await definition.invoke(ctx)
        except Suspend:
            await self.settle()
            await (self._terminate(definition) if self.terminating else self.commit_stop())
            return
        except BaseException as exc:
            if not raised_by_user(exc):
                raise
            await self.settle()
            await (self._terminate(definition) if self.terminating else self._fail(definition, exc))
            return
        await self.settle()
        await (
            self._terminate(definition) if self.terminating else self._complete(definition, output)
        )

    async def _complete(self, definition: WorkflowDefinition, output: Any) -> None:
        leftover = [
            r for r in self.journal.unreplayed() if r.kind in ("do", "sleep", "event", "child")
        ]
        if self.fatal is None and leftover:
            names = ", ".join(repr(r.name) for r in leftover)
            self.fatal = NonDeterminismError(
                f"instance {self.instance_id!r}: the workflow returned without asking for "
                f"journaled steps {names}; the workflow changed under this instance"
            )
        if self.fatal is not None:
            await self.commit_stop()
            return
        try:
            data = serialization.dump(
                output,
                definition.output_type,
                self.payload_limit,
                f"the output of instance {self.instance_id!r}",
            )
        except FwError as exc:
            await self._fail(definition, exc)
            return
        await self.commit(status="complete", output=data, release=True)
        LOG.info("instance %s (%s): complete", self.instance_id, self.workflow)

    async def commit_stop(self) -> None:
        """Commit whatever made the body stop: a fatal error, a wait, a pause, a shutdown."""
        if self.fatal is not None:
            await self._hold(self.fatal)
        elif self.stop_reason == "wait":
            waits = self._waits
            await self.commit(
                status="waiting",
                wake_at=waits.wake_at,
                wake_on_events=waits.event_types,
                wake_on_children=waits.children,
                release=True,
            )
        else:
            await self.commit(status="queued", wake_at=self.clock.now(), release=True)

    async def _fail(self, definition: WorkflowDefinition, exc: BaseException) -> None:
        error = error_info(exc)
        if await compensate_all(self, definition, error):
            await self.commit(status="errored", error=error.model_dump_json(), release=True)
            LOG.warning("instance %s (%s): errored: %s", self.instance_id, self.workflow, error)

    async def _terminate(self, definition: WorkflowDefinition) -> None:
        """Terminated with compensation: roll back what completed, call on_failure, end."""
        error = ErrorInfo(name="Terminated", message="terminated on request; compensation ran")
        if await compensate_all(self, definition, error):
            await self.commit(status="terminated", error=error.model_dump_json(), release=True)
            LOG.info(
                "instance %s (%s): terminated after compensating", self.instance_id, self.workflow
            )

    async def _hold(self, exc: FwError) -> None:
        error = error_info(exc)
        block = self.app.settings.runtime.on_nondeterminism == "block"
        status: Status = "paused" if block else "errored"
        await self.commit(status=status, error=error.model_dump_json(), release=True)
        LOG.error(
            "instance %s (%s): %s; held %s", self.instance_id, self.workflow, error.message, status
        )

    async def _refuse_params(self, exc: SerializationError) -> None:
        """The stored params cannot be read (stored before fw refused such JSON): end it."""
        error = error_info(exc)
        await self.commit(status="errored", error=error.model_dump_json(), release=True)
        LOG.error("instance %s (%s): errored: %s", self.instance_id, self.workflow, error.message)

    async def _park(self, exc: BaseException) -> None:
        """The workflow's code cannot be loaded: keep the instance and try again later."""
        retry_at = self.clock.now() + max(10.0, self.app.settings.runtime.poll_interval)
        await self.commit(status="queued", wake_at=retry_at, release=True)
        LOG.error(
            "instance %s (%s): cannot load the workflow, will retry in 10 s: %s: %s",
            self.instance_id,
            self.workflow,
            type(exc).__name__,
            message_of(exc),
        )

    async def _end_crash_loop(self, limit: int) -> None:
        crashes: list[object] = json.loads(self.row.crashes) if self.row.crashes else []
        error = ErrorInfo(
            name=CrashLoopError.__name__,
            message=(
                f"the worker running this instance died {self.row.crash_count} times in a row, "
                f"more than [runtime] crash_loop_limit = {limit} allows (the first run and "
                f"{limit} recoveries); fix the cause (memory, a native crash, a killed process) "
                "and restart it"
            ),
            details={"crashes": crashes},
        )
        await self.commit(status="errored", error=error.model_dump_json(), release=True)
        LOG.error("instance %s (%s): %s", self.instance_id, self.workflow, error.message)

    # What the context and step API call.

    @property
    def payload_limit(self) -> int:
        return self.app.settings.runtime.payload_limit

    def replaying_now(self) -> bool:
        scope = _current_step.get()
        return (scope is None or scope.run is not self) and self.journal.replaying

    def current_step_name(self) -> str | None:
        scope = _current_step.get()
        return scope.key.name if scope is not None and scope.run is self else None

    def current_idempotency_key(self) -> str:
        scope = _current_step.get()
        if scope is None or scope.run is not self:
            raise FwError("step.idempotency_key is only available inside a running step")
        return scope.idempotency_key

    def idempotency_key(self, key: StepKey) -> str:
        suffix = f":r{self.row.generation}" if self.row.generation else ""
        return f"{self.instance_id}:{key.name}:{key.count}{suffix}"

    def patched(self, change_id: str) -> bool:
        marker = f"patch:{change_id}"
        state = self.journal.peek_patch(marker)
        if state is False:
            return False
        key, _ = self.request(marker, "patch")
        if state is None:
            now = self.clock.now()
            self.remember(self.make_row(key, "patch", "complete", started_at=now, finished_at=now))
        return True

    async def run_function_step(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: Retries | None,
        timeout: Duration | None,
    ) -> Any:
        key, concurrent = self.request(name, "do")

        async def attempt(_: int) -> Any:
            return await _call(fn, args, kwargs)

        return await self.durable(
            key,
            "do",
            attempt,
            serialization.return_type(fn),
            retries,
            timeout,
            concurrent=concurrent,
        )

    async def run_defined_step(self, step: StepDefinition[Any], args: dict[str, Any]) -> Any:
        validated = step.args_model.model_validate(args)
        input_json = serialization.dump(
            validated, step.args_model, None, f"the arguments of step {step.name!r}"
        )
        arguments: dict[str, Any] = {name: getattr(validated, name) for name in step.argument_names}
        key, concurrent = self.request(step.name, "do")

        async def attempt(number: int) -> Any:
            ctx = StepContext(number, self.idempotency_key(key), self.log, self.app.env)
            value = await step.handler(ctx, **arguments)
            try:
                return serialization.validate(value, step.return_type)
            except ValidationError as exc:
                raise NonRetryableError(
                    f"step {step.name!r} returned a value that does not match its annotation: {exc}"
                ) from None

        output = await self.durable(
            key,
            "do",
            attempt,
            step.return_type,
            step.retries,
            step.timeout,
            input_json=input_json,
            concurrent=concurrent,
        )
        if step.rollback is not None:
            plain = json.loads(input_json)
            self.rollbacks.append(CompletedStep(key, step, plain, output))
        return output

    async def sleep_until(self, name: str, target: Callable[[float], float]) -> None:
        key, concurrent = self.request(name, "sleep")
        entry = self.journal.get(key)
        now = self.clock.now()
        if entry is not None and entry.status == "complete":
            return
        if entry is None:
            entry = self.make_row(
                key,
                "sleep",
                "waiting",
                started_at=now,
                wake_at=target(now),
                concurrent=concurrent,
            )
        assert entry.wake_at is not None
        if entry.wake_at <= now:
            self.remember(replace(entry, status="complete", finished_at=now))
            return
        self.remember(entry)
        self.suspend(wake_at=entry.wake_at)

    async def wait_for_event(
        self, name: str, event_type: str, timeout: float | None, model: type[Any] | None
    ) -> Any:
        key, concurrent = self.request(name, "event")
        entry = self.journal.get(key)
        if entry is not None and entry.status == "complete":
            return self._event_payload(name, entry.output, model)
        if entry is not None and entry.status == "errored":
            raise EventTimeoutError(name, event_type)
        now = self.clock.now()
        if entry is None:
            entry = self.make_row(
                key,
                "event",
                "waiting",
                started_at=now,
                wake_at=None if timeout is None else now + timeout,
                detail={"type": event_type, "timeout": timeout},
                concurrent=concurrent,
            )
        done = replace(entry, status="complete", finished_at=now)
        taken = await self.store.take_event(self.token, self.instance_id, event_type, done, now)
        if taken is not None:
            self.journal.record(replace(done, output=taken.payload))
            return self._event_payload(name, taken.payload, model)
        if entry.wake_at is not None and entry.wake_at <= now:
            timed_out = EventTimeoutError(name, event_type)
            error = error_info(timed_out, step=name)
            await self.commit(
                [replace(entry, status="errored", finished_at=now, error=error.model_dump_json())]
            )
            raise timed_out
        self.remember(entry)
        self.suspend(wake_at=entry.wake_at, event_type=event_type)

    async def run_children(self, branches: list[Branch]) -> list[Any]:
        return await children.run_children(self, branches)

    async def spawn_child(self, name: str, params: Any) -> Instance[Any]:
        return await children.spawn_child(self, name, params)

    # Steps, durably.

    async def durable(
        self,
        key: StepKey,
        kind: StepKind,
        attempt: Callable[[int], Awaitable[Any]],
        output_type: Any,
        retries: Retries | None,
        timeout: Duration | None,
        *,
        input_json: str | None = None,
        concurrent: bool = False,
    ) -> Any:
        entry = self.journal.get(key)
        if entry is not None and entry.status == "complete":
            if output_type is Any:
                output_type = serialization.recorded_type(detail_of(entry).get("output_type"))
            stored = f"the stored JSON of the output of step {key.name!r}"
            return self._completed(key, kind, serialization.load(entry.output, output_type, stored))
        if entry is not None and entry.status == "errored":
            raise step_error(entry)
        now = self.clock.now()
        if entry is not None and entry.wake_at is not None and entry.wake_at > now:
            self.suspend(wake_at=entry.wake_at)
        number = (entry.attempts if entry else 0) + 1
        started_at = entry.started_at if entry and entry.started_at else now
        policy = RetryPolicy.resolve(retries, self.app.default_retries(self.workflow))
        limit = self.app.default_timeout if timeout is None else parse_duration(timeout)
        self._enter_step()
        scope = _current_step.set(_StepScope(self, key))
        try:
            with step_span(self.workflow, self.instance_id, key.name, key.count, number):
                if self.app.attempt_hook is not None:
                    self.app.attempt_hook.before_attempt(self.workflow, key.name)
                value = await _with_timeout(attempt(number), limit, key)
            data = serialization.dump(
                value,
                output_type,
                self.payload_limit,
                f"the output of step {key.name!r} of instance {self.instance_id!r}",
            )
            detail: dict[str, Any] | None = None
            if output_type is Any and (named := serialization.type_name(value)) is not None:
                output_type, detail = serialization.recorded_type(named), {"output_type": named}
        except Suspend:
            raise
        except BaseException as exc:
            if not raised_by_user(exc):
                raise
            raise await self._step_failed(
                key, kind, exc, number, started_at, policy, input_json, concurrent
            ) from exc
        finally:
            _current_step.reset(scope)
            self._leave_step()
        await self.commit(
            [
                self.make_row(
                    key,
                    kind,
                    "complete",
                    attempts=number,
                    started_at=started_at,
                    finished_at=self.clock.now(),
                    input=input_json,
                    output=data,
                    concurrent=concurrent,
                    detail=detail,
                )
            ]
        )
        return self._completed(key, kind, serialization.load(data, output_type))

    def _completed(self, key: StepKey, kind: StepKind, value: Any) -> Any:
        if kind == "do":
            self.step_outputs[key.name] = value
        return value

    async def _step_failed(
        self,
        key: StepKey,
        kind: StepKind,
        exc: BaseException,
        number: int,
        started_at: float,
        policy: RetryPolicy,
        input_json: str | None,
        concurrent: bool,
    ) -> StepError:
        """Schedule a retry (suspending the body) or journal the failure and return the
        StepError to raise into the body."""
        error = error_info(exc, step=key.name, attempts=number)
        now = self.clock.now()
        if not isinstance(exc, NOT_RETRYABLE) and number <= policy.limit:
            wake_at = now + policy.delay_before_retry(number)
            self.remember(
                self.make_row(
                    key,
                    kind,
                    "waiting",
                    attempts=number,
                    started_at=started_at,
                    wake_at=wake_at,
                    input=input_json,
                    error=error.model_dump_json(),
                    concurrent=concurrent,
                )
            )
            LOG.info(
                "instance %s: step %r attempt %d failed (%s: %s); retry in %s",
                self.instance_id,
                key.name,
                number,
                error.name,
                error.message,
                format_duration(wake_at - now),
            )
            self.suspend(wake_at=wake_at)
        await self.commit(
            [
                self.make_row(
                    key,
                    kind,
                    "errored",
                    attempts=number,
                    started_at=started_at,
                    finished_at=now,
                    input=input_json,
                    error=error.model_dump_json(),
                    concurrent=concurrent,
                )
            ]
        )
        return StepError(key.name, error.name, error.message, number)

    # Bookkeeping.

    def request(self, name: str, kind: StepKind) -> tuple[StepKey, bool]:
        if self.stop_reason is not None or (not self.in_body and kind != "rollback"):
            raise Suspend()
        try:
            key = self.journal.request(name, kind)
        except NonDeterminismError as exc:
            self.fatal = exc
            self.stop_reason = "fatal"
            raise Suspend() from None
        self._last_key = key
        if self.journal.get(key) is None and (
            self.replay_only or (self.terminating and self.in_body)
        ):
            self.frontier = self.frontier or key.label
            raise Suspend()  # the end of the journal: run nothing new
        return key, self._inflight > 0

    def suspend(
        self,
        *,
        wake_at: float | None = None,
        event_type: str | None = None,
        children: Iterable[str] = (),
    ) -> None:
        self._waits.add(wake_at, event_type, children)
        if self.replay_only and self.frontier is None and self._last_key is not None:
            self.frontier = f"{self._last_key.label} (waiting)"
        if self.stop_reason is None:
            self.stop_reason = "wait"
        raise Suspend()

    def stop(self, reason: StopReason) -> None:
        """Ask the body to stop at its next step (a shutdown or a pause)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def remember(self, row: StepRow) -> None:
        """Journal ``row`` with the next commit."""
        self._pending.append(row)
        self.journal.record(row)

    async def commit(self, rows: Iterable[StepRow] = (), **changes: Any) -> Status:
        written = [*self._pending, *rows]
        transition = Transition(
            self.instance_id, self.token, steps=written, version=self.version, **changes
        )
        status = await self._apply(transition)
        self._pending = []
        if status in TERMINAL:
            self.app.signals.changed(self.instance_id)
        for row in written:
            self.journal.record(row)
        if status == "paused" and "status" not in changes:
            self.stop("pause")
        return status

    async def _apply(self, transition: Transition) -> Status:
        """Commit, retrying a failing database (locked, full) for up to half a lease so a
        step that ran is journaled rather than run again; then fail naming what was lost."""
        delay, waited = 0.05, 0.0
        budget = self.app.settings.runtime.lease / 2
        while True:
            try:
                return await self.store.apply(transition, self.clock.now())
            except StoreError as exc:
                if waited + delay > budget:
                    raise StoreError(f"{_describe(transition)}: {exc}") from None
                LOG.warning("%s: %s; retrying in %.2f s", _describe(transition), exc, delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 2.0)

    def _enter_step(self) -> None:
        self._inflight += 1
        self._settled.clear()

    def _leave_step(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._settled.set()

    async def settle(self) -> None:
        """Wait for steps still running in other branches of the body (``gather``)."""
        await self._settled.wait()

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

    def _event_payload(self, name: str, payload: str | None, model: type[Any] | None) -> Any:
        what = f"the stored JSON of the event payload taken by {name!r}"
        return serialization.load(payload, Any if model is None else model, what)


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, lambda: context.run(fn, *args, **kwargs))
    if inspect.isawaitable(result):
        return await result
    return result


async def _with_timeout(work: Awaitable[Any], limit: float, key: StepKey) -> Any:
    timer = asyncio.timeout(limit)
    try:
        async with timer:
            return await work
    except TimeoutError:
        if not timer.expired():
            raise
        raise StepTimeoutError(
            f"step {key.name!r} ran over its timeout of {format_duration(limit)}"
        ) from None


def error_info(
    exc: BaseException, step: str | None = None, attempts: int | None = None
) -> ErrorInfo:
    """How an exception is stored: class name, message, step and a traceback, cut to
    their limits (a user's exception may raise from ``__str__`` or carry megabytes)."""
    if isinstance(exc, StepError):
        return ErrorInfo(
            name=exc.error_type, message=exc.error_message, step=exc.step, attempts=exc.attempts
        )
    return ErrorInfo(
        name=type(exc).__name__,
        message=message_of(exc),
        step=step,
        attempts=attempts,
        traceback=traceback_of(exc),
    )


def step_error(row: StepRow) -> StepError:
    """The StepError a journaled failed step raises again on replay."""
    error = ErrorInfo.model_validate_json(row.error or "{}")
    return StepError(row.name, error.name, error.message, row.attempts)


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
