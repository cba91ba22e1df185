"""What a workflow body and its steps see: ``WorkflowContext``, ``WorkflowEvent``, the step,
rollback and compensation contexts, and the structured logger."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from framework.runtime.definition import Branch, StepDefinition
from framework.runtime.records import ErrorInfo

if TYPE_CHECKING:
    from framework.runtime.execution import InstanceRun
    from framework.runtime.handles import Instance
    from framework.runtime.steps import WorkflowStep

P = TypeVar("P")
R = TypeVar("R")

LOGGER = logging.getLogger("fw.workflow")


class WorkflowLogger:
    """A structured logger: ``log.info("charged", amount=42)``, tagged with the workflow,
    instance and current step. Silent while the body replays steps it already ran."""

    def __init__(self, run: InstanceRun) -> None:
        self._run = run

    def debug(self, message: str, **fields: Any) -> None:
        self._log(logging.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._log(logging.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, fields)

    def exception(self, message: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, fields, exc_info=True)

    def _log(
        self, level: int, message: str, fields: dict[str, Any], exc_info: bool = False
    ) -> None:
        if self._run.replaying_now() or not LOGGER.isEnabledFor(level):
            return
        tags = {
            "workflow": self._run.workflow,
            "instance_id": self._run.instance_id,
            "step": self._run.current_step_name(),
        }
        LOGGER.log(level, message, exc_info=exc_info, extra={"fw": {**tags, **fields}})


@dataclass(frozen=True)
class WorkflowEvent(Generic[P]):
    """The event that started an instance: its params (``payload``), id and creation time."""

    payload: P
    instance_id: str
    timestamp: datetime

    @property
    def params(self) -> P:
        """The same as ``payload``."""
        return self.payload


class WorkflowContext(Generic[P]):
    """What a workflow body receives: ``ctx.params``, ``ctx.step`` and the rest."""

    def __init__(self, run: InstanceRun, params: P, step: WorkflowStep) -> None:
        self._run = run
        self.params = params
        self.step = step
        self.log = WorkflowLogger(run)
        self.instance_id = run.instance_id
        self.event = WorkflowEvent(
            params, run.instance_id, datetime.fromtimestamp(run.created_at, UTC)
        )

    @property
    def env(self) -> Any:
        """The app's bindings (the generated ``env``): a handle per workflow."""
        return self._run.app.env

    async def run_step(self, step: StepDefinition[R], args: Mapping[str, Any] | None = None) -> R:
        """Run a step made by ``define_step`` as a durable step of this instance.

        Its args are validated by the handler's annotations before anything runs, and its
        return value after; its rollback runs if the workflow later fails.
        """
        return await self._run.run_defined_step(step, dict(args or {}))  # type: ignore[no-any-return]

    async def parallel(self, branches: Sequence[Branch]) -> list[Any]:
        """Run each branch as a child instance and wait for all their outputs, in order.

        Fails fast: the first child to end errored or terminated terminates the others and
        raises ``ChildWorkflowError`` here. At most 100 branches per call.
        """
        return await self._run.run_children(list(branches))

    async def spawn(self, name: str, params: Any = None) -> Instance[Any]:
        """Start a child instance of workflow ``name`` without waiting for it."""
        return await self._run.spawn_child(name, params)

    def patched(self, change_id: str) -> bool:
        """True where this instance runs new code past ``change_id``; False for instances
        whose journal was written before the change, so they replay the old path."""
        return self._run.patched(change_id)


@dataclass
class StepContext:
    """What a ``define_step`` handler receives."""

    attempt: int
    idempotency_key: str
    log: WorkflowLogger
    env: Any


@dataclass
class RollbackContext:
    """What a step's rollback receives: the step's ``args``, its ``output``, and the ``error``
    that failed the workflow."""

    args: dict[str, Any]
    output: Any
    error: ErrorInfo
    log: WorkflowLogger
    env: Any


@dataclass
class CompensationContext:
    """What a workflow's ``on_failure`` handler receives."""

    instance_id: str
    failed_step: str | None
    error: ErrorInfo
    step_outputs: dict[str, Any]
    params: Any
    log: WorkflowLogger
    env: Any
