"""Durable timers fire on time whatever the poll interval: a 50 ms sleep and a 100 ms retry
delay take about that long, not a poll interval, in each process shape that runs a worker (an
in-process ``Worker``, ``fw worker``, ``fw serve --worker``) and on both stores.

Each instance's own timestamps measure it (created by the store at ``create``, updated when it
completes), so how fast the test notices the end does not count."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from framework import Worker
from framework.runtime.app import App
from tests.apps import write_app
from tests.http.servers import run_fw, wait_for_text
from tests.runtime.processes import start_worker, stop, wait_until_started

WORKFLOWS = {
    "nap_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def nap(ctx: WorkflowContext[str]) -> str:
            await ctx.step.sleep("nap", ctx.params)
            return "rested"
    """,
    "flaky_workflow.py": """
        from framework import workflow, WorkflowContext, define_step, Retries, StepContext

        async def call(ctx: StepContext) -> int:
            if ctx.attempt == 1:
                raise ConnectionError("the first attempt fails")
            return ctx.attempt

        flaky_call = define_step("call", handler=call, retries=Retries(limit=2, delay="100 ms"))

        @workflow
        async def flaky(ctx: WorkflowContext[None]) -> int:
            return await ctx.run_step(flaky_call, {})
    """,
}
BLOCK = """
    import asyncio
    from framework import workflow, WorkflowContext

    async def hold(seconds: float) -> None:
        await asyncio.sleep(seconds)

    @workflow
    async def block(ctx: WorkflowContext[float]) -> None:
        await ctx.step.do("hold", hold, ctx.params)
"""
POLL_INTERVAL = 3.0
BOUND = 1.5
"""Seconds an instance whose only wait is 50 or 100 ms may take, create to complete: well
under the poll interval, which is what each took before the fix, and room for a loaded
machine (0.54 s was seen under a load of 25 on 2 cores)."""
ROUNDS = 5
SHAPES = ["in-process Worker", "fw worker", "fw serve --worker"]


@contextlib.asynccontextmanager
async def worker_running(shape: str, app: App, log: Path) -> AsyncIterator[None]:
    """A worker of ``app`` in the given process shape, stopped (and checked to exit 0) after."""
    if shape == "in-process Worker":
        async with Worker(app):
            yield
    elif shape == "fw worker":
        process = start_worker(app.root, log)
        try:
            wait_until_started(process, log)
            yield
        finally:
            assert stop(process) == 0, log.read_text()[-2000:]
    else:
        with run_fw(["serve", "--worker"], app.root, log) as served:
            wait_for_text(log, "started on")
            yield
            assert served.stop() == 0, log.read_text()[-2000:]


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[App]:
    settings = f'[runtime]\ndatabase = "{database_url}"\npoll_interval = "{POLL_INTERVAL} s"\n'
    the_app = App.for_root(write_app(tmp_path, WORKFLOWS, settings))
    yield the_app
    await the_app.close()


async def run_time(app: App, workflow: str, params: object) -> float:
    """Seconds from the instance's creation to its completion, by its own timestamps."""
    instance = await app.handle(workflow).create(params)
    await instance.result(timeout=30)
    status = await instance.status()
    return (status.updated_at - status.created_at).total_seconds()


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_50_ms_sleep_takes_50_ms_not_a_poll_interval(
    app: App, shape: str, tmp_path: Path
) -> None:
    async with worker_running(shape, app, tmp_path / "worker.log"):
        took = [await run_time(app, "nap", "50 ms") for _ in range(ROUNDS)]
    assert all(0.05 <= t < BOUND for t in took), took


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_100_ms_retry_delay_takes_100_ms_not_a_poll_interval(
    app: App, shape: str, tmp_path: Path
) -> None:
    async with worker_running(shape, app, tmp_path / "worker.log"):
        took = [await run_time(app, "flaky", None) for _ in range(ROUNDS)]
    assert all(0.1 <= t < BOUND for t in took), took


async def test_a_short_sleep_is_slept_in_its_run_and_a_longer_one_suspends(app: App) -> None:
    """A sleep of up to HELD_SLEEP keeps its run (one run, its lease held); a longer one
    releases the instance and is claimed again when due. Both journal the same wake time."""
    async with Worker(app):
        short = await app.handle("nap").create("50 ms")
        long = await app.handle("nap").create("400 ms")
        assert await short.result(timeout=30) == await long.result(timeout=30) == "rested"
    for instance, seconds, runs in ((short, 0.05, 1), (long, 0.4, 2)):
        assert (await instance.status()).runs == runs
        (step,) = await instance.steps()
        assert step.kind == "sleep" and step.status == "complete"
        assert step.started_at is not None and step.wake_at is not None
        assert step.finished_at is not None and step.finished_at >= step.wake_at
        assert abs((step.wake_at - step.started_at).total_seconds() - seconds) < 1e-3


