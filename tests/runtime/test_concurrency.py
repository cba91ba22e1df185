"""Concurrency limits through the handles, on both stores, with an in-process worker.

Several worker processes are in ``test_concurrency_processes.py``; the claim rules on their
own in ``tests/store/conformance/test_concurrency.py``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from framework.errors import ConcurrencyKeyError, ConfigError
from framework.runtime.app import App
from tests.apps import write_app
from tests.runtime.conftest import MakeEnv

GATED = """
import asyncio
from pathlib import Path
from framework import workflow, WorkflowContext

async def pass_gate(gate: str) -> str:
    while not Path(gate).exists():
        await asyncio.sleep(0.01)
    return gate

@workflow(concurrency={limit}{key})
async def gated(ctx: WorkflowContext[dict[str, object]]) -> str:
    return await ctx.step.do("gate", pass_gate, str(ctx.params["gate"]))
"""

FREE = """
from framework import workflow, WorkflowContext

@workflow
async def free(ctx: WorkflowContext[None]) -> str:
    return await ctx.step.do("hello", lambda: "hi")
"""

SLEEPY = """
from framework import workflow, WorkflowContext

@workflow(concurrency=1)
async def sleepy(ctx: WorkflowContext[dict[str, bool]]) -> str:
    await ctx.step.do("before", lambda: 1)
    if ctx.params["nap"]:
        await ctx.step.sleep("nap", "1 hour")
    await ctx.step.do("after", lambda: 2)
    return "done"
"""


def gated(limit: int, key: str | None = None) -> str:
    return GATED.format(limit=limit, key="" if key is None else f", concurrency_key={key!r}")


async def test_a_limited_workflow_queues_in_order_and_holds_back_no_other(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    env = await make_env({"gated_workflow.py": gated(1), "free_workflow.py": FREE})
    gate = tmp_path / "gate"
    queued = [await env.start("gated", {"gate": str(gate)}, id=f"g{n}") for n in range(3)]
    await env.wait_for(queued[0], "running")

    others = [await env.start("free") for _ in range(3)]
    for other in others:
        assert await other.result(timeout=10) == "hi"
    assert [(await q.status()).status for q in queued] == ["running", "queued", "queued"]

    gate.touch()
    for instance in queued:
        await instance.result(timeout=10)
    runs = [(await q.steps())[0] for q in queued]
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and later.started_at is not None
        assert earlier.finished_at <= later.started_at


async def test_a_keyed_limit_runs_keys_side_by_side_and_each_key_in_turn(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    env = await make_env({"gated_workflow.py": gated(1, "customer.id")})
    gate = tmp_path / "gate"
    params = [("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")]
    started = {
        name: await env.start("gated", {"gate": str(gate), "customer": {"id": key}}, id=name)
        for name, key in params
    }
    await env.wait_for(started["a1"], "running")
    await env.wait_for(started["b1"], "running")
    assert (await started["a2"].status()).status == "queued"
    assert (await started["b2"].status()).status == "queued"

    gate.touch()
    for instance in started.values():
        await instance.result(timeout=10)
    for first, second in (("a1", "a2"), ("b1", "b2")):
        (done,) = await started[first].steps()
        (next_run,) = await started[second].steps()
        assert done.finished_at is not None and next_run.started_at is not None
        assert done.finished_at <= next_run.started_at


async def test_a_sleeping_instance_frees_its_slot(make_env: MakeEnv) -> None:
    env = await make_env({"sleepy_workflow.py": SLEEPY})
    napper = await env.start("sleepy", {"nap": True})
    await env.wait_for(napper, "waiting")
    other = await env.start("sleepy", {"nap": False})

    assert await other.result(timeout=10) == "done"
    assert await napper.result(timeout=10) == "done"
    nap = next(s for s in await napper.steps() if s.name == "nap")
    other_after = next(s for s in await other.steps() if s.name == "after")
    assert nap.finished_at is not None and other_after.finished_at is not None
    assert other_after.finished_at < nap.finished_at


async def test_params_without_the_key_are_refused_and_nothing_is_stored(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"gated_workflow.py": gated(2, "customer.id")})
    with pytest.raises(ConcurrencyKeyError, match=r"'customer.id'.*no 'customer'"):
        await env.start("gated", {"gate": "x", "client": {"id": 1}}, id="nope")
    with pytest.raises(ConcurrencyKeyError, match=r"no 'customer.id'"):
        await env.start("gated", {"gate": "x", "customer": {"name": "c"}}, id="nope")
    assert (await env.get("gated").list()).instances == []


def test_fw_toml_overrides_the_code_key_by_key(tmp_path: Path) -> None:
    settings = """
    [[workflows]]
    name = "gated"
    concurrency = 3
    """
    root = write_app(tmp_path, {"gated_workflow.py": gated(1, "customer.id")}, settings)
    limit = App(root).concurrency_limits["gated"]
    assert (limit.limit, limit.key) == (3, "customer.id")
    assert "free" not in App(write_app(tmp_path, {"free_workflow.py": FREE})).concurrency_limits


def test_a_key_alone_means_one_at_a_time_per_key(tmp_path: Path) -> None:
    settings = """
    [[workflows]]
    name = "free"
    concurrency_key = "user"
    """
    root = write_app(tmp_path, {"free_workflow.py": FREE}, settings)
    limit = App(root).concurrency_limits["free"]
    assert (limit.limit, limit.key) == (1, "user")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("concurrency = 0", "concurrency must be a whole number of at least 1, got 0"),
        ('concurrency = "2"', "concurrency must be a whole number of at least 1, got '2'"),
        ("concurrency = true", "got True"),
        ('concurrency_key = "customer id"', "concurrency_key must be a dotted path"),
        ('concurrency_key = ""', "concurrency_key must be a dotted path"),
    ],
)
def test_invalid_fw_toml_values_are_refused_naming_the_key(
    tmp_path: Path, line: str, message: str
) -> None:
    settings = f"""
    [[workflows]]
    name = "free"
    {line}
    """
    root = write_app(tmp_path, {"free_workflow.py": FREE}, settings)
    with pytest.raises(ConfigError) as error:
        App(root)
    assert message in str(error.value)
    number = (root / "fw.toml").read_text().splitlines().index(line) + 1
    assert f"fw.toml:{number}: workflows[free].{line.split()[0]}: " in str(error.value)
