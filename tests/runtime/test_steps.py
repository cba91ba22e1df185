"""step.do: sync and async functions, typed results on replay, retries, timeouts, keys."""

from __future__ import annotations

import itertools

import pytest

from framework import InstanceFailedError, StepError
from framework.runtime.retries import Retries, RetryPolicy
from tests.runtime.conftest import MakeEnv

TYPED = """
from dataclasses import dataclass
from pydantic import BaseModel
from framework import workflow, WorkflowContext

class Order(BaseModel):
    id: str
    amount: int

@dataclass
class Receipt:
    number: str

RUNS: dict[str, int] = {}

def load(order_id: str) -> Order:
    RUNS["load"] = RUNS.get("load", 0) + 1
    return Order(id=order_id, amount=42)

async def charge(order: Order) -> Receipt:
    RUNS["charge"] = RUNS.get("charge", 0) + 1
    return Receipt(number=f"r-{order.id}")

@workflow
async def typed(ctx: WorkflowContext[dict[str, str]]) -> dict[str, object]:
    order = await ctx.step.do("load", load, ctx.params["id"])
    await ctx.step.sleep("pause", "1 hour")
    receipt = await ctx.step.do("charge", charge, order)
    assert isinstance(order, Order) and isinstance(receipt, Receipt)
    return {"order": order.model_dump(), "receipt": receipt.number, "runs": dict(RUNS)}
"""


async def test_sync_and_async_steps_return_typed_values_after_replay(make_env: MakeEnv) -> None:
    env = await make_env({"typed_workflow.py": TYPED})

    output = await env.run("typed", {"id": "o-1"})

    assert output == {
        "order": {"id": "o-1", "amount": 42},
        "receipt": "r-o-1",
        "runs": {"load": 1, "charge": 1},
    }
    steps = await (await env.get("typed").get(await _only_id(env, "typed"))).steps()
    assert [(s.name, s.kind, s.status) for s in steps] == [
        ("load", "do", "complete"),
        ("pause", "sleep", "complete"),
        ("charge", "do", "complete"),
    ]


RETRIES = """
from framework import workflow, WorkflowContext, Retries, NonRetryableError, StepError

ATTEMPTS: dict[str, list[str]] = {}

def flaky(name: str, fail_times: int, key: str) -> str:
    seen = ATTEMPTS.setdefault(name, [])
    seen.append(key)
    if len(seen) <= fail_times:
        raise ConnectionError(f"{name} attempt {len(seen)} failed")
    return f"{name} ok after {len(seen)}"

def fatal() -> None:
    raise NonRetryableError("card stolen")

@workflow
async def retrying(ctx: WorkflowContext[dict[str, int]]) -> dict[str, object]:
    fast = Retries(limit=3, delay="1 second", backoff="constant")
    result = await ctx.step.do(
        "flaky", lambda: flaky("flaky", ctx.params["fail"], ctx.step.idempotency_key), retries=fast
    )
    try:
        await ctx.step.do("fatal", fatal, retries=fast)
    except StepError as exc:
        caught = f"{exc.step}: {exc.error_type}: {exc.error_message} ({exc.attempts})"
    return {"result": result, "caught": caught, "keys": sorted(set(ATTEMPTS["flaky"]))}
"""


async def test_retries_then_success_and_non_retryable_error_is_caught(make_env: MakeEnv) -> None:
    env = await make_env({"retrying_workflow.py": RETRIES})
    instance = await env.start("retrying", {"fail": 2}, id="r-1")

    output = await instance.result(timeout=30)

    assert output == {
        "result": "flaky ok after 3",
        "caught": "fatal: NonRetryableError: card stolen (1)",
        "keys": ["r-1:flaky:1"],
    }
    flaky, fatal = await instance.steps()
    assert (flaky.status, flaky.attempts) == ("complete", 3)
    assert (fatal.status, fatal.attempts, fatal.error and fatal.error.name) == (
        "errored",
        1,
        "NonRetryableError",
    )


async def test_exhausted_retries_fail_the_instance_with_the_step_named(make_env: MakeEnv) -> None:
    env = await make_env({"retrying_workflow.py": RETRIES})
    instance = await env.start("retrying", {"fail": 10})

    with pytest.raises(InstanceFailedError) as failure:
        await instance.result(timeout=30)

    status = await instance.status()
    assert status.status == "errored"
    assert status.error is not None
    assert (status.error.name, status.error.step) == ("ConnectionError", "flaky")
    assert "flaky attempt 4 failed" in status.error.message
    assert "flaky" in str(failure.value)


NOT_RETRYABLE = """
from framework import workflow, WorkflowContext, Retries, StepError

class Declined(Exception):
    retryable = False

class Unreadable(Exception):
    @property
    def retryable(self) -> bool:
        raise RuntimeError("no")

def declined() -> None:
    raise Declined("card declined")

def marked() -> None:
    error = ValueError("bad input")
    error.retryable = False  # type: ignore[attr-defined]
    raise error

def unreadable() -> None:
    raise Unreadable("odd")

def flaky() -> None:
    raise ConnectionError("down")

def not_false() -> None:
    error = ValueError("zero is not False")
    error.retryable = 0  # type: ignore[attr-defined]
    raise error

@workflow
async def policies(ctx: WorkflowContext[bool]) -> dict[str, object]:
    caught: dict[str, object] = {}
    for name, fn in [("declined", declined), ("marked", marked), ("unreadable", unreadable),
                     ("not_false", not_false), ("flaky", flaky)]:
        try:
            await ctx.step.do(name, fn, retries=Retries(limit=2, delay=0))
        except StepError as exc:
            caught[name] = [exc.attempts, exc.retryable]
    if ctx.params:
        await ctx.step.do("last", declined)
    return caught
"""


