"""Event types and payloads are checked against the workflow's waits before anything is stored:
through the Python API, the HTTP API and ``fw event send``, on both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from framework import Instance, InstanceStatus, InvalidEventPayloadError, UnknownEventTypeError
from framework.http import create_app
from tests.runtime.conftest import MakeEnv

WORKFLOWS = {
    "review_workflow.py": """
        from pydantic import BaseModel
        from framework import workflow, WorkflowContext

        class Approval(BaseModel):
            approved: bool
            by: str = ""

        @workflow
        async def review(ctx: WorkflowContext[str]) -> dict[str, object]:
            note = await ctx.step.wait_for_event("note", type="comment", timeout="1 day")
            verdict = await ctx.step.wait_for_event("verdict", type="approval", model=Approval)
            return {"note": note, "approved": verdict.approved, "by": verdict.by}
    """,
    "inbox_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def inbox(ctx: WorkflowContext[str]) -> object:
            return await ctx.step.wait_for_event("any", type=ctx.params)
    """,
    "quiet_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def quiet(ctx: WorkflowContext[None]) -> int:
            await ctx.step.sleep("nap", "1 day")
            return 1
    """,
}


async def test_the_api_refuses_unknown_types_and_bad_payloads(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    review = await env.start("review", "r", id="r-1")
    before = await _waiting(review)

    with pytest.raises(UnknownEventTypeError, match="did you mean 'approval'") as unknown:
        await review.send_event("aproval", {"approved": True})
    assert unknown.value.close_matches == ["approval"]
    assert unknown.value.known == ["approval", "comment"]
    with pytest.raises(InvalidEventPayloadError, match="approved: Input should be a valid bool"):
        await review.send_event("approval", {"approved": "perhaps"})
    assert (await review.status()).updated_at == before.updated_at

    await review.send_event("approval", {"approved": True, "by": "ada"})
    await review.send_event("comment", "fine")
    assert await review.result(timeout=30) == {"note": "fine", "approved": True, "by": "ada"}


async def test_computed_types_accept_any_and_no_waits_accept_none(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    inbox = await env.start("inbox", "ping", id="i-1")
    quiet = await env.start("quiet", id="q-1")

    await inbox.send_event("ping", {"n": 1})
    with pytest.raises(UnknownEventTypeError, match="it waits for no event"):
        await quiet.send_event("ping")

    assert await inbox.result(timeout=30) == {"n": 1}


async def test_http_answers_422_with_close_matches(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    await env.start("review", "r", id="r-2")
    transport = httpx.ASGITransport(app=create_app(env.app, token=""))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        unknown = await client.post(
            "/api/instances/r-2/events", json={"type": "aproval", "payload": {"approved": True}}
        )
        invalid = await client.post(
            "/api/instances/r-2/events", json={"type": "approval", "payload": {"by": "ada"}}
        )
        sent = await client.post(
            "/api/instances/r-2/events", json={"type": "approval", "payload": {"approved": False}}
        )

    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"] == "unknown_event_type"
    assert unknown.json()["close_matches"] == ["approval"]
    assert invalid.status_code == 422, invalid.text
    assert invalid.json()["error"] == "invalid_payload"
    assert invalid.json()["detail"][0]["loc"] == ["payload", "approved"]
    assert sent.status_code == 202, sent.text
    await (await env.get("review").get("r-2")).send_event("comment")
    output = await (await env.get("review").get("r-2")).result(timeout=30)
    assert output == {"note": None, "approved": False, "by": ""}


async def _waiting(instance: Instance[Any, Any]) -> InstanceStatus[Any]:
    """The instance's status once it waits (for its first event)."""
    async with asyncio.timeout(20):
        while (status := await instance.status()).status != "waiting":
            await asyncio.sleep(0.01)
    return status
