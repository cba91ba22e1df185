"""Durable timers and events: sleeping and waiting instances hold no worker."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.runtime.conftest import MakeEnv

TIMERS = """
from datetime import datetime, timedelta, timezone
from framework import workflow, WorkflowContext

@workflow
async def timers(ctx: WorkflowContext[None]) -> float:
    start = ctx.event.timestamp
    await ctx.step.sleep("week", "7 days")
    await ctx.step.sleep_until("new-year", start + timedelta(days=30))
    await ctx.step.sleep("past", 0)
    return 0.0
"""


async def test_sleeps_of_days_complete_at_once_with_the_skipping_clock(make_env: MakeEnv) -> None:
    env = await make_env({"timers_workflow.py": TIMERS})
    instance = await env.start("timers")

    await instance.result(timeout=20)

    week, new_year, past = await instance.steps()
    assert week.wake_at is not None and week.started_at is not None
    assert round((week.wake_at - week.started_at).total_seconds()) == 7 * 86400
    assert (new_year.kind, new_year.status) == ("sleep", "complete")
    assert past.status == "complete"


EVENTS = """
from pydantic import BaseModel
from framework import workflow, WorkflowContext, EventTimeoutError

BODY_RUNS: list[str] = []

class Approval(BaseModel):
    approved: bool
    by: str

@workflow
async def approvals(ctx: WorkflowContext[None]) -> dict[str, object]:
    BODY_RUNS.append(ctx.instance_id)
    first = await ctx.step.wait_for_event("first", type="approval", model=Approval)
    second = await ctx.step.wait_for_event("second", type="note", timeout="1 hour")
    try:
        await ctx.step.wait_for_event("never", type="nobody-sends", timeout="2 days")
        timed_out = False
    except EventTimeoutError:
        timed_out = True
    return {"by": first.by, "approved": first.approved, "note": second, "timed_out": timed_out}
"""


async def test_events_are_buffered_typed_and_time_out(make_env: MakeEnv) -> None:
    env = await make_env({"approvals_workflow.py": EVENTS})
    instance = await env.start("approvals", id="a-1")
    await instance.send_event("note", "sent before its wait")
    await env.wait_for(instance, "waiting")

    await instance.send_event("approval", {"approved": True, "by": "ada"})
    output = await instance.result(timeout=20)

    assert output == {
        "by": "ada",
        "approved": True,
        "note": "sent before its wait",
        "timed_out": True,
    }
    first, _, never = await instance.steps()
    assert (first.kind, first.event_type, first.output) == (
        "event",
        "approval",
        {"approved": True, "by": "ada"},
    )
    assert never.status == "errored" and never.error is not None
    assert never.error.name == "EventTimeoutError"


async def test_an_event_for_another_type_does_not_wake_the_wait(make_env: MakeEnv) -> None:
    env = await make_env({"approvals_workflow.py": EVENTS})
    instance = await env.start("approvals")
    await env.wait_for(instance, "waiting")
    runs = sys.modules[env.app.definition("approvals").target.__module__].BODY_RUNS
    assert runs == [instance.id]

    await instance.send_event("nobody-sends", {"x": 1})  # a type it waits for, but later
    await env.idle()

    assert runs == [instance.id], "the event woke the instance"

    assert (await instance.status()).status == "waiting"
    assert [(s.name, s.status) for s in await instance.steps()] == [("first", "waiting")]


async def test_an_event_to_an_ended_instance_is_refused(make_env: MakeEnv) -> None:
    from framework import InstanceStateError

    env = await make_env({"approvals_workflow.py": EVENTS})
    instance = await env.start("approvals")
    await instance.terminate()

    with pytest.raises(InstanceStateError, match="terminated"):
        await instance.send_event("approval", {"approved": True, "by": "ada"})


GATHERED = """
import asyncio
from framework import workflow, WorkflowContext

@workflow
async def gathered(ctx: WorkflowContext[None]) -> list[int]:
    waits = [ctx.step.wait_for_event(f"e{i}", type="go", timeout="1 hour") for i in range(3)]
    return list(await asyncio.gather(*waits))
"""


async def test_gathered_waits_for_one_type_take_its_events_in_the_order_sent(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"gathered_workflow.py": GATHERED})
    instances = [await env.start("gathered") for _ in range(6)]
    for payload in (1, 2, 3):
        for instance in instances:
            await instance.send_event(type="go", payload=payload)

    outputs = [await instance.result(timeout=60) for instance in instances]

    assert outputs == [[1, 2, 3]] * 6


SLEEPS = """
import asyncio
from framework import workflow, WorkflowContext

@workflow
async def sleeps(ctx: WorkflowContext[None]) -> str:
    await asyncio.gather(*[ctx.step.sleep(f"s{i}", "1 hour") for i in range(4)])
    return "rested"
"""


async def test_gathered_sleeps_sleep_at_the_same_time(make_env: MakeEnv) -> None:
    env = await make_env({"sleeps_workflow.py": SLEEPS})
    instance = await env.start("sleeps")

    assert await instance.result(timeout=30) == "rested"

    steps = await instance.steps()
    assert [s.name for s in steps] == ["s0", "s1", "s2", "s3"]
    began = [s.started_at.timestamp() for s in steps if s.started_at is not None]
    woke = [s.wake_at.timestamp() for s in steps if s.wake_at is not None]
    assert len(began) == len(woke) == 4
    assert max(began) - min(began) < 60  # all four began in the first run, not an hour apart
    assert all(round(w - b) == 3600 for b, w in zip(began, woke, strict=True))  # woke together


async def test_gathered_waits_all_wait_for_their_events(make_env: MakeEnv) -> None:
    env = await make_env({"gathered_workflow.py": GATHERED})
    instance = await env.start("gathered")
    status = await instance.status()
    while status.status != "waiting":
        await asyncio.sleep(0.01)  # a read may not yield: let the worker run
        status = await instance.status()

    assert [w.step for w in status.waiting_for] == ["e0", "e1", "e2"]
