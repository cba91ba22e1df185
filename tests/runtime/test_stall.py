"""An async step that blocks the event loop (``time.sleep`` in an ``async def``) stops every
instance of its worker, the heartbeats and the step's own timeout, and fw cannot preempt it:
the worker's watchdog names the blocking line in a warning instead of staying silent. A sync
step, which fw runs in a thread, blocks nothing and is not named."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.runtime.conftest import MakeEnv

BLOCKING = """
import time
from framework import workflow, WorkflowContext

async def block_the_loop() -> str:
    time.sleep(2.5)
    return "blocked"

def block_a_thread() -> str:
    time.sleep(2.5)
    return "threaded"

@workflow
async def blocking(ctx: WorkflowContext[str]) -> str:
    step = block_the_loop if ctx.params == "loop" else block_a_thread
    return await ctx.step.do("block", step)
"""


async def stall_warnings(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    """The watchdog's warnings once there are ``count`` of them (it logs from its thread)."""
    for _ in range(600):
        found = [r.getMessage() for r in caplog.records if "event loop" in r.getMessage()]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} event loop warnings: {caplog.text}")


async def test_a_step_that_blocks_the_event_loop_is_named_in_a_warning(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fw.worker")
    env = await make_env({"blocking_workflow.py": BLOCKING})

    assert await env.run("blocking", "thread") == "threaded"
    assert [r for r in caplog.records if "event loop" in r.getMessage()] == []
    assert await env.run("blocking", "loop") == "blocked"
    blocked, answered = await stall_warnings(caplog, 2)

    where = "blocking_workflow.py:6 in block_the_loop"
    assert blocked.startswith("the event loop has not answered for ")
    assert where in blocked and "must not block" in blocked and "asyncio.to_thread" in blocked
    assert answered.startswith("the event loop answered again after ") and where in answered
