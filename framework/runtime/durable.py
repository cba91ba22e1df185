"""Durable execution of one step: on replay, the journaled output (or failure) instead of
running it again; otherwise one attempt of its code, bounded by its timeout, whose output is
journaled, or whose failure schedules a retry or, once retries are exhausted, is journaled and
raised into the body as a ``StepError``.

While an attempt runs, ``current_step_name`` and ``current_idempotency_key`` answer for it
(the workflow logger's tags, ``ctx.step.idempotency_key``), also inside ``gather``.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import inspect
import logging
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from framework.errors import FwError, StepError, StepTimeoutError
from framework.runtime import serialization
from framework.runtime.attempts import Attempt
from framework.runtime.durations import Duration, format_duration, parse_duration
from framework.runtime.failures import error_info, raised_by_user, step_error
from framework.runtime.journal import StepKey, detail_of
from framework.runtime.logs import log_row
from framework.runtime.recorder import Recorder
from framework.runtime.retries import Retries, RetryPolicy
from framework.runtime.step_threads import step_threads
from framework.runtime.suspension import Suspend
from framework.runtime.tracing import step_span
from framework.store.base import StepKind

if TYPE_CHECKING:
    from framework.runtime.app import App

LOG = logging.getLogger("fw.worker")


@dataclass(frozen=True)
class _StepScope:
    executor: StepExecutor
    key: StepKey
    idempotency_key: str


_current_step: ContextVar[_StepScope | None] = ContextVar("fw_current_step", default=None)


class StepExecutor:
    """Runs the steps of one run of one instance, durably."""

    def __init__(self, app: App, recorder: Recorder, workflow: str) -> None:
        self._app = app
        self._recorder = recorder
        self._workflow = workflow
        self._outputs: dict[str, Any] = {}

    @property
    def outputs(self) -> Mapping[str, Any]:
        """The outputs of the ``do`` steps completed so far (replayed or run), by name."""
        return self._outputs

    def replaying_now(self) -> bool:
        """True while the body replays journaled steps, outside any step's own code."""
        scope = _current_step.get()
        return (scope is None or scope.executor is not self) and self._recorder.journal.replaying

    def current_step_name(self) -> str | None:
        key = self._current_step()
        return None if key is None else key.name

    def _current_step(self) -> StepKey | None:
        scope = _current_step.get()
        return scope.key if scope is not None and scope.executor is self else None

    def keep_log(self, level: int, message: str, fields: dict[str, Any]) -> None:
        """Journal a ``ctx.log`` line with the next commit (not in ``fw replay``)."""
        recorder = self._recorder
        if recorder.replay_only:
            return
        line = log_row(
            recorder.instance_id,
            recorder.token,
            recorder.next_log_line,
            recorder.clock.now(),
            level,
            message,
            fields,
            self._current_step(),
        )
        recorder.keep_log(line)

    def current_idempotency_key(self) -> str:
        scope = _current_step.get()
        if scope is None or scope.executor is not self:
            raise FwError("step.idempotency_key is only available inside a running step")
        return scope.idempotency_key

    def resolve_policy(
        self, retries: Retries | None, timeout: Duration | None
    ) -> tuple[RetryPolicy, float]:
        """The retry policy and attempt timeout (seconds) of a step asking for ``retries``
        and ``timeout``: what they leave unset comes from the workflow's defaults."""
        policy = RetryPolicy.resolve(retries, self._app.default_retries(self._workflow))
        default = self._app.step_timeout(self._workflow)
        limit = default if timeout is None else parse_duration(timeout)
        return policy, limit

    async def run(
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
        idempotency_key: str | None = None,
    ) -> Any:
        """Step ``key``'s output: journaled by an earlier run, or by running ``attempt``
        now (given the attempt's number). A failure schedules a retry, suspending the body,
        or, once retries are exhausted, is journaled and raised as a ``StepError``.

        ``idempotency_key``: the caller's key for the step (else the derived one), which
        ``current_idempotency_key`` answers while it runs; the journal keeps its hash."""
        entry = self._recorder.journal.get(key)
        if entry is not None and entry.status == "complete":
            if output_type is Any:
                output_type = serialization.recorded_type(detail_of(entry).get("output_type"))
            stored = f"the stored JSON of the output of step {key.name!r}"
            return self._completed(key, kind, serialization.load(entry.output, output_type, stored))
        if entry is not None and entry.status == "errored":
            raise step_error(entry)
        now = self._recorder.clock.now()
        if entry is not None and entry.wake_at is not None and entry.wake_at > now:
            self._recorder.suspend(wake_at=entry.wake_at)
        if self._recorder.behind:
            await self._recorder.catch_up()  # the step before is journaled before this runs
            now = self._recorder.clock.now()
        tried = Attempt.begin(entry, now)
        number = tried.number
        started_at = entry.started_at if entry and entry.started_at else now
        policy, limit = self.resolve_policy(retries, timeout)
        deadline = self._recorder.deadline_at
        if kind != "rollback" and deadline is not None and deadline - now < limit:
            limit = max(deadline - now, 0.0)  # the instance's deadline cuts this attempt
        key_detail = key_hash_detail(idempotency_key)
        scope_key = idempotency_key or self._recorder.idempotency_key(key)
        self._recorder.enter_step()
        scope = _current_step.set(_StepScope(self, key, scope_key))
        begun = time.perf_counter()
        try:
            with step_span(self._workflow, self._recorder.instance_id, key.name, key.count, number):
                if self._app.attempt_hook is not None:
                    self._app.attempt_hook.before_attempt(self._workflow, key.name)
                value = await _with_timeout(attempt(number), limit, key)
            data = serialization.dump(
                value,
                output_type,
                self._app.settings.runtime.payload_limit,
                f"the output of step {key.name!r} of instance {self._recorder.instance_id!r}",
            )
            detail: dict[str, Any] | None = key_detail
            if output_type is Any and (named := serialization.type_name(value)) is not None:
                output_type = serialization.recorded_type(named)
                detail = {**(detail or {}), "output_type": named}
        except Suspend:
            raise
        except BaseException as exc:
            if not raised_by_user(exc):
                raise
            self._count_attempt(begun, failed=True)
            cut = kind != "rollback" and isinstance(exc, StepTimeoutError)
            if cut and self._recorder.past_deadline():
                self._recorder.expire(key.label)
            raise await self._failed(
                key, kind, exc, tried, started_at, policy, input_json, concurrent, key_detail
            ) from exc
        finally:
            _current_step.reset(scope)
            self._recorder.leave_step()
        self._count_attempt(begun, failed=False)
        finished_at = self._recorder.clock.now()
        if (history := tried.history(finished_at, None)) is not None:
            detail = {**(detail or {}), "attempts": history}
        self._recorder.defer(
            self._recorder.make_row(
                key,
                kind,
                "complete",
                attempts=number,
                started_at=started_at,
                finished_at=finished_at,
                input=input_json,
                output=data,
                concurrent=concurrent,
                detail=detail,
            )
        )
        if (metrics := self._recorder.metrics) is not None:
            metrics.step_ended(self._workflow, number)
        return self._completed(key, kind, serialization.load(data, output_type))

    def _count_attempt(self, begun: float, *, failed: bool) -> None:
        if (metrics := self._recorder.metrics) is not None:
            metrics.step_attempt(self._workflow, time.perf_counter() - begun, failed=failed)

    def _completed(self, key: StepKey, kind: StepKind, value: Any) -> Any:
        if kind == "do":
            self._outputs[key.name] = value
        return value

    async def _failed(
        self,
        key: StepKey,
        kind: StepKind,
        exc: BaseException,
        tried: Attempt,
        started_at: float,
        policy: RetryPolicy,
        input_json: str | None,
        concurrent: bool,
        key_detail: dict[str, Any] | None,
    ) -> StepError:
        """Schedule a retry (suspending the body) or journal the failure and return the
        StepError to raise into the body."""
        number = tried.number
        error = error_info(exc, step=key.name, attempts=number)
        now = self._recorder.clock.now()
        detail = {**(key_detail or {}), "attempts": tried.history(now, error)}
        if error.retryable and number <= policy.limit:
            wake_at = now + policy.delay_before_retry(number)
            self._recorder.remember(
                self._recorder.make_row(
                    key,
                    kind,
                    "waiting",
                    attempts=number,
                    started_at=started_at,
                    wake_at=wake_at,
                    input=input_json,
                    error=error.model_dump_json(),
                    concurrent=concurrent,
                    detail=detail,
                )
            )
            LOG.info(
                "instance %s: step %r attempt %d failed (%s: %s); retry in %s",
                self._recorder.instance_id,
                key.name,
                number,
                error.name,
                error.message,
                format_duration(wake_at - now),
            )
            self._recorder.suspend(wake_at=wake_at)
        await self._recorder.commit(
            [
                self._recorder.make_row(
                    key,
                    kind,
                    "errored",
                    attempts=number,
                    started_at=started_at,
                    finished_at=now,
                    input=input_json,
                    error=error.model_dump_json(),
                    concurrent=concurrent,
                    detail=detail,
                )
            ]
        )
        if (metrics := self._recorder.metrics) is not None:
            metrics.step_ended(self._workflow, number)
        return StepError(key.name, error.name, error.message, number, retryable=error.retryable)


