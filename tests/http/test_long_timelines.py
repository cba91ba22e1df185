"""An instance of thousands of steps keeps a Studio page of bounded size: the waterfall and
the restart choices show the latest 500 steps and say how many earlier ones are left out
(the API lists them all). Before, 20,000 steps made a 14 MB page that refreshed itself while
the instance ran."""

from __future__ import annotations

from pathlib import Path

import httpx

from framework.http import create_app
from framework.http.timeline import MAX_ROWS
from framework.testing import workflow_test_env
from tests.apps import write_app

LONG = """
from framework import workflow, WorkflowContext

def tick(n: int) -> int:
    return n

@workflow
async def long(ctx: WorkflowContext[int]) -> int:
    for n in range(ctx.params):
        await ctx.step.do("tick", tick, n)
    return ctx.params
"""


async def test_studio_shows_the_latest_steps_of_a_long_instance(
    tmp_path: Path, database_url: str
) -> None:
    root = write_app(tmp_path, {"long_workflow.py": LONG})
    steps = MAX_ROWS + 100
    async with workflow_test_env(root, database=database_url) as env:
        assert await env.run("long", steps, id="long-1") == steps
        transport = httpx.ASGITransport(app=create_app(env.app, token=""))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get("/studio/instances/long-1")
            shown = await client.get("/api/instances/long-1")

    assert page.status_code == shown.status_code == 200
    assert page.text.count('<tr class="step"') == MAX_ROWS
    assert page.text.count("<option value=\"") == MAX_ROWS + 1  # and "from the top"
    assert f'data-step="tick #{steps}"' in page.text
    assert 'data-step="tick #100"' not in page.text and 'data-step="tick #101"' in page.text
    assert "The 100 earlier steps are not shown here, only the latest 500" in page.text
    assert 'href="/api/instances/long-1"' in page.text
    assert f"<dt>Steps</dt><dd>{steps}</dd>" in page.text
    assert len(shown.json()["steps"]) == steps
