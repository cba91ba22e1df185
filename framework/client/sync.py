"""The remote client for synchronous code (Flask, Django, scripts): ``handle.sync`` and
``instance.sync``, blocking versions of the remote handles.

Calls run on the private event loop of fw's synchronous facade (``runtime.sync``), so they may
be made from any thread; the connection keeps an httpx client on that loop, which
``client.close()`` (or leaving ``with client:``) closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from framework.runtime.durations import Duration
from framework.runtime.facade_loop import facade_loop, run_blocking
from framework.runtime.handles import AnySyncEvents
from framework.runtime.sync import BlockingInstance

if TYPE_CHECKING:
    from framework.client.connection import Connection
    from framework.client.handles import RemoteInstance, RemoteWorkflowHandle
    from framework.runtime.handles import InstancePage

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


class SyncRemoteInstance(BlockingInstance[O, S], Generic[P, O, S]):
    """``RemoteInstance`` with blocking methods."""

    def __init__(self, instance: RemoteInstance[P, O, Any, S]) -> None:
        super().__init__(instance)
