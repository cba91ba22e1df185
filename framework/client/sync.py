"""The remote client for synchronous code (Flask, Django, scripts): ``handle.sync`` and
``instance.sync``, blocking versions of the remote handles.

Calls run on the private event loop of fw's synchronous facade (``runtime.sync``), so they may
be made from any thread; the connection keeps an httpx client on that loop, which
``client.close()`` (or leaving ``with client:``) closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, cast

from typing_extensions import TypeVar

from framework.runtime.durations import Duration
from framework.runtime.facade_loop import facade_loop, run_blocking
from framework.runtime.handles import AnySyncEvents

if TYPE_CHECKING:
    from framework.client.connection import Connection
    from framework.client.handles import RemoteInstance, RemoteWorkflowHandle
    from framework.runtime.handles import InstancePage
    from framework.runtime.outcomes import Failure, Success
    from framework.runtime.records import InstanceStatus, LogRecord, StepRecord

P = TypeVar("P")
O = TypeVar("O")
S = TypeVar("S", covariant=True, bound=AnySyncEvents, default=AnySyncEvents)


def close_facade(connection: Connection) -> None:
    """Close ``connection``'s httpx client on the facade's loop, if it has one."""
    loop = facade_loop()
    if loop is not None and loop in connection.loops():
        run_blocking(connection.aclose())


class SyncRemoteWorkflowHandle(Generic[P, O, S]):
    """``RemoteWorkflowHandle`` with blocking methods; ``S`` types its instances'
    ``send_event`` (the workflow's event types)."""

    def __init__(self, handle: RemoteWorkflowHandle[P, O, Any, S]) -> None:
        self._handle = handle
        self.name = handle.name

    def create(
        self,
        params: P | Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        retention: Duration | None = None,
    ) -> SyncRemoteInstance[P, O, S]:
        """Start an instance (see ``RemoteWorkflowHandle.create``)."""
        return SyncRemoteInstance(
            run_blocking(self._handle.create(params, id=id, retention=retention))
        )

    def get(self, id: str) -> SyncRemoteInstance[P, O, S]:
        """The instance ``id`` of this workflow."""
        return SyncRemoteInstance(run_blocking(self._handle.get(id)))

    def list(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> InstancePage[O]:
        """Instances of this workflow, newest first (summaries)."""
        return run_blocking(self._handle.list(status=status, limit=limit, cursor=cursor))


class SyncRemoteInstance(Generic[P, O, S]):
    """``RemoteInstance`` with blocking methods; ``send_event`` typed by ``S``."""

    def __init__(self, instance: RemoteInstance[P, O, Any, S]) -> None:
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
        """``RemoteInstance.outcome``: how the instance ended, without raising."""
        return run_blocking(self._instance.outcome(timeout=timeout))

    def steps(self) -> list[StepRecord]:
        return run_blocking(self._instance.steps())

    def logs(self, limit: int = 1_000) -> list[LogRecord]:
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
        """``inst.send_event(type, payload)``, blocking (see ``RemoteInstance.send_event``)."""
        return cast(S, self._send_event)

    def _send_event(self, type: str, payload: Any = None) -> None:
        run_blocking(self._instance.send_event(type, payload))
