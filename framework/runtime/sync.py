"""The synchronous facade, for code without an event loop (Flask, Django, scripts).

Calls run on one private event loop in a background thread, so they may be made from any
thread, including inside a running event loop's thread pool.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from framework.runtime.records import InstanceStatus, StepRecord

if TYPE_CHECKING:
    from framework.runtime.handles import BatchItem, Instance, InstancePage, WorkflowHandle

P = TypeVar("P")
O = TypeVar("O")
T = TypeVar("T")

CLOSE_TIMEOUT = 10.0
"""Seconds the facade's loop gets at exit to close its stores, then to stop."""


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        loop = self._ensure()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="fw-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self._close)
            return self._loop

    def _close(self) -> None:
        """At exit: close the stores opened on the loop, then stop it and its thread."""
        from framework.runtime.app import close_stores

        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        closing = asyncio.run_coroutine_threadsafe(close_stores(), loop)
        with contextlib.suppress(Exception):  # exiting anyway: a store that fails to close
            closing.result(timeout=CLOSE_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT)


_runner = _LoopThread()


def facade_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop the synchronous facade runs its calls on (None until first used)."""
    return _runner._loop


class SyncWorkflowHandle(Generic[P, O]):
    """``WorkflowHandle`` with blocking methods."""

    def __init__(self, handle: WorkflowHandle[P, O]) -> None:
        self._handle = handle
        self.name = handle.name

    def create(
        self, params: P | Mapping[str, Any] | None = None, *, id: str | None = None
    ) -> SyncInstance[O]:
        """Start an instance (see ``WorkflowHandle.create``)."""
        return SyncInstance(_runner.run(self._handle.create(params, id=id)))

    def create_batch(self, items: Sequence[BatchItem[P]]) -> list[SyncInstance[O]]:
        """Start several instances in one transaction."""
        return [SyncInstance(i) for i in _runner.run(self._handle.create_batch(items))]

    def get(self, id: str) -> SyncInstance[O]:
        """The instance ``id`` of this workflow."""
        return SyncInstance(_runner.run(self._handle.get(id)))

    def list(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> InstancePage[O]:
        """Instances of this workflow, newest first."""
        return _runner.run(self._handle.list(status=status, limit=limit, cursor=cursor))


class SyncInstance(Generic[O]):
    """``Instance`` with blocking methods."""

    def __init__(self, instance: Instance[O]) -> None:
        self._instance = instance
        self.id = instance.id
        self.workflow = instance.workflow
        self.created = instance.created
        self.params_match = instance.params_match

    def status(self) -> InstanceStatus[O]:
        return _runner.run(self._instance.status())

    def result(self, timeout: float | None = None) -> O:
        return _runner.run(self._instance.result(timeout=timeout))

    def steps(self) -> list[StepRecord]:
        return _runner.run(self._instance.steps())

    def pause(self) -> None:
        _runner.run(self._instance.pause())

    def resume(self) -> None:
        _runner.run(self._instance.resume())

    def terminate(self, compensate: bool = False) -> None:
        _runner.run(self._instance.terminate(compensate))

    def restart(self, from_step: str | None = None, occurrence: int = 1) -> None:
        _runner.run(self._instance.restart(from_step, occurrence))

    def send_event(self, type: str, payload: Any = None) -> None:
        _runner.run(self._instance.send_event(type, payload))
