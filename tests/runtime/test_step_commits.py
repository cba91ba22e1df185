"""When a completed step is journaled: with the run's next commit, which comes before the next
step runs, an event is taken or the instance ends, and at the latest once the body yields to
the event loop (``Recorder.defer``). Both stores, through the generated handles."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from framework.store.base import Status, Transition
from framework.testing import WorkflowTestEnv
from tests.runtime.conftest import MakeEnv

THREE = """
import asyncio
from framework import workflow, WorkflowContext

SEEN: dict[str, list[tuple[str, str]]] = {}  # what step "two" found journaled, by instance
READ = None  # set by the test: reads an instance's steps from the store
GATE = asyncio.Event()

async def two(instance_id: str) -> int:
    SEEN[instance_id] = [(s.name, s.status) for s in await READ(instance_id)]
    return 2

@workflow
async def three(ctx: WorkflowContext[dict[str, bool]]) -> int:
    one = await ctx.step.do("one", lambda: 1)
    if ctx.params.get("yield"):
        await asyncio.sleep(0)  # the body yields: step "one" is committed meanwhile
    if ctx.params.get("gate"):
        await GATE.wait()  # not durable: the test holds the body here
    total = one + await ctx.step.do("two", two, ctx.instance_id)
    return total + await ctx.step.do("three", lambda: 3)
"""


def _module(env: WorkflowTestEnv) -> Any:
    return sys.modules[env.app.definition("three").target.__module__]


async def _prepared(make_env: MakeEnv) -> tuple[WorkflowTestEnv, Any, list[Transition]]:
    """The env, the workflow's module wired to read the store, and the transitions applied."""
    env = await make_env({"three_workflow.py": THREE})
    store = await env.app.store()
    module = _module(env)
    module.READ = store.list_steps
    applied: list[Transition] = []
    apply = store.apply

    async def counted(transition: Transition, now: float) -> Status:
        applied.append(transition)
        return await apply(transition, now)

    store.apply = counted  # type: ignore[method-assign]
    return env, module, applied


async def test_a_body_that_ends_after_its_last_step_journals_it_with_the_end(
    make_env: MakeEnv,
) -> None:
    env, _, applied = await _prepared(make_env)
    instance = await env.start("three", {})

    assert await instance.result(timeout=10) == 6

    # Steps one and two were each committed before the next step ran; three went with the
    # completion, in one transaction.
    assert [([s.name for s in t.steps], t.status) for t in applied] == [
        (["one"], None),
        (["two"], None),
        (["three"], "complete"),
    ]
    assert [(s.name, s.status) for s in await instance.steps()] == [
        ("one", "complete"),
        ("two", "complete"),
        ("three", "complete"),
    ]


@pytest.mark.parametrize("yields", [False, True], ids=["straight-on", "yielding-between"])
async def test_a_step_runs_only_once_the_step_before_is_journaled(
    make_env: MakeEnv, yields: bool
) -> None:
    env, module, _ = await _prepared(make_env)
    instance = await env.start("three", {"yield": yields})

    assert await instance.result(timeout=10) == 6

    assert module.SEEN[instance.id] == [("one", "complete")]


async def test_a_step_is_journaled_while_the_body_waits_on_something_not_durable(
    make_env: MakeEnv,
) -> None:
    env, module, applied = await _prepared(make_env)
    instance = await env.start("three", {"gate": True})

    async with asyncio.timeout(10):
        while [(s.name, s.status) for s in await instance.steps()] != [("one", "complete")]:
            await asyncio.sleep(0.01)
    assert (await instance.status()).status == "running"

    module.GATE.set()
    assert await instance.result(timeout=10) == 6
    assert [[s.name for s in t.steps] for t in applied] == [["one"], ["two"], ["three"]]
