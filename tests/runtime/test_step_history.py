"""A step's history in its journal entry, on both stores: each attempt (start, duration,
error; the last 20 kept) and the arguments a ``ctx.step.do`` step was called with (cut over
the payload limit, never used on replay)."""

from __future__ import annotations

import json
import sys

import pytest

from framework.errors import InstanceFailedError
from framework.runtime.arguments import PREVIEW_LIMIT, arguments_json
from framework.runtime.attempts import HISTORY_LIMIT
from tests.runtime.conftest import MakeEnv

FLAKY = """
from framework import workflow, WorkflowContext, Retries

CALLS: list[tuple[object, ...]] = []

def charge(order: dict[str, int], note: str, *, cents: bool = False) -> int:
    CALLS.append((order, note, cents))
    if len(CALLS) < 3:
        raise ConnectionError(f"bank down ({len(CALLS)})")
    return order["amount"] * (100 if cents else 1)

@workflow
async def flaky(ctx: WorkflowContext[int]) -> int:
    order = {"amount": ctx.params}
    return await ctx.step.do(
        "charge", charge, order, "first", cents=True, retries=Retries(limit=5, delay="1 second")
    )
"""

ALWAYS = """
from framework import workflow, WorkflowContext, Retries

def fail() -> None:
    raise RuntimeError("no")

@workflow
async def always(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("fail", fail, retries=Retries(limit=24, delay="1 second"))
"""

ARGUMENTS = """
import threading
from framework import workflow, WorkflowContext

def keep(*args: object, **kwargs: object) -> int:
    return len(args) + len(kwargs)

@workflow
async def arguments(ctx: WorkflowContext[int]) -> int:
    lock = threading.Lock()
    loop: list[object] = []
    loop.append(loop)
    await ctx.step.do("odd", keep, lock, float("nan"), b"bytes", key={1, 2})
    await ctx.step.do("big", keep, "x" * ctx.params)
    await ctx.step.do("circular", keep, loop)
    return await ctx.step.do("none", keep)
"""


async def test_each_attempt_is_kept_with_its_start_duration_and_error(make_env: MakeEnv) -> None:
    env = await make_env({"flaky_workflow.py": FLAKY})
    instance = await env.start("flaky", 42)
    assert await instance.result(timeout=30) == 4200

    [step] = await instance.steps()
    history = step.attempt_history
    assert step.attempts == 3 and [a.number for a in history] == [1, 2, 3]
    assert [a.error.message if a.error else None for a in history] == [
        "bank down (1)",
        "bank down (2)",
        None,
    ]
    assert all(a.started_at and a.finished_at and a.duration is not None for a in history)
    assert history[0].started_at == step.started_at and history[-1].finished_at == step.finished_at
    assert history[1].started_at and history[0].finished_at
    assert history[1].started_at >= history[0].finished_at  # the retry waited its delay


async def test_a_first_try_success_has_one_attempt(make_env: MakeEnv) -> None:
    env = await make_env({"arguments_workflow.py": ARGUMENTS})
    instance = await env.start("arguments", 10)
    await instance.result(timeout=30)

    steps = {s.name: s for s in await instance.steps()}
    [only] = steps["none"].attempt_history
    assert (only.number, only.error, only.started_at) == (1, None, steps["none"].started_at)


async def test_the_history_keeps_the_last_attempts(make_env: MakeEnv) -> None:
    env = await make_env({"always_workflow.py": ALWAYS})
    instance = await env.start("always")
    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    [step] = await instance.steps()
    assert step.attempts == 25 and len(step.attempt_history) == HISTORY_LIMIT
    assert [a.number for a in step.attempt_history] == list(range(6, 26))
    assert all(a.error is not None and a.error.message == "no" for a in step.attempt_history)


async def test_a_do_steps_arguments_are_journaled_and_not_used_on_replay(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"flaky_workflow.py": FLAKY})
    instance = await env.start("flaky", 7)
    assert await instance.result(timeout=30) == 700

    [step] = await instance.steps()
    assert step.input == {"args": [{"amount": 7}, "first"], "kwargs": {"cents": True}}
    calls = sys.modules[env.app.definition("flaky").target.__module__].CALLS
    assert calls == [({"amount": 7}, "first", True)] * 3  # each attempt got the body's values


async def test_arguments_json_cannot_hold_are_shown_and_large_ones_cut(make_env: MakeEnv) -> None:
    env = await make_env(
        {"arguments_workflow.py": ARGUMENTS}, settings="[runtime]\npayload_limit = 10000\n"
    )
    instance = await env.start("arguments", 20_000)
    assert await instance.result(timeout=30) == 0

    steps = {s.name: s for s in await instance.steps()}
    odd = steps["odd"].input
    assert odd["args"][0].startswith("<unlocked _thread.lock object")
    assert odd["args"][1:] == ["NaN", "bytes"] and odd["kwargs"] == {"key": [1, 2]}
    big = steps["big"].input
    assert big["cut"] is True
    assert big["note"] == (
        "the arguments are 20,025 bytes of JSON, over the payload limit of 10,000 bytes: "
        "only their start is kept"
    )
    assert big["preview"].startswith('{"args":["xxx') and len(big["preview"]) == PREVIEW_LIMIT
    assert steps["circular"].input == {"args": [["..."]], "kwargs": {}}  # pydantic marks the loop
    assert steps["none"].input == {"args": [], "kwargs": {}}
    assert all(not s.unreadable for s in steps.values())


def test_arguments_nested_past_the_readers_limit_are_cut() -> None:
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]

    kept = json.loads(arguments_json((deep,), {}, 1_000_000))

    assert kept["cut"] is True
    assert kept["note"] == "the arguments are nested deeper than 200 levels"
    assert json.loads(arguments_json(([[1]],), {"k": None}, 100)) == {
        "args": [[[1]]],
        "kwargs": {"k": None},
    }
