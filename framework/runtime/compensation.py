"""Compensation: when a workflow fails (or is terminated with ``compensate=True``), the
rollbacks of its completed ``define_step`` steps run in reverse order, each a journaled and
retried step, then its ``on_failure`` handler runs once (a saga)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import StepError
from framework.runtime.context import CompensationContext, RollbackContext, WorkflowLogger
from framework.runtime.definition import StepDefinition, WorkflowDefinition
from framework.runtime.durable import StepExecutor
from framework.runtime.journal import StepKey
from framework.runtime.recorder import Recorder
from framework.runtime.records import ErrorInfo
from framework.runtime.suspension import Suspend

if TYPE_CHECKING:
    from framework.runtime.app import App

LOG = logging.getLogger("fw.worker")


@dataclass(frozen=True)
class CompletedStep:
    """A completed step with a rollback, remembered for compensation."""

    key: StepKey
    definition: StepDefinition[Any]
    args: dict[str, Any]
    output: Any


class Compensator:
    """Runs the compensation of one run of one instance."""

    def __init__(
        self, app: App, recorder: Recorder, executor: StepExecutor, log: WorkflowLogger
    ) -> None:
        self._app = app
        self._recorder = recorder
        self._executor = executor
        self._log = log

    async def compensate(
        self,
        definition: WorkflowDefinition,
        error: ErrorInfo,
        rollbacks: Sequence[CompletedStep],
        params: Any,
    ) -> bool:
        """Run the rollbacks of ``rollbacks`` in reverse, then ``on_failure``; False when a
        wait (a retry delay) stopped them: the caller commits the stop, the next run goes on."""
        self._recorder.leave_body()
        try:
            for done in reversed(rollbacks):
                await self._roll_back(done, error)
            if definition.on_failure is not None:
                await self._on_failure(definition, error, params)
        except Suspend:
            await self._recorder.settle()
            return False
        return True

    async def _roll_back(self, done: CompletedStep, error: ErrorInfo) -> None:
        rollback = done.definition.rollback
        assert rollback is not None
        key, _ = self._recorder.request(f"rollback:{done.key.name}", "rollback")

        async def attempt(_: int) -> None:
            ctx = RollbackContext(done.args, done.output, error, self._log, self._app.env)
            await rollback(ctx)

        try:
            definition = done.definition
            await self._executor.run(
                key,
                "rollback",
                attempt,
                None,
                definition.rollback_retries,
                definition.rollback_timeout,
            )
        except StepError as failed:
            LOG.error(
                "instance %s: rollback of step %r failed: %s",
                self._recorder.instance_id,
                done.key.name,
                failed,
            )

    async def _on_failure(
        self, definition: WorkflowDefinition, error: ErrorInfo, params: Any
    ) -> None:
        handler = definition.on_failure
        assert handler is not None
        key, _ = self._recorder.request("on-failure", "rollback")
        ctx = CompensationContext(
            instance_id=self._recorder.instance_id,
            failed_step=error.step,
            error=error,
            step_outputs=dict(self._executor.outputs),
            params=params,
            log=self._log,
            env=self._app.env,
        )

        async def attempt(_: int) -> None:
            await handler(ctx)

        try:
            await self._executor.run(key, "rollback", attempt, None, None, None)
        except StepError as failed:
            LOG.error("instance %s: on_failure failed: %s", self._recorder.instance_id, failed)
