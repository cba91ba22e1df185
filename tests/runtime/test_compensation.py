"""define_step with validated args and returns, rollbacks in reverse order, on_failure."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from framework import InstanceFailedError
from tests.runtime.conftest import MakeEnv

SAGA = """
from pydantic import BaseModel
from framework import workflow, WorkflowContext, define_step, StepContext, RollbackContext, CompensationContext

LOG: list[str] = []

class Reservation(BaseModel):
    id: str
    seats: int

async def reserve(ctx: StepContext, flight: str, seats: int) -> Reservation:
    LOG.append(f"reserve {flight} x{seats} attempt {ctx.attempt}")
    return Reservation(id=f"res-{flight}", seats=seats)

async def cancel(ctx: RollbackContext) -> None:
    assert isinstance(ctx.output, Reservation)
    LOG.append(f"cancel {ctx.args['flight']} {ctx.output.id} because {ctx.error.name}")

async def pay(ctx: StepContext, amount: int) -> str:
    LOG.append(f"pay {amount}")
    if amount > 100:
        raise ValueError("insufficient funds")
    return "paid"

async def refund(ctx: RollbackContext) -> None:
    LOG.append("refund")

reserve_flight = define_step("reserve-flight", handler=reserve, rollback=cancel)
take_payment = define_step("take-payment", handler=pay, rollback=refund, retries=None)

async def compensate(ctx: CompensationContext) -> None:
    LOG.append(f"on_failure {ctx.failed_step} {ctx.error.message} {sorted(ctx.step_outputs)} {ctx.params}")

@workflow(on_failure=compensate)
async def trip(ctx: WorkflowContext[dict[str, int]]) -> list[str]:
    await ctx.run_step(reserve_flight, {"flight": "out", "seats": 2})
    await ctx.step.sleep("think", "1 day")
    await ctx.run_step(reserve_flight, {"flight": "back", "seats": "2"})
    await ctx.run_step(take_payment, {"amount": ctx.params["amount"]})
    return list(LOG)
"""

SETTINGS = '[defaults.retries]\nlimit = 1\ndelay = "1 second"\n'


async def test_a_completed_saga_runs_no_rollback(make_env: MakeEnv) -> None:
    env = await make_env({"trip_workflow.py": SAGA}, settings=SETTINGS)

    log = await env.run("trip", {"amount": 50})

    assert log == ["reserve out x2 attempt 1", "reserve back x2 attempt 1", "pay 50"]


async def test_failure_rolls_back_completed_steps_in_reverse_then_calls_on_failure(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"trip_workflow.py": SAGA}, settings=SETTINGS)
    instance = await env.start("trip", {"amount": 500})

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    module = env.app.definition("trip").target.__module__
    import sys

    log = sys.modules[module].LOG
    assert log == [
        "reserve out x2 attempt 1",
        "reserve back x2 attempt 1",
        "pay 500",
        "pay 500",
        "cancel back res-back because ValueError",
        "cancel out res-out because ValueError",
        "on_failure take-payment insufficient funds ['reserve-flight'] {'amount': 500}",
    ]
    steps = await instance.steps()
    assert [(s.name, s.kind, s.status) for s in steps][-3:] == [
        ("rollback:reserve-flight", "rollback", "complete"),
        ("rollback:reserve-flight", "rollback", "complete"),
        ("on-failure", "rollback", "complete"),
    ]
    assert steps[0].input == {"flight": "out", "seats": 2}
    status = await instance.status()
    assert status.error is not None and status.error.step == "take-payment"


BAD_ARGS = """
from framework import workflow, WorkflowContext, define_step, StepContext

async def add(ctx: StepContext, a: int, b: int) -> int:
    return a + b

adder = define_step("add", handler=add)

@workflow
async def badargs(ctx: WorkflowContext[None]) -> int:
    return await ctx.run_step(adder, {"a": 1, "b": "not a number"})
"""


async def test_invalid_step_args_raise_before_the_step_runs(make_env: MakeEnv) -> None:
    env = await make_env({"badargs_workflow.py": BAD_ARGS})
    instance = await env.start("badargs")

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=20)

    status = await instance.status()
    assert status.error is not None and status.error.name == "ValidationError"
    assert await instance.steps() == []
    assert ValidationError  # the error class users catch
