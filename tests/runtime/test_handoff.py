"""Hand-off: an instance created beside a worker with a free slot is claimed for it by the
create itself and starts at once; a full or stopping worker takes nothing."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from framework import Worker
from framework.runtime.app import App
from framework.store.base import Claim, NewInstance
from tests.apps import write_app
from tests.runtime.conftest import MakeEnv

GATED = """
import asyncio
from framework import workflow, WorkflowContext

GATE = asyncio.Event()

async def wait_for_gate() -> int:
    await GATE.wait()
    return 1

@workflow
async def gated(ctx: WorkflowContext[None]) -> int:
    return await ctx.step.do("gate", wait_for_gate)
"""


async def test_an_instance_created_beside_a_free_worker_starts_without_a_claim(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"gated_workflow.py": GATED})
    gate = importlib.import_module(f"{env.app.package}.workflows.gated_workflow").GATE
    handle = env.app.handle("gated")
    instance = await handle.create()
    # Already the worker's when create returns: its create transaction claimed it.
    assert env.worker.running == 1
    row = await (await env.app.store()).get_instance(instance.id)
    assert row is not None and (row.status, row.lease_owner) == ("running", env.worker.id)
    gate.set()
    assert await instance.result() == 1


async def test_a_full_worker_leaves_new_instances_queued_for_a_later_claim(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"gated_workflow.py": GATED}, concurrency=1)
    gate = importlib.import_module(f"{env.app.package}.workflows.gated_workflow").GATE
    handle = env.app.handle("gated")
    first = await handle.create()
    second = await handle.create()
    assert env.worker.running == 1
    row = await (await env.app.store()).get_instance(second.id)
    assert row is not None and (row.status, row.lease_owner) == ("queued", None)
    gate.set()
    assert [await first.result(), await second.result()] == [1, 1]


async def test_a_worker_that_stopped_meanwhile_releases_what_it_was_handed(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"gated_workflow.py": GATED})
    store = await env.app.store()
    handoff = env.worker.reserve(store, "gated", 1)
    assert handoff is not None
    now = env.app.clock.now()
    (created,) = await store.create_instances([NewInstance("h1", "gated", "null", now)], handoff)
    assert created.claim is not None
    env.worker.request_stop()
    await env.worker.adopt(store, handoff, [created.claim])
    assert env.worker.running == 0
    assert env.worker.reserve(store, "gated", 1) is None  # a stopping worker takes nothing more
    await env.worker.stop()  # a claim of its loop under way meanwhile releases what it took
    row = await store.get_instance("h1")
    assert row is not None and (row.status, row.lease_owner) == ("queued", None)


COUNTED = """
from framework import workflow, WorkflowContext

STARTED: list[str] = []

@workflow
async def counted(ctx: WorkflowContext[None]) -> int:
    STARTED.append(ctx.instance_id)
    return await ctx.step.do("one", lambda: 1)
"""


async def test_what_a_claim_under_way_takes_once_the_worker_is_stopping_is_released_unrun(
    make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await make_env({"counted_workflow.py": COUNTED})
    started = importlib.import_module(f"{env.app.package}.workflows.counted_workflow").STARTED
    store = await env.app.store()
    claim = store.claim

    async def stopped_meanwhile(*args: Any, **kwargs: Any) -> list[Claim]:
        claims = await claim(*args, **kwargs)
        if claims:
            env.worker.request_stop()  # asked to stop while this claim ran
        return claims

    monkeypatch.setattr(store, "claim", stopped_meanwhile)
    now = env.app.clock.now()
    await store.create_instances([NewInstance("c1", "counted", "null", now)])  # not handed over
    await asyncio.wait_for(env.worker.stop(), timeout=30)
    row = await store.get_instance("c1")
    assert row is not None and (row.status, row.lease_owner) == ("queued", None)
    assert started == []  # released at once, not run until the shutdown stopped it


QUIET = '[runtime]\npoll_interval = "60 seconds"\n'  # a missed wake-up would wait a minute
FAMILY = {
    "leaf_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def leaf(ctx: WorkflowContext[int]) -> int:
            return await ctx.step.do("double", lambda: ctx.params * 2)
    """,
    "root_workflow.py": """
        from framework import workflow, WorkflowContext, branch

        @workflow
        async def root(ctx: WorkflowContext[None]) -> list[int]:
            return await ctx.parallel([branch("leaf", 1), branch("leaf", 2)])
    """,
}


