"""Workflow-level policy: ``@workflow(retries=..., timeout=...)`` (and class attributes), the
instance deadline whatever the instance is doing, and the order code, fw.toml and the app's
defaults combine in."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from framework import Instance, InstanceFailedError, InstanceStatus
from framework.testing import WorkflowTestEnv
from tests.runtime.conftest import MakeEnv

WAITS = """
import asyncio
from framework import (
    workflow, WorkflowContext, define_step, StepContext, RollbackContext, CompensationContext,
    Retries,
)

LOG: list[str] = []

async def reserve(ctx: StepContext) -> str:
    return "seat"

async def release(ctx: RollbackContext) -> None:
    LOG.append(f"release {ctx.output} ({ctx.error.name})")

reserve_seat = define_step("reserve", handler=reserve, rollback=release)

async def compensate(ctx: CompensationContext) -> None:
    LOG.append(f"on_failure {ctx.failed_step} {ctx.error.name}")

def always_fails() -> None:
    raise ConnectionError("down")

async def slow() -> None:
    await asyncio.sleep(60)

@workflow(timeout="1 hour", on_failure=compensate)
async def waits(ctx: WorkflowContext[str]) -> str:
    await ctx.run_step(reserve_seat)
    if ctx.params == "event":
        await ctx.step.wait_for_event("approval", type="approval")
    elif ctx.params == "sleep":
        await ctx.step.sleep("nap", "1 day")
    elif ctx.params == "retry":
        await ctx.step.do("flaky", always_fails, retries=Retries(limit=10, delay="25 minutes", backoff="constant"))
    elif ctx.params == "running":
        await ctx.step.do("slow", slow)
    return "done"
"""


def _module(env: WorkflowTestEnv, name: str) -> Any:
    return sys.modules[env.app.definition(name).target.__module__]


async def _failed(instance: Instance[Any, Any]) -> InstanceStatus[Any]:
    """Wait (skipping time) for ``instance`` to end errored; its status."""
    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)
    return await instance.status()


@pytest.mark.parametrize(
    ("waiting_on", "step", "attempts"),
    [("event", "approval", 0), ("sleep", "nap", 0), ("retry", "flaky", 3)],
)
async def test_the_deadline_ends_a_waiting_instance_and_compensates(
    make_env: MakeEnv, waiting_on: str, step: str, attempts: int
) -> None:
    env = await make_env({"waits_workflow.py": WAITS})

    instance = await env.start("waits", waiting_on)
    status = await _failed(instance)

    assert status.error is not None
    assert (status.error.name, status.error.step, status.error.retryable) == (
        "WorkflowTimeoutError",
        step,
        False,
    )
    assert "ran past its deadline of 1 h " in status.error.message
    # the worker woke it at the deadline (the skipping clock jumps to the next wake time)
    elapsed = (status.updated_at - status.created_at).total_seconds()
    assert 3600 <= elapsed < 3600 + 60
    log = _module(env, "waits").LOG
    assert log == [
        "release seat (WorkflowTimeoutError)",
        f"on_failure {step} WorkflowTimeoutError",
    ]
    steps = {s.name: s for s in await instance.steps()}
    if attempts:
        assert steps[step].attempts == attempts  # at 0, 25 and 50 minutes; the 4th was due at 75


async def test_the_deadline_cuts_a_running_step(make_env: MakeEnv) -> None:
    source = WAITS.replace('timeout="1 hour"', 'timeout="300 ms"')
    env = await make_env({"waits_workflow.py": source})

    instance = await env.start("waits", "running")
    status = await _failed(instance)

    assert status.error is not None
    assert (status.error.name, status.error.step) == ("WorkflowTimeoutError", "slow")
    assert _module(env, "waits").LOG[0] == "release seat (WorkflowTimeoutError)"
    steps = {s.name: s for s in await instance.steps()}
    assert "slow" not in steps or steps["slow"].status != "errored"  # not a failed attempt


async def test_a_restart_counts_the_deadline_again(make_env: MakeEnv) -> None:
    env = await make_env({"waits_workflow.py": WAITS})
    instance = await env.start("waits", "sleep")
    await _failed(instance)

    await instance.restart()
    await env.wait_for(instance, "waiting")
    restarted = await instance.status()
    status = await _failed(instance)

    assert status.error is not None and status.error.name == "WorkflowTimeoutError"
    elapsed = (status.updated_at - restarted.updated_at).total_seconds()
    assert 3600 - 60 <= elapsed < 3600 + 60


POLICY = """
from framework import workflow, WorkflowContext, WorkflowEntrypoint, WorkflowEvent, WorkflowStep, Retries

