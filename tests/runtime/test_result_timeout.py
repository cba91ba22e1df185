"""``result(timeout=)`` says honestly why the instance has not ended: no worker claimed it, it
is paused, or it waits for an event, a timer, a retry or its children; on both stores."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from framework import ResultTimeoutError, Worker
from framework.runtime.app import App
from framework.runtime.handles import Instance
from framework.testing.env import wait_for_status
from tests.apps import write_app

WORKFLOWS = {
    "waits_workflow.py": """
        from framework import workflow, WorkflowContext, Retries, branch

        def charge() -> None:
            raise ConnectionError("the bank is down")

        @workflow
        async def waits(ctx: WorkflowContext[str]) -> None:
            if ctx.params == "event":
                await ctx.step.wait_for_event("approval", type="approval")
            elif ctx.params == "event with a timeout":
                await ctx.step.wait_for_event("approval", type="approval", timeout="1 hour")
            elif ctx.params == "sleep":
                await ctx.step.sleep("cool-off", "1 hour")
            elif ctx.params == "retry":
                await ctx.step.do("charge", charge, retries=Retries(limit=3, delay="1 hour"))
            elif ctx.params == "children":
                await ctx.parallel([branch("child", None), branch("child", None)])
    """,
    "child_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def child(ctx: WorkflowContext[None]) -> None:
            await ctx.step.wait_for_event("go", type="go")
    """,
}
NO_WORKER = "no worker has claimed it yet"


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[App]:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    the_app = App.for_root(write_app(tmp_path, WORKFLOWS, settings))
    yield the_app
    await the_app.close()


async def timeout_error(instance: Instance[Any, object]) -> ResultTimeoutError:
    with pytest.raises(ResultTimeoutError) as caught:
        await instance.result(timeout=0.2)
    return caught.value


async def test_without_a_worker_it_says_no_worker_claimed_the_instance(app: App) -> None:
    instance = await app.handle("waits").create("event", id="w-1")

    error = await timeout_error(instance)

    assert error.status == "queued" and error.instance_id == "w-1"
    assert str(error).startswith(
        f"instance 'w-1' is still queued after 0.2 seconds: {NO_WORKER}: it was queued "
    )
    assert "is a worker running (`fw worker`, `fw dev` or `fw serve --worker`)?" in str(error)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("event", "it waits for an event of type 'approval' with no timeout; "
                  "send one with `fw event send w-2 approval PAYLOAD`"),
        ("event with a timeout", "it waits for an event of type 'approval' until 20"),
        ("sleep", "it sleeps in step 'cool-off' until 20"),
        ("retry", "it retries step 'charge' at 20"),
        ("children", "it waits for its children 'w-2:child:1', 'w-2:child:2'"),
    ],
)
async def test_a_waiting_instance_says_what_it_waits_for(
    app: App, params: str, expected: str
) -> None:
    async with Worker(app) as worker:
        instance = await app.handle("waits").create(params, id="w-2")
        await wait_for_status(instance, "waiting", timeout=30, worker=worker)

        error = await timeout_error(instance)

    assert error.status == "waiting"
    assert expected in str(error), str(error)
    assert "is a worker running" not in str(error)
    if params == "retry":
        assert re.search(r"UTC \(in (1 h|59 min \d+ s)\) after", str(error)), str(error)
        assert str(error).endswith(
            "after attempt 1 failed: ConnectionError: the bank is down"
        ), str(error)
    if params == "event with a timeout":
        assert "UTC (in " in str(error), str(error)


async def test_a_paused_instance_says_how_to_resume_it(app: App) -> None:
    instance = await app.handle("waits").create("event", id="w-3")
    await instance.pause()

    error = await timeout_error(instance)

    assert str(error) == (
        "instance 'w-3' is still paused after 0.2 seconds: it is paused; "
        "resume it with `fw instance resume w-3`"
    )


async def test_a_due_instance_no_worker_claims_says_so(app: App) -> None:
    async with Worker(app) as worker:
        instance = await app.handle("waits").create("event", id="w-4")
        await wait_for_status(instance, "waiting", timeout=30, worker=worker)
    await instance.send_event("approval")  # due now, and no worker runs any more

    error = await timeout_error(instance)

    assert "it is due since" in str(error) and "but no worker has claimed it yet" in str(error)
