"""Compensation: when a workflow fails (or is terminated with ``compensate=True``), the
rollbacks of its completed ``define_step`` steps run in reverse order, each a journaled and
retried step, then its ``on_failure`` handler runs once (a saga)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import StepError
from framework.runtime.context import CompensationContext, RollbackContext
from framework.runtime.definition import StepDefinition, WorkflowDefinition
from framework.runtime.journal import StepKey
from framework.runtime.records import ErrorInfo
from framework.runtime.suspension import Suspend

if TYPE_CHECKING:
    from framework.runtime.execution import InstanceRun

LOG = logging.getLogger("fw.worker")


@dataclass(frozen=True)
class CompletedStep:
    """A completed step with a rollback, remembered for compensation."""

    key: StepKey
    definition: StepDefinition[Any]
    args: dict[str, Any]
    output: Any


async def compensate_all(
    run: InstanceRun, definition: WorkflowDefinition, error: ErrorInfo
) -> bool:
    """Run the rollbacks of completed steps in reverse, then ``on_failure``; False when
    a retry wait suspended them (the next run carries on)."""
    run.in_body = False
    run.stop_reason = None
    try:
        for done in reversed(run.rollbacks):
            await _roll_back(run, done, error)
        if definition.on_failure is not None:
            await _compensate(run, definition, error)
    except Suspend:
        await run.settle()
        await run.commit_stop()
        return False
    return True


async def _roll_back(run: InstanceRun, done: CompletedStep, error: ErrorInfo) -> None:
    rollback = done.definition.rollback
    assert rollback is not None
    key, _ = run.request(f"rollback:{done.key.name}", "rollback")

    async def attempt(_: int) -> None:
        ctx = RollbackContext(done.args, done.output, error, run.log, run.app.env)
        await rollback(ctx)

    try:
        await run.durable(
            key, "rollback", attempt, None, done.definition.retries, done.definition.timeout
        )
    except StepError as failed:
        LOG.error(
            "instance %s: rollback of step %r failed: %s",
            run.instance_id,
            done.key.name,
            failed,
        )


async def _compensate(run: InstanceRun, definition: WorkflowDefinition, error: ErrorInfo) -> None:
    handler = definition.on_failure
    assert handler is not None
    key, _ = run.request("on-failure", "rollback")
    ctx = CompensationContext(
        instance_id=run.instance_id,
        failed_step=error.step,
        error=error,
        step_outputs=dict(run.step_outputs),
        params=run.params,
        log=run.log,
        env=run.app.env,
    )

    async def attempt(_: int) -> None:
        await handler(ctx)

    try:
        await run.durable(key, "rollback", attempt, None, None, None)
    except StepError as failed:
        LOG.error("instance %s: on_failure failed: %s", run.instance_id, failed)
