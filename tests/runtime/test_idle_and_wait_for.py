"""The test environment's barriers: ``idle()`` returns exactly when the worker has nothing
left to do now, and ``wait_for`` when an instance reaches a status; both fail loudly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from framework.testing import WorkflowTestEnv, workflow_test_env
from tests.apps import write_app
from tests.runtime.conftest import MakeEnv

WORKFLOWS = {
    "slow_workflow.py": """
        import asyncio
        from framework import workflow, WorkflowContext

        GATE = asyncio.Event()

        async def pause(seconds: float) -> float:
            await asyncio.sleep(seconds)
            return seconds

        async def gated() -> str:
            await GATE.wait()
            return "opened"

        @workflow
        async def slow(ctx: WorkflowContext[float]) -> float:
            if ctx.params < 0:
                return len(await ctx.step.do("gated", gated))
            return await ctx.step.do("pause", pause, ctx.params)
    """,
    "fan_workflow.py": """
        from framework import workflow, WorkflowContext, branch

        @workflow
        async def fan(ctx: WorkflowContext[int]) -> list[float]:
            return await ctx.parallel([branch("slow", 0.05) for _ in range(ctx.params)])
    """,
    "waits_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def waits(ctx: WorkflowContext[str]) -> str:
            if ctx.params == "sleep":
                await ctx.step.sleep("nap", "10 minutes")
                return "slept"
            if ctx.params == "fail":
                raise ValueError("asked to fail")
            await ctx.step.wait_for_event("go", type="go", timeout="1 hour")
            return "went"
    """,
}


async def test_idle_waits_for_runs_in_flight_and_the_work_they_create(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    alone = await env.start("slow", 0.3)
    fan = await env.start("fan", 3)

    await env.idle()

    assert (await alone.status()).status == "complete"
    assert (await fan.status()).output == [0.05, 0.05, 0.05]
    assert env.worker.running == 0


async def test_idle_leaves_timers_and_event_waits_alone(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    sleeping = await env.start("waits", "sleep")
    waiting = await env.start("waits", "event")

    await env.idle()

    assert (await sleeping.status()).status == "waiting"
    assert (await waiting.status()).status == "waiting"
    assert env.clock.offset == 0, "idle() must not skip time"
    await waiting.send_event("go")
    await env.idle()
    assert (await waiting.status()).output == "went"


async def test_idle_times_out_naming_what_still_runs(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    stuck = await env.start("slow", -1.0)

    with pytest.raises(TimeoutError, match=f"still busy after 0\\.3 s \\(running now: {stuck.id}\\)"):
        await env.idle(timeout=0.3)

    _module(env, "slow").GATE.set()
    await env.idle()
    assert (await stuck.status()).output == len("opened")


async def test_wait_for_returns_the_status_reached(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    waiting = await env.start("waits", "event")

    status = await env.wait_for(waiting, "waiting")
    assert (status.id, status.status) == (waiting.id, "waiting")

    await waiting.send_event("go")
    status = await env.wait_for(waiting, ("errored", "complete"))
    assert (status.status, status.output) == ("complete", "went")


async def test_wait_for_fails_at_once_when_the_instance_ended_otherwise(
    make_env: MakeEnv,
) -> None:
    env = await make_env(WORKFLOWS)
    failing = await env.start("waits", "fail")

    with pytest.raises(AssertionError, match=r"ended errored \(ValueError: asked to fail\)"):
        await env.wait_for(failing, "waiting", timeout=30)


async def test_wait_for_times_out_saying_where_the_instance_is(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    waiting = await env.start("waits", "event")
    await env.wait_for(waiting, "waiting")

    with pytest.raises(TimeoutError, match=r"is waiting, not complete, after 0\.2 s"):
        await env.wait_for(waiting, "complete", timeout=0.2)


async def test_idle_needs_a_running_worker(tmp_path: Path, sqlite_url: str) -> None:
    root = write_app(tmp_path, WORKFLOWS)
    async with workflow_test_env(root, database=sqlite_url) as env:
        pass

    with pytest.raises(RuntimeError, match="is not running"):
        await env.idle()


def _module(env: WorkflowTestEnv, name: str) -> Any:
    return sys.modules[env.app.definition(name).target.__module__]
