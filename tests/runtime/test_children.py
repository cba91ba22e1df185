"""ctx.parallel and ctx.spawn: child instances, fail-fast, deterministic ids."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from framework import InstanceFailedError, InstanceNotFoundError
from tests.runtime.conftest import MakeEnv

T = TypeVar("T")

CHILDREN = {
    "resize_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def resize(ctx: WorkflowContext[dict[str, int]]) -> int:
            size = await ctx.step.do("resize", lambda: ctx.params["size"] // 2)
            await ctx.step.sleep("render", "10 minutes")
            if size < 0:
                raise ValueError(f"negative size {size}")
            return size
    """,
    "album_workflow.py": """
        from framework import workflow, WorkflowContext, branch, ChildWorkflowError

        @workflow
        async def album(ctx: WorkflowContext[list[int]]) -> dict[str, object]:
            sizes = await ctx.parallel([branch("resize", {"size": s}) for s in ctx.params])
            side = await ctx.spawn("resize", {"size": 8})
            return {"sizes": sizes, "spawned": side.id}
    """,
    "wide_workflow.py": """
        from framework import workflow, WorkflowContext, branch

        @workflow
        async def wide(ctx: WorkflowContext[None]) -> None:
            await ctx.parallel([branch("resize", {"size": 1})] * 101)
    """,
}


async def test_parallel_children_return_outputs_in_order(make_env: MakeEnv) -> None:
    env = await make_env(CHILDREN)
    instance = await env.start("album", [40, 10, 20], id="al-1")

    output = await instance.result(timeout=30)

    assert output == {"sizes": [20, 5, 10], "spawned": "al-1:resize:4"}
    steps = await instance.steps()
    assert [(s.name, s.count, s.kind, s.child_id) for s in steps] == [
        ("resize", 1, "child", "al-1:resize:1"),
        ("resize", 2, "child", "al-1:resize:2"),
        ("resize", 3, "child", "al-1:resize:3"),
        ("resize", 4, "child", "al-1:resize:4"),
    ]
    children = await env.get("resize").list()
    assert sorted(c.id for c in children.instances) == [f"al-1:resize:{n}" for n in (1, 2, 3, 4)]
    assert {c.parent_id for c in children.instances} == {"al-1"}


async def test_a_failed_child_fails_the_parent_fast_and_terminates_siblings(
    make_env: MakeEnv,
) -> None:
    env = await make_env(CHILDREN)
    instance = await env.start("album", [40, -10, 20], id="al-2")

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    status = await instance.status()
    assert status.error is not None and status.error.name == "ChildWorkflowError"
    assert "al-2:resize:2" in status.error.message and "negative size" in status.error.message
    children = {c.id: c.status for c in (await env.get("resize").list()).instances}
    assert children["al-2:resize:2"] == "errored"
    assert set(children.values()) <= {"errored", "terminated", "complete"}


async def test_more_than_100_branches_is_an_error(make_env: MakeEnv) -> None:
    env = await make_env(CHILDREN)
    instance = await env.start("wide")

    with pytest.raises(InstanceFailedError, match="at most 100"):
        await instance.result(timeout=20)


async def test_terminating_a_parent_terminates_its_children(make_env: MakeEnv) -> None:
    env = await make_env(CHILDREN)
    instance = await env.start("album", [2, 4], id="al-3")
    await env.idle()
    page = sorted(c.id for c in (await env.get("resize").list()).instances)
    assert page == ["al-3:resize:1", "al-3:resize:2"]
    assert (await instance.status()).status == "waiting"

    await instance.terminate()

    assert (await instance.status()).status == "terminated"
    for child in page:
        assert (await (await env.get("resize").get(child)).status()).status == "terminated"