async def test_an_exception_whose_retryable_is_false_is_not_retried(make_env: MakeEnv) -> None:
    env = await make_env({"policies_workflow.py": NOT_RETRYABLE})
    caught = await env.start("policies", False)
    failed = await env.start("policies", True)

    assert await caught.result(timeout=30) == {
        "declined": [1, False],
        "marked": [1, False],
        "unreadable": [3, True],
        "not_false": [3, True],
        "flaky": [3, True],
    }
    with pytest.raises(InstanceFailedError):
        await failed.result(timeout=30)
    steps = {step.name: step for step in await failed.steps()}
    assert {name: (s.attempts, s.error and s.error.retryable) for name, s in steps.items()} == {
        "declined": (1, False),
        "marked": (1, False),
        "unreadable": (3, True),
        "not_false": (3, True),
        "flaky": (3, True),
        "last": (1, False),
    }
    status = await failed.status()
    assert status.error is not None
    assert (status.error.name, status.error.step, status.error.retryable) == (
        "Declined",
        "last",
        False,
    )


TIMEOUTS = """
import asyncio
from framework import workflow, WorkflowContext, Retries, StepError

async def slow() -> str:
    await asyncio.sleep(5)
    return "never"

@workflow
async def timeouts(ctx: WorkflowContext[None]) -> str:
    try:
        return await ctx.step.do("slow", slow, timeout="100 ms", retries=Retries(limit=1, delay=0))
    except StepError as exc:
        return f"{exc.error_type} after {exc.attempts}"
"""


async def test_step_timeout_is_retried_then_raised(make_env: MakeEnv) -> None:
    env = await make_env({"timeouts_workflow.py": TIMEOUTS})

    assert await env.run("timeouts") == "StepTimeoutError after 2"


DEFAULTS = """
from framework import workflow, WorkflowContext

COUNT = {"n": 0}

def always_fails() -> None:
    COUNT["n"] += 1
    raise RuntimeError(f"attempt {COUNT['n']}")

@workflow
async def defaults(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("fails", always_fails)
"""


async def test_retry_defaults_come_from_fw_toml(make_env: MakeEnv) -> None:
    env = await make_env(
        {"defaults_workflow.py": DEFAULTS},
        settings='[defaults.retries]\nlimit = 2\ndelay = "1 minute"\nbackoff = "linear"\n',
    )
    instance = await env.start("defaults")

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    (step,) = await instance.steps()
    assert step.attempts == 3


def test_backoff_policies() -> None:
    default = RetryPolicy(limit=5, delay=10.0, backoff="exponential", max_delay=None)
    exponential = RetryPolicy.resolve(Retries(delay="2 seconds", max_delay="10 s"), default)
    linear = RetryPolicy.resolve(Retries(backoff="linear", delay=3), default)
    constant = RetryPolicy.resolve(Retries(backoff="constant"), default)

    assert [exponential.delay_before_retry(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 10]
    assert [linear.delay_before_retry(n) for n in (1, 2, 3)] == [3, 6, 9]
    assert [constant.delay_before_retry(n) for n in (1, 5)] == [10, 10]
    assert exponential.limit == 5


UNSERIALIZABLE = """
from framework import workflow, WorkflowContext

class Handle:
    pass

def open_handle() -> object:
    return Handle()

@workflow
async def leaky(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("open", open_handle)
"""


async def test_a_step_returning_an_unserializable_value_fails_clearly(make_env: MakeEnv) -> None:
    env = await make_env({"leaky_workflow.py": UNSERIALIZABLE})
    instance = await env.start("leaky", id="leak-1")

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    status = await instance.status()
    assert status.error is not None
    assert status.error.name == "SerializationError"
    assert "step 'open' of instance 'leak-1'" in status.error.message
    (step,) = await instance.steps()
    assert step.attempts == 1


async def _only_id(env: object, name: str) -> str:
    from framework.testing import WorkflowTestEnv

    assert isinstance(env, WorkflowTestEnv)
    page = await env.get(name).list()
    (status,) = page.instances
    return status.id


def test_step_error_message_names_step_and_attempts() -> None:
    error = StepError("charge", "ValueError", "bad card", 3)
    assert str(error) == "step 'charge' failed after 3 attempts: ValueError: bad card"


FACTOR = """
from framework import workflow, WorkflowContext, Retries

def flaky() -> str:
    raise ConnectionError("down")

@workflow
async def factored(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("flaky", flaky, retries=Retries(limit=3, delay="1 s", factor=3))
"""


async def test_exponential_retries_wait_by_their_factor(make_env: MakeEnv) -> None:
    env = await make_env({"factored_workflow.py": FACTOR})
    instance = await env.start("factored", None)

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    history = (await instance.steps())[0].attempt_history
    waits = [
        (later.started_at - earlier.finished_at).total_seconds()
        for earlier, later in itertools.pairwise(history)
        if later.started_at and earlier.finished_at
    ]
    assert [round(wait) for wait in waits] == [1, 3, 9]
