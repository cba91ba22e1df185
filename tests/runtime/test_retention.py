"""Retention per instance, per workflow and app-wide (most specific first), honoured by
``prune`` and by workers; an instance's status says how many runs it took, when it ended
and how long it ran. Both stores."""

from __future__ import annotations

import asyncio

import pytest

from framework.runtime.retention import prune
from framework.store.base import TERMINAL
from framework.testing import WorkflowTestEnv
from tests.runtime.conftest import MakeEnv

NAP = """
from framework import workflow, WorkflowContext

@workflow
async def nap(ctx: WorkflowContext[None]) -> str:
    await ctx.step.do("yawn", lambda: "yawn")
    await ctx.step.sleep("rest", "1 hour")
    return "rested"
"""

QUICK = """
from framework import workflow, WorkflowContext

@workflow
async def quick(ctx: WorkflowContext[None]) -> int:
    return 1
"""

WORKFLOWS = {"nap_workflow.py": NAP, "quick_workflow.py": QUICK}


async def ids(env: WorkflowTestEnv) -> list[str]:
    store = await env.app.store()
    return sorted(row.id for row in (await store.list_instances()).instances)


async def test_own_retention_beats_the_workflows_which_beats_the_apps(make_env: MakeEnv) -> None:
    settings = (
        '[runtime]\nretention = "10 days"\nerror_retention = "1 hour"\n'
        '[[workflows]]\nname = "quick"\nsuccess_retention = "1 day"\n'
    )
    env = await make_env(WORKFLOWS, settings)
    instances = [
        await env.get("quick").create(id="quick-by-workflow"),
        await env.get("quick").create(id="quick-own", retention="1 hour"),
        await env.get("nap").create(id="nap-by-app"),
        await env.get("nap").create(id="nap-own", retention="30 days"),
    ]
    for instance in instances:
        await instance.result(timeout=20)
    # The naps ended an hour after the quick ones (their sleep skipped the clock).

    env.advance("2 hours")
    assert (await prune(env.app)).deleted == {"complete": 1, "errored": 0, "terminated": 0}
    assert await ids(env) == ["nap-by-app", "nap-own", "quick-by-workflow"]
    env.advance("1 day")
    await prune(env.app)
    assert await ids(env) == ["nap-by-app", "nap-own"]
    env.advance("10 days")
    await prune(env.app)
    assert await ids(env) == ["nap-own"]
    env.advance("30 days")
    await prune(env.app)
    assert await ids(env) == []


async def test_older_than_replaces_fw_toml_but_not_an_instances_own(make_env: MakeEnv) -> None:
    from framework.runtime.retention import Retention

    env = await make_env({"quick_workflow.py": QUICK}, '[runtime]\nretention = "10 days"\n')
    await (await env.get("quick").create(id="plain")).result(timeout=20)
    await (await env.get("quick").create(id="own", retention="7 days")).result(timeout=20)
    env.advance("1 day")

    report = await prune(env.app, Retention(success=3600, error=3600))

    assert report.deleted["complete"] == 1
    assert await ids(env) == ["own"]


async def test_workers_prune_by_each_workflows_retention(make_env: MakeEnv) -> None:
    settings = (
        '[runtime]\nprune_interval = "0.1 s"\n[[workflows]]\nname = "quick"\nretention = "0 s"\n'
    )
    env = await make_env(WORKFLOWS, settings)
    nap = await env.get("nap").create(id="nap")
    await nap.result(timeout=20)
    quick = await env.get("quick").create(id="quick")
    await quick.result(timeout=20)
    env.advance("1 second")
    store = await env.app.store()

    async def gone() -> None:
        while await store.get_instance("quick") is not None:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(gone(), timeout=20)
    # Pruned in the same pass, the nap (no retention anywhere) was kept.
    assert await ids(env) == ["nap"]


async def test_status_tells_runs_end_duration_and_own_retention(make_env: MakeEnv) -> None:
    env = await make_env(WORKFLOWS)
    nap = await env.get("nap").create(id="nap", retention="2 days")
    quick = await env.get("quick").create(id="quick")
    await nap.result(timeout=20)
    await quick.result(timeout=20)

    napped = await nap.status()
    assert napped.runs == 2  # its first run, and the run after its sleep
    assert napped.retention == 2 * 86400
    assert napped.ended_at is not None and napped.status in TERMINAL
    assert napped.duration is not None and napped.duration >= 3600
    quick_status = await quick.status()
    assert (quick_status.runs, quick_status.retention) == (1, None)
    assert quick_status.duration is not None and quick_status.duration < 3600


@pytest.mark.parametrize("retention", ["soon", -1, "-3 days"])
async def test_a_bad_retention_is_refused_and_nothing_is_stored(
    make_env: MakeEnv, retention: object
) -> None:
    env = await make_env({"quick_workflow.py": QUICK})

    with pytest.raises(ValueError, match="retention: "):
        await env.get("quick").create(id="q", retention=retention)  # type: ignore[arg-type]

    assert await ids(env) == []