def key_hash_detail(idempotency_key: str | None) -> dict[str, Any] | None:
    """What the journal keeps of a caller's idempotency key: its SHA-256, not the key."""
    if idempotency_key is None:
        return None
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return {"idempotency_key_sha256": digest}


async def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call a step's function, sync (in a thread, with the caller's context) or async."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        step_threads(), lambda: _returned_or_raised(context, fn, args, kwargs)
    )
    if isinstance(result, _Raised):
        raise result.exc  # here, not through the future: see _Raised
    if inspect.isawaitable(result):
        return await result
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class _Raised:
    """What a sync step raised in its thread, handed back as a value: a future cannot carry a
    ``StopIteration`` (asyncio refuses it and the step would hang until its timeout), and a
    ``GeneratorExit`` thrown into the awaiting task would close the whole run."""

    exc: BaseException


def _returned_or_raised(
    context: contextvars.Context,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    try:
        return context.run(fn, *args, **kwargs)
    except BaseException as exc:  # re-raised in the awaiting task, whatever it is
        return _Raised(exc)


async def _with_timeout(work: Awaitable[Any], limit: float, key: StepKey) -> Any:
    """``await work``, cut after ``limit`` seconds. Its first stretch (up to its first
    suspension) runs at once, as ``await`` would run it, but with no timer yet: most steps
    end there and need none (a timer is two heap operations and a handle per step); the
    rest of one that suspends runs under a timeout due ``limit`` after it started."""
    deadline = asyncio.get_running_loop().time() + limit
    if isinstance(work, types.CoroutineType):
        coroutine = cast("Coroutine[Any, Any, Any]", work)
        try:
            first = coroutine.send(None)
        except StopIteration as done:
            return done.value
        work = _resume(coroutine, first)
    timer = asyncio.timeout_at(deadline)
    try:
        async with timer:
            return await work
    except TimeoutError:
        if not timer.expired():
            raise
        raise StepTimeoutError(
            f"step {key.name!r} ran over its timeout of {format_duration(limit)}"
        ) from None


@types.coroutine
def _resume(work: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """Drive ``work`` on from the suspension that yielded ``pending``, as the ``await`` that
    started it would have: what the task sends or throws in goes to ``work``."""
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            work.close()
            raise
        except BaseException as exc:
            try:
                pending = work.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            pending = work.send(sent)
        except StopIteration as done:
            return done.value
