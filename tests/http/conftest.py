"""HTTP tests: an app with a few workflows on each store, an in-process worker, and an httpx
client talking to ``create_app`` in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from framework.http import create_app
from framework.runtime.records import Status
from framework.testing import WorkflowTestEnv, workflow_test_env
from tests.apps import write_app

GREET = """
from typing import Literal
from pydantic import BaseModel, Field
from framework import workflow, WorkflowContext

class GreetParams(BaseModel):
    name: str = Field(description="Who to greet.")
    times: int = Field(default=1, ge=1, le=5, description="How many times.")
    mood: Literal["happy", "grumpy"] = "happy"
    loud: bool = False
    tags: list[str] = []

def say(name: str, times: int, loud: bool) -> str:
    text = " ".join([f"hello {name}"] * times)
    return text.upper() if loud else text

@workflow
async def greet(ctx: WorkflowContext[GreetParams]) -> dict[str, str]:
    text = await ctx.step.do("say", say, ctx.params.name, ctx.params.times, ctx.params.loud)
    await ctx.step.sleep("rest", "{rest}")
    return {"text": text, "mood": ctx.params.mood}
"""

APPROVAL = """
from framework import workflow, WorkflowContext

@workflow
async def approval(ctx: WorkflowContext[dict[str, str]]) -> object:
    await ctx.step.do("prepare", lambda: "ready")
    return await ctx.step.wait_for_event("await-approval", type="approval", timeout="7 days")
"""

FAN_OUT = """
from framework import workflow, WorkflowContext, branch

@workflow
async def fan_out(ctx: WorkflowContext[list[str]]) -> list[object]:
    return await ctx.parallel([branch("greet", {"name": name}) for name in ctx.params])
"""

ECHO = """
from typing import Any
from framework import workflow, WorkflowContext

@workflow
async def echo(ctx: WorkflowContext[Any]) -> Any:
    return await ctx.step.do("echo", lambda: ctx.params)
"""

BOOM = """
from framework import workflow, WorkflowContext, NonRetryableError

def explode(message: str) -> None:
    raise NonRetryableError(message)

@workflow
async def boom(ctx: WorkflowContext[str]) -> None:
    await ctx.step.do("explode", explode, ctx.params)
"""

WORKFLOWS = {
    "greet_workflow.py": GREET,
    "approval_workflow.py": APPROVAL,
    "fan_out_workflow.py": FAN_OUT,
    "echo_workflow.py": ECHO,
    "boom_workflow.py": BOOM,
}


def write_test_app(parent: Path, rest: str = "1 second") -> Path:
    """The app every HTTP test uses (``rest``: greet's sleep)."""
    workflows = dict(WORKFLOWS)
    workflows["greet_workflow.py"] = GREET.replace("{rest}", rest)
    return write_app(parent, workflows)


@dataclass
class Served:
    """An app served in process: its test environment and an httpx client."""

    env: WorkflowTestEnv
    client: httpx.AsyncClient

    async def result(self, instance_id: str, workflow: str, timeout: float = 30) -> Any:
        """Wait for an instance to end (skipping sleeps) and return its output."""
        return await self.env.app.instance_handle(workflow, instance_id).result(timeout=timeout)

    async def wait_status(self, instance_id: str, status: Status, timeout: float = 30) -> None:
        """Wait until an instance (its id as it appears in a URL) has ``status``."""
        found = (await self.client.get(f"/api/instances/{instance_id}")).json()
        instance = self.env.app.instance_handle(found["workflow"], found["id"])
        await self.env.wait_for(instance, status, timeout)


MakeServed = Callable[..., Awaitable[Served]]


@pytest.fixture
async def make_served(tmp_path: Path, database_url: str) -> AsyncIterator[MakeServed]:
    """``await make_served(token=..., body_limit=...)``: the test app on the store under
    test, served by ``create_app`` to an httpx client."""
    async with AsyncExitStack() as stack:

        async def make(**options: Any) -> Served:
            root = write_test_app(tmp_path)
            env = await stack.enter_async_context(workflow_test_env(root, database=database_url))
            options.setdefault("token", "")
            asgi = create_app(env.app, **options)
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1:8787"
                )
            )
            return Served(env, client)

        yield make


@pytest.fixture
async def served(make_served: MakeServed) -> Served:
    """The test app served without a token."""
    return await make_served()
