"""A test environment: the app's workflows on a temporary store, an in-process worker and a
clock that skips ahead, so a ``sleep("cool-off", "7 days")`` completes at once."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncGenerator, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from framework.runtime.aio import first_of
from framework.runtime.app import App
from framework.runtime.clock import SkippingClock
from framework.runtime.durations import Duration, parse_duration
from framework.runtime.handles import Instance, WorkflowHandle
from framework.runtime.records import InstanceStatus, Status
from framework.runtime.worker import Worker
from framework.testing.faults import FaultPlan

O = TypeVar("O")

RECHECK = 0.05
"""Longest wait between two reads in ``wait_for`` when this worker changes nothing (another
process, or a call of the test, may)."""


class WorkflowTestEnv:
    """What the ``fw_env`` fixture gives a test."""

    def __init__(self, app: App, clock: SkippingClock, worker: Worker) -> None:
        self.app = app
        self.clock = clock
        self.worker = worker
        self.faults = FaultPlan()
        app.attempt_hook = self.faults  # the runtime consults it before each step attempt

    def get(self, name: str) -> WorkflowHandle[Any, Any]:
        """The handle of workflow ``name`` (the generated ``workflows.get`` works too)."""
        return self.app.handle(name)

    async def start(
        self, name: str, params: Any = None, *, id: str | None = None
    ) -> Instance[Any, Any]:
        """Start an instance of ``name``."""
        return await self.get(name).create(params, id=id)

    async def run(
        self, name: str, params: Any = None, *, id: str | None = None, timeout: float = 60.0
    ) -> Any:
        """Start an instance and return its output once complete, skipping sleeps."""
        instance = await self.start(name, params, id=id)
        return await instance.result(timeout=timeout)

    def fail_step(
        self,
        step: str,
        *,
        times: int | None = 1,
        error: BaseException | type[BaseException] | None = None,
        workflow: str | None = None,
    ) -> None:
        """Make the next ``times`` attempts of ``step`` fail with ``error``."""
        self.faults.fail_step(step, times=times, error=error, workflow=workflow)

    def advance(self, duration: Duration) -> None:
        """Move the clock forward by ``duration`` (timers due by then fire)."""
        self.clock.advance(parse_duration(duration))

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until the worker runs nothing and finds nothing due: whatever the test did
        before has run as far as it can now. Then assert that something did *not* happen.

        Raises ``TimeoutError`` (naming what still runs) after ``timeout`` seconds.
        """
        await self.worker.idle(timeout)

    async def wait_for(
        self,
        instance: Instance[Any, O],
        status: Status | Collection[Status],
        timeout: float = 10.0,
    ) -> InstanceStatus[O]:
        """Wait until ``instance`` has ``status`` (or one of several) and return its status.

        Raises:
            TimeoutError: it did not get there within ``timeout`` seconds (says where it is).
            AssertionError: it ended with another status, so it never will.
        """
        return await wait_for_status(instance, status, timeout, worker=self.worker)


async def wait_for_status(
    instance: Instance[Any, O],
    status: Status | Collection[Status],
    timeout: float = 10.0,
    *,
    worker: Worker | None = None,
) -> InstanceStatus[O]:
    """``WorkflowTestEnv.wait_for`` for any instance: re-read at once when ``worker`` claims
    or ends a run, else every ``RECHECK`` seconds (a worker in another process)."""
    wanted = {status} if isinstance(status, str) else set(status)
    expected = " or ".join(sorted(wanted))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        change = worker.next_change() if worker is not None else asyncio.Event()
        current = await instance.status()
        if current.status in wanted:
            return current
        if current.terminal:
            error = f" ({current.error})" if current.error else ""
            raise AssertionError(
                f"instance {instance.id!r} ended {current.status}{error}, never {expected}"
            )
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(
                f"instance {instance.id!r} is {current.status}, not {expected}, after {timeout} s"
            )
        await first_of(change.wait(), timeout=min(left, RECHECK))


@asynccontextmanager
async def workflow_test_env(
    app_dir: Path | str, *, database: str | None = None, concurrency: int = 50
) -> AsyncGenerator[WorkflowTestEnv]:
    """Run ``app_dir``'s workflows on a temporary SQLite store (or ``database``) with an
    in-process worker and a skipping clock, for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="fw-test-") as scratch:
        clock = SkippingClock()
        url = database or f"sqlite:///{Path(scratch) / 'fw.db'}"
        app = App(Path(app_dir), clock=clock, database=url)
        previous = app.install()
        try:
            async with Worker(app, concurrency=concurrency, shutdown_grace=1.0) as worker:
                yield WorkflowTestEnv(app, clock, worker)
        finally:
            await app.close()
            app.uninstall(previous)
