"""Studio's event form: for an awaited event type with a payload model, a form built from the
model's schema (errors next to their fields, after the redirect), on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from framework.http import create_app
from framework.testing import WorkflowTestEnv, workflow_test_env
from tests.apps import write_app
from tests.http.test_studio import csrf_of, rejected_page

REVIEW = """
from pydantic import BaseModel, Field
from framework import workflow, WorkflowContext

class Approval(BaseModel):
    approved: bool
    by: str = Field(min_length=2)

@workflow
async def review(ctx: WorkflowContext[None]) -> dict[str, object]:
    note = await ctx.step.wait_for_event("note", type="comment")
    verdict = await ctx.step.wait_for_event("verdict", type="approval", model=Approval)
    return {"note": note, "by": verdict.by, "approved": verdict.approved}
"""


@pytest.fixture
async def studio(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[WorkflowTestEnv, httpx.AsyncClient]]:
    root = write_app(tmp_path, {"review_workflow.py": REVIEW})
    async with workflow_test_env(root, database=database_url) as env:
        transport = httpx.ASGITransport(app=create_app(env.app, token=""))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield env, client


async def test_the_event_form_builds_a_form_from_the_payload_model(
    studio: tuple[WorkflowTestEnv, httpx.AsyncClient],
) -> None:
    env, client = studio
    review = await env.start("review", id="rv")
    await _waiting_for(client, "rv", "comment")
    token = await csrf_of(client, "/studio/instances/rv")

    unknown = await client.post(
        "/studio/instances/rv/event", data={"csrf_token": token, "type": "coment", "payload": ""}
    )
    assert "did you mean &#39;comment&#39;?" in await rejected_page(
        client, unknown, "/studio/instances/rv"
    )
    comment = await client.post(
        "/studio/instances/rv/event",
        data={"csrf_token": token, "type": "comment", "payload": '"ok"'},
    )
    assert comment.status_code == 303
    page = await _waiting_for(client, "rv", "approval")
    assert 'data-event-type="approval"' in page and 'name="p.approved"' in page
    assert 'name="p.by"' in page and '<select name="type">' not in page

    invalid = await client.post(
        "/studio/instances/rv/event",
        data={"csrf_token": token, "payload_form": "approval", "p.by": "a"},
    )
    shown = await rejected_page(client, invalid, "/studio/instances/rv")
    assert "at least 2 characters" in shown and 'value="a"' in shown
    sent = await client.post(
        "/studio/instances/rv/event",
        data={"csrf_token": token, "payload_form": "approval", "p.approved": "true",
              "p.by": "ada"},
    )
    assert sent.status_code == 303
    async with asyncio.timeout(30):
        assert await review.result() == {"note": "ok", "by": "ada", "approved": True}


async def _waiting_for(client: httpx.AsyncClient, instance_id: str, event_type: str) -> str:
    """The instance's page once it waits for an event of ``event_type``."""
    async with asyncio.timeout(20):
        while True:
            page = (await client.get(f"/studio/instances/{instance_id}")).text
            if f'<option value="{event_type}"' in page or f'data-event-type="{event_type}"' in page:
                return page
            await asyncio.sleep(0.02)