TYPED = {
    "resize_workflow.py": CHILDREN["resize_workflow.py"],
    "caption_workflow.py": """
        from pydantic import BaseModel
        from framework import workflow, WorkflowContext

        class Caption(BaseModel):
            text: str

        @workflow
        async def caption(ctx: WorkflowContext[Caption]) -> str:
            return ctx.params.text.upper()
    """,
    "gallery_workflow.py": """
        from framework import workflow, WorkflowContext
        from .._generated import workflows

        @workflow
        async def gallery(ctx: WorkflowContext[list[int]]) -> dict[str, object]:
            resize = workflows.get("resize")
            sizes = await ctx.parallel([resize.branch({"size": s}) for s in ctx.params])
            pair = await ctx.parallel(
                (workflows.get("caption").branch({"text": "hi"}), resize.branch({"size": 6}))
            )
            side = await ctx.spawn(workflows.get("caption"), {"text": "side"})
            kind = type(pair).__name__
            return {"sizes": sizes, "pair": list(pair), "tuple": kind, "side": side.id}
    """,
    "framed_workflow.py": """
        from framework import WorkflowEntrypoint, WorkflowEvent, WorkflowStep
        from .._generated import workflows

        class FramedWorkflow(WorkflowEntrypoint[str, list[str]]):
            async def run(self, event: WorkflowEvent[str], step: WorkflowStep) -> list[str]:
                (text,) = await self.ctx.parallel(
                    (workflows.get("caption").branch({"text": event.payload}),)
                )
                return [text]
    """,
    "typo_workflow.py": """
        from framework import workflow, WorkflowContext, branch
        from .._generated import workflows

        @workflow
        async def typo(ctx: WorkflowContext[str]) -> None:
            if ctx.params == "typed":
                workflows.get_dynamic("captoin")
            await ctx.parallel([branch("captoin", {"text": "x"})])
    """,
}


async def test_typed_children_run_in_both_forms(make_env: MakeEnv) -> None:
    env = await make_env(TYPED)

    gallery = await env.start("gallery", [4, 8], id="g-1")
    framed = await env.start("framed", "frame", id="f-1")

    assert await gallery.result(timeout=30) == {
        "sizes": [2, 4],
        "pair": ["HI", 3],
        "tuple": "tuple",
        "side": "g-1:caption:2",
    }
    assert await framed.result(timeout=30) == ["FRAME"]
    spawned = await env.get("caption").get("g-1:caption:2")
    assert await spawned.result(timeout=30) == "SIDE"


@pytest.mark.parametrize("how", ["typed", "untyped"])
async def test_a_misspelled_child_fails_with_close_matches(make_env: MakeEnv, how: str) -> None:
    env = await make_env(TYPED)
    instance = await env.start("typo", how)

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=20)

    error = (await instance.status()).error
    assert error is not None and error.name == "UnknownWorkflowError"
    assert "'captoin'" in error.message and "caption" in error.message
    assert (await env.get("caption").list()).instances == []


ENDLESS = """
from framework import workflow, WorkflowContext

@workflow
async def endless(ctx: WorkflowContext[None]) -> None:
    await ctx.spawn("endless", None)
"""


async def test_a_workflow_that_starts_itself_without_end_stops_at_the_longest_child_id(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"endless_workflow.py": ENDLESS})
    root = await env.start("endless", id="e")

    await root.result(timeout=30)  # each level ends once its child is started

    levels = 1 + 1024 // len(":endless:1")
    deepest_id = "e" + ":endless:1" * (levels - 1)
    deepest = await _eventually(lambda: env.get("endless").get(deepest_id))
    with pytest.raises(InstanceFailedError) as failed:
        await deepest.result(timeout=60)
    assert failed.value.error is not None
    assert "children nest too deep" in failed.value.error.message
    assert "at most 1,024" in failed.value.error.message
    page = await env.get("endless").list(limit=500)
    assert len(page.instances) == levels


async def _eventually(read: Callable[[], Awaitable[T]], within: float = 60) -> T:
    """``read()``'s value once it stops raising ``InstanceNotFoundError``."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await read()
        except InstanceNotFoundError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.02)
