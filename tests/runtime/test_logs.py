"""``ctx.log`` lines kept with the instance, on both stores: levels, fields, the step they
were logged in, once each across retries and replays, through the handle, the API and
Studio."""

from __future__ import annotations

import logging

import pytest

from framework.runtime.logs import FIELDS_LIMIT, MESSAGE_LIMIT
from tests.runtime.conftest import MakeEnv

LOGGED = """
from framework import workflow, WorkflowContext, Retries

ATTEMPTS: list[int] = []

@workflow
async def logged(ctx: WorkflowContext[int]) -> int:
    ctx.log.info("starting", order=ctx.params)

    def charge() -> int:
        ATTEMPTS.append(1)
        ctx.log.warning("charging", attempt=len(ATTEMPTS))
        if len(ATTEMPTS) < 2:
            raise ConnectionError("bank down")
        return ctx.params * 100

    cents = await ctx.step.do("charge", charge, retries=Retries(limit=3, delay="1 second"))
    await ctx.step.sleep("cool-off", "1 hour")
    ctx.log.debug("after the sleep")
    ctx.log.error("x" * 5000)
    return cents
"""


async def test_log_lines_are_kept_once_with_level_fields_and_step(make_env: MakeEnv) -> None:
    env = await make_env({"logged_workflow.py": LOGGED})
    instance = await env.start("logged", 7)
    assert await instance.result(timeout=30) == 700

    logs = await instance.logs()

    assert [(line.level, line.message[:20], line.step, line.fields) for line in logs] == [
        ("info", "starting", None, {"order": 7}),
        ("warning", "charging", "charge", {"attempt": 1}),
        ("warning", "charging", "charge", {"attempt": 2}),
        ("debug", "after the sleep", None, {}),
        ("error", "x" * 20, None, {}),
    ]  # each once, though the body replayed three times
    assert logs[1].step_count == 1 and logs[0].at <= logs[1].at <= logs[-1].at
    assert len(logs[-1].message) == MESSAGE_LIMIT and "[cut:" in logs[-1].message


async def test_the_process_log_gets_lines_cut_as_the_stored_ones(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """A workflow logging megabytes a line does not fill the worker's log (5,000 lines of 11
    KB each made a 55 MB server log)."""
    env = await make_env({"huge_workflow.py": HUGE})
    with caplog.at_level(logging.INFO, logger="fw.workflow"):
        await (await env.start("huge")).result(timeout=30)

    [line] = [r for r in caplog.records if r.name == "fw.workflow"]
    assert len(line.getMessage()) == MESSAGE_LIMIT and "[cut:" in line.getMessage()
    fields = line.fw  # type: ignore[attr-defined]
    assert "blob" not in fields and len(fields["fields_cut"]) <= FIELDS_LIMIT


HUGE = """
from framework import workflow, WorkflowContext

@workflow
async def huge(ctx: WorkflowContext[None]) -> None:
    ctx.log.info("y" * 11_000, blob="z" * 11_000)
"""


async def test_logs_through_the_api_and_studio(make_env: MakeEnv) -> None:
    import httpx

    from framework.http import create_app

    env = await make_env({"logged_workflow.py": LOGGED})
    instance = await env.start("logged", 3, id="l-1")
    await instance.result(timeout=30)
    asgi = create_app(env.app, token="")
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787") as client:
        body = (await client.get("/api/instances/l-1/logs")).json()
        missing = await client.get("/api/instances/nope/logs")
        page = (await client.get("/studio/instances/l-1")).text

    assert [line["level"] for line in body["logs"]] == [
        "info",
        "warning",
        "warning",
        "debug",
        "error",
    ]
    assert body["logs"][1]["step"] == "charge" and body["logs"][1]["fields"] == {"attempt": 1}
    assert missing.status_code == 404
    assert page.count('class="log-line"') == 5 + 2  # the instance's panel, and charge's fold
    assert 'id="step-1-logs"' in page and "Logs (2)" in page