async def test_a_worker_stopping_during_a_short_sleep_leaves_it_waiting_at_its_wake_time(
    app: App,
) -> None:
    """A short sleep is journaled with the run's next commit; a worker that stops while the
    run sleeps journals it ``waiting`` at the wake time it had, which the next worker keeps."""
    worker = Worker(app)
    await worker.start()
    nap = await app.handle("nap").create("250 ms")
    while (await nap.status()).status != "running":  # claimed: the run sleeps at once
        await asyncio.sleep(0.005)
    await worker.stop()
    (waiting,) = await nap.steps()
    assert (waiting.kind, waiting.status) == ("sleep", "waiting")
    assert waiting.started_at is not None and waiting.wake_at is not None
    assert abs((waiting.wake_at - waiting.started_at).total_seconds() - 0.25) < 1e-3
    async with Worker(app):
        assert await nap.result(timeout=30) == "rested"
    (done,) = await nap.steps()
    assert done.status == "complete" and done.wake_at == waiting.wake_at
    assert done.finished_at is not None and done.finished_at >= done.wake_at


async def test_a_timer_due_while_the_slots_are_busy_takes_the_headroom(
    tmp_path: Path, database_url: str
) -> None:
    """Every slot but the headroom busy with a backlog: a timer falling due meanwhile is
    claimed into the headroom at once, not after a slot of the backlog frees."""
    settings = f'[runtime]\ndatabase = "{database_url}"\nconcurrency = 10\n'
    root = write_app(tmp_path, {**WORKFLOWS, "block_workflow.py": BLOCK}, settings)
    app = App.for_root(root)
    blockers = [await app.handle("block").create(5.0) for _ in range(20)]
    async with Worker(app) as worker:
        assert worker.headroom == 1
        nap = await app.handle("nap").create("400 ms")
        assert await nap.result(timeout=30) == "rested"
        statuses = [(await b.status()).status for b in blockers]
        assert statuses.count("running") == 9 and statuses.count("queued") == 11, statuses
    await app.close()


MEET = """
    import asyncio
    from framework import workflow, WorkflowContext

    ARRIVED: list[int] = []
    ALL_HERE = asyncio.Event()

    async def meet(n: int) -> int:
        ARRIVED.append(n)
        if len(ARRIVED) == 10:
            ALL_HERE.set()
        await asyncio.wait_for(ALL_HERE.wait(), 60)
        return n

    @workflow
    async def meeting(ctx: WorkflowContext[int]) -> int:
        return await ctx.step.do("meet", meet, ctx.params)
"""


async def test_concurrency_n_still_runs_n_instances_at_once_from_a_backlog(
    tmp_path: Path, database_url: str
) -> None:
    """Ten instances that each wait for all ten at concurrency 10: the headroom kept for
    fresh timers is lent to the backlog once it sat idle a poll interval, so all ten start."""
    settings = f'[runtime]\ndatabase = "{database_url}"\nconcurrency = 10\n'
    root = write_app(tmp_path, {"meeting_workflow.py": MEET}, settings)
    app = App.for_root(root)
    previous = app.install()
    try:
        meetings = [await app.handle("meeting").create(n, id=f"m{n}") for n in range(10)]
        async with Worker(app) as worker:
            assert worker.headroom == 1
            outputs = [await m.result(timeout=30) for m in meetings]
        assert outputs == list(range(10))
    finally:
        await app.close()
        app.uninstall(previous)


async def test_a_due_timer_locked_by_another_transaction_does_not_spin_the_worker(
    tmp_path: Path, postgres_url: str
) -> None:
    """Every slot but the headroom busy with a backlog, and the timer falling due held by
    another client's transaction (a claim under way elsewhere, a client cut off mid-
    transaction): the worker's claims skip it and look again a little later, not in a busy
    loop; once the row is free, the instance runs at once."""
    import psycopg

    settings = (
        f'[runtime]\ndatabase = "{postgres_url}"\nconcurrency = 10\n'
        "poll_interval = 30\n"  # the headroom is not lent to the backlog meanwhile
    )
    root = write_app(tmp_path, {**WORKFLOWS, "block_workflow.py": BLOCK}, settings)
    app = App.for_root(root)
    for _ in range(20):
        await app.handle("block").create(60.0)
    async with Worker(app, shutdown_grace=0.1) as worker:
        assert worker.headroom == 1
        nap = await app.handle("nap").create("1500 ms")
        while (await nap.status()).status != "waiting":
            await asyncio.sleep(0.02)
        (waiting,) = [s for s in await nap.steps() if s.status == "waiting"]
        assert waiting.wake_at is not None
        store = await app.store()
        looks = 0
        claim = store.claim

        async def counted_claim(*args: Any, **kwargs: Any) -> Any:
            nonlocal looks
            looks += 1
            return await claim(*args, **kwargs)

        async with await psycopg.AsyncConnection.connect(postgres_url) as holder:
            await holder.execute("SELECT 1 FROM instances WHERE id = %s FOR UPDATE", [nap.id])
            store.claim = counted_claim  # type: ignore[method-assign]
            # A second past its due time, the row still held:
            await asyncio.sleep(max(0.0, waiting.wake_at.timestamp() - app.clock.now()) + 1.0)
            assert (await nap.status()).status == "waiting"
            assert 1 <= looks < 40, f"{looks} claims in about a second"
            await holder.rollback()
            released = app.clock.now()
        assert await nap.result(timeout=20) == "rested"
        assert (await nap.status()).updated_at.timestamp() - released < 2.0
    await app.close()
