"""What a workflow body and its steps see: ``WorkflowContext``, ``WorkflowEvent``, the step,
rollback and compensation contexts, and the structured logger.

Each talks to the run through a small interface declared here (``BodyApi``, ``StepTracker``),
which the runtime's ``StepApi`` and ``StepExecutor`` implement.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from framework.runtime.definition import Branch, StepDefinition
from framework.runtime.logs import process_log_line
from framework.runtime.records import ErrorInfo
from framework.runtime.step_config import StepConfig, StepInfo

if TYPE_CHECKING:
    from framework.runtime.handles import AnyEvents, AnySyncEvents, Instance, WorkflowHandle
    from framework.runtime.steps import WorkflowStep

P = TypeVar("P")
R = TypeVar("R")
C = TypeVar("C")
O = TypeVar("O")
O1 = TypeVar("O1")
O2 = TypeVar("O2")
O3 = TypeVar("O3")
O4 = TypeVar("O4")
O5 = TypeVar("O5")
O6 = TypeVar("O6")
O7 = TypeVar("O7")
O8 = TypeVar("O8")
E = TypeVar("E", bound="AnyEvents")
S = TypeVar("S", bound="AnySyncEvents")

LOGGER = logging.getLogger("fw.workflow")


class StepTracker(Protocol):
    """What the logger asks of a run: is it replaying, and which step runs now."""

    def replaying_now(self) -> bool: ...

    def current_step_name(self) -> str | None: ...

    def keep_log(self, level: int, message: str, fields: dict[str, Any]) -> None:
        """Journal a log line with the instance."""
        ...


class BodyApi(Protocol):
    """What ``WorkflowContext`` asks of the run (the runtime's ``StepApi``)."""

    @property
    def env(self) -> Any: ...

    async def run_defined_step(
        self,
        step: StepDefinition[Any],
        args: dict[str, Any],
        config: StepConfig | None,
        idempotency_key: str | None,
    ) -> Any: ...

    async def run_children(self, branches: list[Branch[Any]]) -> list[Any]: ...

    async def spawn_child(self, name: str, params: Any) -> Instance[Any, Any]: ...

    def patched(self, change_id: str) -> bool: ...


class WorkflowLogger:
    """A structured logger: ``log.info("charged", amount=42)``, tagged with the workflow,
    instance and current step, and kept with the instance (``Instance.logs()``, Studio).
    Silent while the body replays steps it already ran, so each line is kept once."""

    def __init__(self, workflow: str, instance_id: str, steps: StepTracker) -> None:
        self._workflow = workflow
        self._instance_id = instance_id
        self._steps = steps

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
        if self._steps.replaying_now():
            return
        self._steps.keep_log(level, message, fields)
        if not LOGGER.isEnabledFor(level):
            return
        tags = {
            "workflow": self._workflow,
            "instance_id": self._instance_id,
            "step": self._steps.current_step_name(),
        }
        message, fields = process_log_line(message, fields)
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

    def __init__(
        self,
        api: BodyApi,
        params: P,
        step: WorkflowStep,
        *,
        instance_id: str,
        created_at: float,
        log: WorkflowLogger,
    ) -> None:
        self._api = api
        self.params = params
        self.step = step
        self.log = log
        self.instance_id = instance_id
        self.event = WorkflowEvent(params, instance_id, datetime.fromtimestamp(created_at, UTC))

    @property
    def env(self) -> Any:
        """The app's bindings (the generated ``env``): a handle per workflow."""
        return self._api.env

    async def run_step(
        self,
        step: StepDefinition[R],
        args: Mapping[str, Any] | None = None,
        *,
        config: StepConfig | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        """Run a step made by ``define_step`` as a durable step of this instance.

        Its args are validated by the handler's annotations before anything runs, and its
        return value after; its rollback runs if the workflow later fails. ``config``
        overrides the step's retries and timeout for this call only; ``idempotency_key``
        replaces the derived key its handler sees as ``ctx.idempotency_key``.
        """
        return await self._api.run_defined_step(  # type: ignore[no-any-return]
            step, dict(args or {}), config, idempotency_key
        )

    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self, branches: tuple[Branch[O1]], /
    ) -> tuple[O1]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self, branches: tuple[Branch[O1], Branch[O2]], /
    ) -> tuple[O1, O2]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self, branches: tuple[Branch[O1], Branch[O2], Branch[O3]], /
    ) -> tuple[O1, O2, O3]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self, branches: tuple[Branch[O1], Branch[O2], Branch[O3], Branch[O4]], /
    ) -> tuple[O1, O2, O3, O4]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self, branches: tuple[Branch[O1], Branch[O2], Branch[O3], Branch[O4], Branch[O5]], /
    ) -> tuple[O1, O2, O3, O4, O5]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self,
        branches: tuple[Branch[O1], Branch[O2], Branch[O3], Branch[O4], Branch[O5], Branch[O6]],
        /,
    ) -> tuple[O1, O2, O3, O4, O5, O6]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self,
        branches: tuple[
            Branch[O1], Branch[O2], Branch[O3], Branch[O4], Branch[O5], Branch[O6], Branch[O7]
        ],
        /,
    ) -> tuple[O1, O2, O3, O4, O5, O6, O7]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self,
        branches: tuple[
            Branch[O1],
            Branch[O2],
            Branch[O3],
            Branch[O4],
            Branch[O5],
            Branch[O6],
            Branch[O7],
            Branch[O8],
        ],
        /,
    ) -> tuple[O1, O2, O3, O4, O5, O6, O7, O8]: ...
    @overload
    async def parallel(  # type: ignore[overload-overlap]
        self, branches: tuple[Branch[O], ...], /
    ) -> tuple[O, ...]: ...
    @overload
    async def parallel(self, branches: Sequence[Branch[O]], /) -> list[O]: ...

    async def parallel(self, branches: Sequence[Branch[Any]], /) -> Sequence[Any]:
        """Run each branch as a child instance and wait for all their outputs, in order.

        A tuple of branches (up to 8 are typed element by element) gives a tuple of their
        outputs; a list gives a list (``list[O]`` when every branch has output ``O``).
        Fails fast: the first child to end errored or terminated terminates the others and
        raises ``ChildWorkflowError`` here. At most 100 branches per call.
        """
        outputs = await self._api.run_children(list(branches))
        return tuple(outputs) if isinstance(branches, tuple) else outputs

    @overload
    async def spawn(
        self, workflow: WorkflowHandle[C, O, E, S], params: C | Mapping[str, Any] | None = None
    ) -> Instance[C, O, E, S]: ...
    @overload
    async def spawn(self, workflow: str, params: Any = None) -> Instance[Any, Any]: ...

    async def spawn(
        self, workflow: WorkflowHandle[Any, Any] | str, params: Any = None
    ) -> Instance[Any, Any]:
        """Start a child instance of ``workflow`` without waiting for it.

        ``workflow`` is a typed handle (``workflows.get("data-sync")``: its params checked,
        the instance's output typed), or a name known only at run time (untyped).
        """
        name = workflow if isinstance(workflow, str) else workflow.name
        return await self._api.spawn_child(name, params)

    def patched(self, change_id: str) -> bool:
        """True where this instance runs new code past ``change_id``; False for instances
        whose journal was written before the change, so they replay the old path."""
        return self._api.patched(change_id)


@dataclass
class StepContext:
    """What a ``define_step`` handler receives.

    Attributes:
        attempt: the attempt's number, 1 the first time, 2 on the first retry.
        idempotency_key: a key stable across this step's retries and replays, to pass to
            external APIs: the one given to ``run_step``, else derived.
        log: the workflow logger, tagged with this step.
        env: the app's bindings.
        config: the effective retries and timeout of this call (``define_step``'s, as
            overridden by ``run_step(..., config=...)``, completed from the defaults).
        step: which step this is: its ``name`` and ``count`` (occurrence).
    """

    attempt: int
    idempotency_key: str
    log: WorkflowLogger
    env: Any
    config: StepConfig
    step: StepInfo


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
