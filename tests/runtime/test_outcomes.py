"""``inst.outcome()``: how an instance ended, as a value (``Success`` / ``Failure``) instead of
an exception; ``result()`` keeps raising."""

from __future__ import annotations

import asyncio

import pytest

from framework import Failure, InstanceFailedError, ResultTimeoutError, Success
from tests.runtime.conftest import MakeEnv

CHECKOUT = """
from pydantic import BaseModel
from framework import workflow, WorkflowContext, Retries

class Receipt(BaseModel):
    number: str

def charge(amount: int) -> Receipt:
    if amount > 100:
        raise ConnectionError("card declined")
    return Receipt(number=f"r-{amount}")

@workflow
async def checkout(ctx: WorkflowContext[int]) -> Receipt:
    await ctx.step.do("load", lambda: ctx.params)
    if ctx.params == 0:
        await ctx.step.wait_for_event("approval", type="approval")
    return await ctx.step.do(
        "charge", charge, ctx.params, retries=Retries(limit=2, delay="1 second")
    )
"""


async def test_a_completed_instance_is_a_success_with_its_typed_output(make_env: MakeEnv) -> None:
    env = await make_env({"checkout_workflow.py": CHECKOUT})
    instance = await env.start("checkout", 42)

    outcome = await instance.outcome(timeout=30)

    assert isinstance(outcome, Success) and outcome
    assert outcome.ok is True and outcome.instance_id == instance.id
    assert type(outcome.output).__name__ == "Receipt" and outcome.output.number == "r-42"


async def test_a_failed_instance_is_a_failure_naming_its_step_attempts_and_journal(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"checkout_workflow.py": CHECKOUT})
    instance = await env.start("checkout", 500)

    outcome = await instance.outcome(timeout=30)

    assert isinstance(outcome, Failure) and not outcome
    assert (outcome.ok, outcome.status, outcome.failed_step, outcome.attempts) == (
        False,
        "errored",
        "charge",
        3,
    )
    assert (outcome.error.name, outcome.error.message) == ("ConnectionError", "card declined")
    assert [(s.name, s.status) for s in outcome.steps] == [
        ("load", "complete"),
        ("charge", "errored"),
    ]
    with pytest.raises(InstanceFailedError):  # result() keeps raising
        await instance.result(timeout=5)


async def test_a_terminated_instance_is_a_failure_too(make_env: MakeEnv) -> None:
    env = await make_env({"checkout_workflow.py": CHECKOUT})
    instance = await env.start("checkout", 0)
    await env.wait_for(instance, "waiting")
    with pytest.raises(ResultTimeoutError):  # not ended: no outcome yet
        await instance.outcome(timeout=0.05)

    await instance.terminate()
    outcome = await instance.outcome(timeout=30)

    assert isinstance(outcome, Failure)
    assert (outcome.status, outcome.error.name, outcome.failed_step) == (
        "terminated",
        "InstanceTerminatedError",
        None,
    )
    assert [s.name for s in outcome.steps] == ["load", "approval"]


async def test_the_sync_facade_gives_the_same_outcome(make_env: MakeEnv) -> None:
    env = await make_env({"checkout_workflow.py": CHECKOUT})
    instance = await env.start("checkout", 500)
    await instance.outcome(timeout=30)

    outcome = await asyncio.to_thread(instance.sync.outcome, 5)

    assert isinstance(outcome, Failure) and outcome.failed_step == "charge"
