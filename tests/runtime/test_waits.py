"""Durable timers and events: sleeping and waiting instances hold no worker."""

from __future__ import annotations

import asyncio

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

class Approval(BaseModel):
    approved: bool
    by: str

@workflow
async def approvals(ctx: WorkflowContext[None]) -> dict[str, object]:
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
    await _wait_for_status(instance, "waiting")

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
    await _wait_for_status(instance, "waiting")

    await instance.send_event("unrelated", {"x": 1})
    await asyncio.sleep(0.3)

    assert (await instance.status()).status == "waiting"
    assert len(await instance.steps()) == 1


async def test_an_event_to_an_ended_instance_is_refused(make_env: MakeEnv) -> None:
    from framework import InstanceStateError

    env = await make_env({"approvals_workflow.py": EVENTS})
    instance = await env.start("approvals")
    await instance.terminate()

    with pytest.raises(InstanceStateError, match="terminated"):
        await instance.send_event("approval", {})


async def _wait_for_status(instance: object, status: str, timeout: float = 10.0) -> None:
    from framework import Instance

    assert isinstance(instance, Instance)
    deadline = asyncio.get_running_loop().time() + timeout
    while (current := (await instance.status()).status) != status:
        assert asyncio.get_running_loop().time() < deadline, f"still {current}, not {status}"
        await asyncio.sleep(0.02)
