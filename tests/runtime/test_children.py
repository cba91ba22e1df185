"""ctx.parallel and ctx.spawn: child instances, fail-fast, deterministic ids."""

from __future__ import annotations

import pytest

from framework import InstanceFailedError
from tests.runtime.conftest import MakeEnv

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
    page = await _wait_for_children(env, 2)

    await instance.terminate()

    assert (await instance.status()).status == "terminated"
    for child in page:
        assert (await (await env.get("resize").get(child)).status()).status == "terminated"


async def _wait_for_children(env: object, count: int) -> list[str]:
    import asyncio

    from framework.testing import WorkflowTestEnv

    assert isinstance(env, WorkflowTestEnv)
    for _ in range(500):
        ids = [c.id for c in (await env.get("resize").list()).instances]
        if len(ids) >= count:
            return ids
        await asyncio.sleep(0.01)
    raise AssertionError("children never appeared")