def {name}_fails() -> None:
    raise ConnectionError("down")

{decorator}
async def {name}(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("a", {name}_fails)
"""

CLASS_POLICY = """
from framework import WorkflowEntrypoint, WorkflowEvent, WorkflowStep, Retries

class Classy(WorkflowEntrypoint[None, None]):
    retries = Retries(limit=1)
    timeout = "2 hours"

    async def run(self, event: WorkflowEvent[None], step: WorkflowStep) -> None:
        pass
"""

SETTINGS = """
[defaults]
timeout = "3 minutes"
deadline = "1 day"

[defaults.retries]
limit = 4
delay = "7 seconds"

[[workflows]]
name = "coded"
retries = { limit = 2, backoff = "linear" }
deadline = "5 hours"
timeout = "1 minute"

[[workflows]]
name = "tabled"
retries = { limit = 3 }
deadline = "6 hours"
"""


async def test_code_then_fw_toml_then_defaults(make_env: MakeEnv) -> None:
    env = await make_env(
        {
            "coded_workflow.py": POLICY.format(
                name="coded",
                decorator='@workflow(retries=Retries(limit=1, delay="1 second"), timeout="4 hours")',
            ),
            "tabled_workflow.py": POLICY.format(name="tabled", decorator="@workflow"),
            "plain_workflow.py": POLICY.format(name="plain", decorator="@workflow"),
            "classy_workflow.py": CLASS_POLICY,
        },
        settings=SETTINGS,
    )
    app = env.app

    def retries(name: str) -> tuple[int, float, str]:
        policy = app.default_retries(name)
        return policy.limit, policy.delay, policy.backoff

    # code > the workflow's table > [defaults], field by field
    assert retries("coded") == (1, 1.0, "linear")
    assert retries("tabled") == (3, 7.0, "exponential")
    assert retries("plain") == (4, 7.0, "exponential")
    assert retries("classy") == (1, 7.0, "exponential")
    assert [app.deadline(n) for n in ("coded", "tabled", "plain", "classy")] == [
        4 * 3600.0,
        6 * 3600.0,
        86400.0,
        2 * 3600.0,
    ]
    # the step timeout: the table's `timeout`, else [defaults] timeout
    assert [app.step_timeout(n) for n in ("coded", "plain")] == [60.0, 180.0]

    # and at run time: a step's own retries still win (none here: the code's limit of 1)
    instance = await env.start("coded")
    status = await _failed(instance)
    assert status.error is not None and status.error.attempts == 2


async def test_fw_replay_of_a_journal_past_its_deadline_checks_the_code_only(
    make_env: MakeEnv,
) -> None:
    from framework.runtime.replay import export_instance, replay_export

    env = await make_env({"waits_workflow.py": WAITS.replace('"1 hour"', '"2 hours"')})
    instance = await env.start("waits", "event", id="w-1")
    await env.wait_for(instance, "waiting")
    exported = await export_instance(env.app, "w-1")
    exported["instance"]["created_at"] -= 86400.0  # exported a day later: past its deadline

    report = await replay_export(env.app, exported)

    assert report.ok and report.stopped_at == "approval (waiting)"
    assert _module(env, "waits").LOG == []  # no compensation ran in the replay
