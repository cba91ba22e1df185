"""What a workflow body asks of its run, behind ``ctx.step`` and ``ctx``: function steps and
defined steps (run durably by the step executor), sleeps, event waits, patch markers and child
instances. Each asks the recorder for its journal key first, so a replay finds each result
where the first run left it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from framework.errors import EventTimeoutError, NonRetryableError
from framework.runtime import children, serialization
from framework.runtime.arguments import arguments_json
from framework.runtime.clock import Clock
from framework.runtime.compensation import CompletedStep
from framework.runtime.context import StepContext, WorkflowLogger
from framework.runtime.definition import Branch, StepDefinition
from framework.runtime.durable import StepExecutor, call
from framework.runtime.durations import Duration
from framework.runtime.failures import error_info
from framework.runtime.recorder import Recorder
from framework.runtime.retries import Retries
from framework.runtime.step_config import StepConfig, StepInfo, checked_idempotency_key
from framework.runtime.suspension import Suspend

if TYPE_CHECKING:
    from framework.runtime.app import App
    from framework.runtime.handles import Instance

HELD_SLEEP = 0.25
"""Sleeps up to this long are slept in the run, its lease held, rather than suspended."""


class StepApi:
    """The durable operations of one run's body (``ctx.step``'s and ``ctx``'s backend)."""

    def __init__(
        self, app: App, recorder: Recorder, executor: StepExecutor, log: WorkflowLogger
    ) -> None:
        self._app = app
        self._recorder = recorder
        self._executor = executor
        self._log = log
        self._rollbacks: list[CompletedStep] = []

    @property
    def env(self) -> Any:
        """The app's bindings (the generated ``env``)."""
        return self._app.env

    @property
    def rollbacks(self) -> Sequence[CompletedStep]:
        """The completed defined steps that have a rollback, in the order they completed."""
        return self._rollbacks

    def current_idempotency_key(self) -> str:
        return self._executor.current_idempotency_key()

    def patched(self, change_id: str) -> bool:
        marker = f"patch:{change_id}"
        state = self._recorder.journal.peek_patch(marker)
        if state is False:
            return False
        key, _ = self._recorder.request(marker, "patch")
        if state is None:
            now = self._recorder.clock.now()
            self._recorder.remember(
                self._recorder.make_row(key, "patch", "complete", started_at=now, finished_at=now)
            )
        return True

    async def run_function_step(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: Retries | None,
        timeout: Duration | None,
        idempotency_key: str | None = None,
    ) -> Any:
        idempotency_key = checked_idempotency_key(idempotency_key, name)
        key, concurrent = self._recorder.request(name, "do")
        entry = self._recorder.journal.get(key)
        runs = entry is None or entry.status == "waiting"  # else a replay: it returns or raises
        limit = self._app.settings.runtime.payload_limit

        async def attempt(_: int) -> Any:
            return await call(fn, args, kwargs)

        return await self._executor.run(
            key,
            "do",
            attempt,
            serialization.return_type(fn),
            retries,
            timeout,
            input_json=arguments_json(args, kwargs, limit) if runs else None,
            concurrent=concurrent,
            idempotency_key=idempotency_key,
        )

    async def run_defined_step(
        self,
        step: StepDefinition[Any],
        args: dict[str, Any],
        config: StepConfig | None,
        idempotency_key: str | None = None,
    ) -> Any:
        idempotency_key = checked_idempotency_key(idempotency_key, step.name)
        validated = step.args_model.model_validate(args)
        input_json = serialization.dump(
            validated, step.args_model, None, f"the arguments of step {step.name!r}"
        )
        arguments: dict[str, Any] = {name: getattr(validated, name) for name in step.argument_names}
        key, concurrent = self._recorder.request(step.name, "do")
        retries, timeout = step.retries, step.timeout
        if config is not None:
            retries, timeout = config.over(retries, timeout)
        effective = StepConfig.effective(*self._executor.resolve_policy(retries, timeout))
        info = StepInfo(key.name, key.count)

        async def attempt(number: int) -> Any:
            current_key = self._executor.current_idempotency_key()
            ctx = StepContext(number, current_key, self._log, self._app.env, effective, info)
            value = await step.handler(ctx, **arguments)
            try:
                return serialization.validate(value, step.return_type)
            except ValidationError as exc:
                raise NonRetryableError(
                    f"step {step.name!r} returned a value that does not match its annotation: {exc}"
                ) from None

        output = await self._executor.run(
            key,
            "do",
            attempt,
            step.return_type,
            retries,
            timeout,
            input_json=input_json,
            concurrent=concurrent,
            idempotency_key=idempotency_key,
        )
        if step.rollback is not None:
            plain = json.loads(input_json)
            self._rollbacks.append(CompletedStep(key, step, plain, output))
        return output

    async def sleep_until(self, name: str, target: Callable[[float], float]) -> None:
        key, concurrent = self._recorder.request(name, "sleep")
        entry = self._recorder.journal.get(key)
        now = self._recorder.clock.now()
        if entry is not None and entry.status == "complete":
            return
        held = entry is None and not concurrent
        if entry is None:
            entry = self._recorder.make_row(
                key,
                "sleep",
                "waiting",
                started_at=now,
                wake_at=target(now),
                concurrent=concurrent,
            )
        assert entry.wake_at is not None
        if entry.wake_at > now and held and self._holds(entry.wake_at - now, entry.wake_at):
            # A short sleep is slept in this run, its lease held, and journaled with the
            # run's next commit (complete), or with its suspension (waiting) when the run
            # is stopped meanwhile. Suspending would queue the instance's release and its
            # claim behind every other commit, and so would a commit of its wake time
            # before sleeping: under load (a storm of due timers) either takes longer than
            # the sleep. A crash during it replays the sleep from its start.
            await asyncio.sleep(max(0.0, entry.wake_at - self._recorder.clock.now()))
            if self._recorder.stop_reason is not None:  # a shutdown or pause meanwhile
                self._recorder.remember(entry)
                self._recorder.suspend(wake_at=entry.wake_at)
            now = self._recorder.clock.now()
        if entry.wake_at <= now:
            if entry.status == "waiting" and (metrics := self._recorder.metrics) is not None:
                metrics.timer_fired(self._recorder.workflow, now - entry.wake_at)
            self._recorder.remember(replace(entry, status="complete", finished_at=now))
            return
        self._recorder.remember(entry)
        self._recorder.suspend(wake_at=entry.wake_at)

    def _holds(self, seconds: float, wake_at: float) -> bool:
        """Whether a sleep of ``seconds`` is slept in the run (see ``sleep_until``): short,
        on the wall clock (a test's skipping clock jumps instead), not cut by a deadline, and
        of a workflow without a concurrency limit (whose waiting instances hold no slot)."""
        return (
            seconds <= HELD_SLEEP
            and self._recorder.workflow not in self._app.concurrency_limits
            and type(self._recorder.clock) is Clock
            and not self._recorder.replay_only
            and self._recorder.wake_by_deadline(wake_at) == wake_at
        )

    async def wait_for_event(
        self, name: str, event_type: str, timeout: float | None, model: type[Any] | None
    ) -> Any:
        key, concurrent = self._recorder.request(name, "event")
        entry = self._recorder.journal.get(key)
        if entry is not None and entry.status == "complete":
            return _event_payload(name, entry.output, model)
        if entry is not None and entry.status == "errored":
            raise EventTimeoutError(name, event_type)
        now = self._recorder.clock.now()
        if entry is None:
            entry = self._recorder.make_row(
                key,
                "event",
                "waiting",
                started_at=now,
                wake_at=None if timeout is None else now + timeout,
                detail={"type": event_type, "timeout": timeout},
                concurrent=concurrent,
            )
        done = replace(entry, status="complete", finished_at=now)
        taken = None
        if self._recorder.stop_reason is None:
            self._recorder.enter_step()  # a body suspending meanwhile waits for this wait
            try:
                taken = await self._recorder.take_event(event_type, done, now)
            except Suspend:
                if not self._suspended_to_wait():
                    raise
            finally:
                self._recorder.leave_step()
        if taken is not None:
            return _event_payload(name, taken.payload, model)
        if self._suspended_to_wait():  # another branch (gather) suspended the body
            self._recorder.remember(entry)  # this wait joins it, to be woken by its event too
            self._recorder.suspend(wake_at=entry.wake_at, event_type=event_type)
        if entry.wake_at is not None and entry.wake_at <= now:
            timed_out = EventTimeoutError(name, event_type)
            error = error_info(timed_out, step=name)
            await self._recorder.commit(
                [replace(entry, status="errored", finished_at=now, error=error.model_dump_json())]
            )
            raise timed_out
        self._recorder.remember(entry)
        self._recorder.suspend(wake_at=entry.wake_at, event_type=event_type)

    def _suspended_to_wait(self) -> bool:
        """Whether the body is stopping to wait (a wait of another branch suspended it)."""
        return self._recorder.stop_reason == "wait"

    async def run_children(self, branches: list[Branch[Any]]) -> list[Any]:
        return await children.run_children(self._app, self._recorder, branches)

    async def spawn_child(self, name: str, params: Any) -> Instance[Any, Any]:
        return await children.spawn_child(self._app, self._recorder, name, params)


def _event_payload(name: str, payload: str | None, model: type[Any] | None) -> Any:
    what = f"the stored JSON of the event payload taken by {name!r}"
    return serialization.load(payload, Any if model is None else model, what)
