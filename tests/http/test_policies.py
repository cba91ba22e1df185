"""Step and workflow policies through the HTTP API, on both stores: a caller's idempotency key
is kept hashed on its step, and an instance past its deadline reads WorkflowTimeoutError."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from framework.http import create_app
from framework.testing import workflow_test_env
from tests.apps import write_app

POLICIES = """
from framework import workflow, WorkflowContext

@workflow(timeout="1 hour")
async def policies(ctx: WorkflowContext[str]) -> str:
    await ctx.step.do("charge", lambda: "ok", idempotency_key="charge:" + ctx.params)
    await ctx.step.wait_for_event("approval", type="approval")
    return "approved"
"""


async def test_the_key_hash_and_the_deadline_error_in_the_api(
    tmp_path: Path, database_url: str
) -> None:
    root = write_app(tmp_path, {"policies_workflow.py": POLICIES})
    async with workflow_test_env(root, database=database_url) as env:
        transport = httpx.ASGITransport(app=create_app(env.app, token=""))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            body = {"id": "p-1", "params": "o-9"}
            assert (
                await client.post("/api/workflows/policies/instances", json=body)
            ).status_code == 201
            outcome = await env.app.instance_handle("policies", "p-1").outcome(timeout=30)
            detail = (await client.get("/api/instances/p-1?wait=0")).json()

    assert not outcome and outcome.error.name == "WorkflowTimeoutError"
    assert detail["status"] == "errored"
    assert (detail["error"]["name"], detail["error"]["step"]) == (
        "WorkflowTimeoutError",
        "approval",
    )
    charge = detail["steps"][0]
    assert charge["name"] == "charge"
    assert charge["idempotency_key_sha256"] == hashlib.sha256(b"charge:o-9").hexdigest()
    assert "charge:o-9" not in str(detail)
