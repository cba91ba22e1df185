"""The synchronous facade, for code without an event loop (Flask, Django, scripts).

Calls run on one private event loop in a background thread (``facade_loop.py``), so they may
be made from any thread, including inside a running event loop's thread pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast

from typing_extensions import TypeVar

from framework.runtime.durations import Duration
from framework.runtime.facade_loop import run_blocking
from framework.runtime.handles import AnyEvents, AnySyncEvents
from framework.runtime.outcomes import Failure, Success
from framework.runtime.records import InstanceStatus, LogRecord, StepRecord
from framework.store.base import LOG_LIMIT

if TYPE_CHECKING:
    from framework.runtime.handles import BatchItem, Instance, InstancePage, WorkflowHandle

P = TypeVar("P")
O = TypeVar("O")
S = TypeVar("S", covariant=True, bound=AnySyncEvents, default=AnySyncEvents)


class SyncWorkflowHandle(Generic[P, O, S]):
    """``WorkflowHandle`` with blocking methods; ``S`` types the ``send_event`` of its
    instances (the workflow's event types, as the async handle's ``E``)."""

    def __init__(self, handle: WorkflowHandle[P, O, Any, S]) -> None:
        self._handle = handle
        self.name = handle.name

    def create(
        self,
        params: P | Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        retention: Duration | None = None,
    ) -> SyncInstance[P, O, S]:
        """Start an instance (see ``WorkflowHandle.create``)."""
        return SyncInstance(run_blocking(self._handle.create(params, id=id, retention=retention)))

    def create_batch(self, items: Sequence[BatchItem[P]]) -> list[SyncInstance[P, O, S]]:
        """Start several instances in one transaction."""
        return [SyncInstance(i) for i in run_blocking(self._handle.create_batch(items))]

    def get(self, id: str) -> SyncInstance[P, O, S]:
        """The instance ``id`` of this workflow."""
        return SyncInstance(run_blocking(self._handle.get(id)))

    def list(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> InstancePage[O]:
        """Instances of this workflow, newest first."""
        return run_blocking(self._handle.list(status=status, limit=limit, cursor=cursor))


class AsyncInstance(Protocol[O]):
    """The async instance a blocking one runs: ``Instance`` or the remote client's
    ``RemoteInstance``, which share these members."""

    @property
    def id(self) -> str: ...
    @property
    def workflow(self) -> str: ...
    @property
    def created(self) -> bool | None: ...
    @property
    def params_match(self) -> bool | None: ...
    @property
    def send_event(self) -> AnyEvents: ...
    async def status(self) -> InstanceStatus[O]: ...
    async def result(self, timeout: float | None = None) -> O: ...
    async def outcome(self, timeout: float | None = None) -> Success[O] | Failure: ...
    async def steps(self) -> list[StepRecord]: ...
    async def logs(self, limit: int = ...) -> list[LogRecord]: ...
    async def pause(self) -> None: ...
    async def resume(self) -> None: ...
    async def retry_now(self) -> None: ...
    async def terminate(self, compensate: bool = False) -> None: ...
    async def restart(self, from_step: str | None = None, occurrence: int = 1) -> None: ...


class BlockingInstance(Generic[O, S]):
    """An async instance with blocking methods, run on the facade's loop; ``send_event`` is
    typed by ``S``, the blocking twin of the instance's events protocol."""

    def __init__(self, instance: AsyncInstance[O]) -> None:
        self._instance = instance
        self.id = instance.id
        self.workflow = instance.workflow
        self.created = instance.created
        self.params_match = instance.params_match

    def status(self) -> InstanceStatus[O]:
        return run_blocking(self._instance.status())

    def result(self, timeout: float | None = None) -> O:
        return run_blocking(self._instance.result(timeout=timeout))

    def outcome(self, timeout: float | None = None) -> Success[O] | Failure:
        """How the instance ended, without raising for a failure (see ``Instance.outcome``)."""
        return run_blocking(self._instance.outcome(timeout=timeout))

    def steps(self) -> list[StepRecord]:
        return run_blocking(self._instance.steps())

    def logs(self, limit: int = LOG_LIMIT) -> list[LogRecord]:
        return run_blocking(self._instance.logs(limit))

    def pause(self) -> None:
        run_blocking(self._instance.pause())

    def resume(self) -> None:
        run_blocking(self._instance.resume())

    def retry_now(self) -> None:
        run_blocking(self._instance.retry_now())

    def terminate(self, compensate: bool = False) -> None:
        run_blocking(self._instance.terminate(compensate))

    def restart(self, from_step: str | None = None, occurrence: int = 1) -> None:
        run_blocking(self._instance.restart(from_step, occurrence))

    @property
    def send_event(self) -> S:
        """``inst.send_event(type, payload)``, blocking (see ``Instance.send_event``)."""
        return cast(S, self._send_event)

    def _send_event(self, type: str, payload: Any = None) -> None:
        run_blocking(self._instance.send_event(type, payload))


class SyncInstance(BlockingInstance[O, S], Generic[P, O, S]):
    """``Instance`` with blocking methods."""

    def __init__(self, instance: Instance[P, O, Any, S]) -> None:
        super().__init__(instance)
