"""A test environment: the app's workflows on a temporary store, an in-process worker and a
clock that skips ahead, so a ``sleep("cool-off", "7 days")`` completes at once."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from framework.runtime.app import App
from framework.runtime.clock import SkippingClock
from framework.runtime.durations import Duration, parse_duration
from framework.runtime.handles import Instance, WorkflowHandle
from framework.runtime.worker import Worker
from framework.testing.faults import FaultPlan


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

    async def start(self, name: str, params: Any = None, *, id: str | None = None) -> Instance[Any]:
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
