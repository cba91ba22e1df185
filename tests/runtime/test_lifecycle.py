"""Pause, resume, terminate and restart, on waiting and running instances."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from framework import InstanceStateError, InstanceTerminatedError
from framework.testing import WorkflowTestEnv
from tests.runtime.conftest import MakeEnv

STEPS = """
import asyncio
from framework import workflow, WorkflowContext

RUNS: list[str] = []
GATE = asyncio.Event()
ENTERED = asyncio.Event()

def record(name: str) -> str:
    RUNS.append(name)
    return name

async def gated() -> str:
    RUNS.append("gated")
    ENTERED.set()
    await GATE.wait()
    return "gated"

@workflow
async def steps(ctx: WorkflowContext[dict[str, bool]]) -> list[str]:
    out = [await ctx.step.do("one", record, "one")]
    if ctx.params.get("gate"):
        out.append(await ctx.step.do("gated", gated))
    await ctx.step.wait_for_event("go", type="go")
    out.append(await ctx.step.do("two", record, "two"))
    out.append(await ctx.step.do("three", record, "three"))
    return out
"""


async def test_pause_and_resume_a_waiting_instance(make_env: MakeEnv) -> None:
    env = await make_env({"steps_workflow.py": STEPS})
    instance = await env.start("steps", {})
    await env.wait_for(instance, "waiting")

    await instance.pause()
    await instance.send_event("go")
    await env.idle()
    assert (await instance.status()).status == "paused"
    steps = [(s.name, s.status) for s in await instance.steps()]
    assert steps == [("one", "complete"), ("go", "waiting")]

    await instance.resume()
    assert await instance.result(timeout=10) == ["one", "two", "three"]
    with pytest.raises(InstanceStateError, match="complete"):
        await instance.pause()


async def test_pausing_a_running_instance_stops_it_at_its_next_step(make_env: MakeEnv) -> None:
    env = await make_env({"steps_workflow.py": STEPS})
    module = _module(env, "steps")
    instance = await env.start("steps", {"gate": True})
    async with asyncio.timeout(10):
        await module.ENTERED.wait()

    await instance.pause()
    module.GATE.set()
    await env.wait_for(instance, "paused")
    await instance.send_event("go")
    await env.idle()

    assert [s.name for s in await instance.steps()] == ["one", "gated"]
    await instance.resume()
    assert await instance.result(timeout=10) == ["one", "gated", "two", "three"]
    assert module.RUNS.count("gated") == 1


async def test_terminate_stops_an_instance_for_good(make_env: MakeEnv) -> None:
    env = await make_env({"steps_workflow.py": STEPS})
    instance = await env.start("steps", {})
    await env.wait_for(instance, "waiting")

    await instance.terminate()

    with pytest.raises(InstanceTerminatedError):
        await instance.result(timeout=5)
    with pytest.raises(InstanceStateError):
        await instance.terminate()


async def test_restart_from_a_step_keeps_the_journal_before_it(make_env: MakeEnv) -> None:
    env = await make_env({"steps_workflow.py": STEPS})
    module = _module(env, "steps")
    instance = await env.start("steps", {})
    await env.wait_for(instance, "waiting")
    await instance.send_event("go")
    await instance.result(timeout=10)
    module.RUNS.clear()

    await instance.restart(from_step="go")
    await env.wait_for(instance, "complete")

    assert module.RUNS == ["two", "three"]
    assert [s.name for s in await instance.steps()] == ["one", "go", "two", "three"]

    await instance.restart()
    await env.wait_for(instance, "complete")
    assert module.RUNS == ["two", "three", "one", "two", "three"]


async def test_restart_from_an_unknown_step_names_the_steps(make_env: MakeEnv) -> None:
    env = await make_env({"steps_workflow.py": STEPS})
    instance = await env.start("steps", {})
    await env.wait_for(instance, "waiting")

    with pytest.raises(InstanceStateError, match=r"no step 'nope'.*one"):
        await instance.restart(from_step="nope")


def _module(env: WorkflowTestEnv, name: str) -> Any:
    return sys.modules[env.app.definition(name).target.__module__]