@pytest.fixture
async def quiet_app(tmp_path: Path, database_url: str) -> AsyncIterator[App]:
    """An app of ``COUNTED`` and ``FAMILY`` on the wall clock, polling once a minute."""
    root = write_app(tmp_path, {"counted_workflow.py": COUNTED, **FAMILY}, QUIET)
    app = App(root, database=database_url)
    previous = app.install()
    try:
        yield app
    finally:
        await app.close()
        app.uninstall(previous)


async def test_instances_run_one_after_another_beside_an_idle_worker_need_no_claim(
    quiet_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Worker(quiet_app) as worker:
        # Warm up through a client of its own (its create is not handed over, it wakes the
        # worker through the store): once that ran, the worker listens for wake-ups and has
        # had the one a new listener gives at its start.
        client = App(quiet_app.root, database=quiet_app.database_url)
        try:
            assert await (await client.handle("counted").create()).result() == 1
        finally:
            await client.close()
        await worker.idle()
        store = await quiet_app.store()
        claims: list[int] = []
        claim = store.claim

        async def counted_claim(*args: Any, **kwargs: Any) -> list[Claim]:
            claims.append(1)
            return await claim(*args, **kwargs)

        monkeypatch.setattr(store, "claim", counted_claim)
        handle = quiet_app.handle("counted")
        for _ in range(20):
            assert await (await handle.create()).result() == 1
        # Each was handed to the worker by its create, and its end made nothing else due:
        # the worker's loop, idle, had nothing to look for.
        assert claims == []


async def test_a_child_ending_on_an_idle_worker_wakes_its_parent_at_once(quiet_app: App) -> None:
    async with Worker(quiet_app):
        parent = await quiet_app.handle("root").create()
        assert await asyncio.wait_for(parent.result(), timeout=20) == [2, 4]


async def test_an_instance_a_claim_took_starts_before_the_worker_looks_again(
    quiet_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Worker(quiet_app) as worker:
        await worker.idle()
        store = await quiet_app.store()
        module = importlib.import_module(quiet_app.definition("counted").target.__module__)
        seen: list[str] = []
        claim = store.claim

        async def noted_claim(*args: Any, **kwargs: Any) -> list[Claim]:
            before = len(module.STARTED)
            claimed = await claim(*args, **kwargs)
            seen.append(f"claim took {len(claimed)} ({before} started)")
            return claimed

        monkeypatch.setattr(store, "claim", noted_claim)
        # A client of its own: its create is not handed over, the worker claims it.
        client = App(quiet_app.root, database=quiet_app.database_url)
        try:
            assert await (await client.handle("counted").create()).result() == 1
        finally:
            await client.close()
        # The run had its first turn (its first step) before the worker's next claim.
        took = seen.index("claim took 1 (0 started)")
        assert seen[took + 1] == "claim took 0 (1 started)"


SLEEPER_AND_GATED = {
    "sleeper_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def sleeper(ctx: WorkflowContext[None]) -> str:
            await ctx.step.sleep("nap", "1 hour")
            return "slept"
    """,
    "gated_workflow.py": """
        import asyncio
        from framework import workflow, WorkflowContext

        GATE = asyncio.Event()

        async def wait_for_gate() -> str:
            await GATE.wait()
            return "through"

        @workflow
        async def gated(ctx: WorkflowContext[None]) -> str:
            return await ctx.step.do("gate", wait_for_gate)
    """,
}


async def test_a_skipping_clock_jumps_to_a_timer_once_the_last_run_ends(
    make_env: MakeEnv,
) -> None:
    env = await make_env(SLEEPER_AND_GATED, QUIET)
    sleeper = await env.start("sleeper")
    await env.wait_for(sleeper, "waiting")
    gated = await env.start("gated")
    module = importlib.import_module(env.app.definition("gated").target.__module__)
    awaited = asyncio.create_task(sleeper.result(timeout=20))
    while not env.app.clock.may_skip():  # the result is awaited: time may skip from now on
        await asyncio.sleep(0)

    module.GATE.set()

    assert await gated.result(timeout=20) == "through"
    # Nothing runs now: the worker's loop skips the clock to the sleeper's timer at once,
    # not after its minute-long poll.
    assert await awaited == "slept"
