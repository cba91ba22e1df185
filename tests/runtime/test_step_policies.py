"""Per-call step policies: ``run_step(..., config=StepConfig(...))``, what a handler sees of
its effective config (``ctx.config``, ``ctx.step``), and rollbacks' own policy."""

from __future__ import annotations

import sys

from tests.runtime.conftest import MakeEnv

OVERRIDES = """
from framework import workflow, WorkflowContext, define_step, StepContext, StepConfig, Retries

SEEN: list[dict[str, object]] = []

async def flaky(ctx: StepContext, fail_until: int) -> int:
    assert ctx.config.retries is not None
    SEEN.append({
        "step": [ctx.step.name, ctx.step.count],
        "attempt": ctx.attempt,
        "limit": ctx.config.retries.limit,
        "delay": ctx.config.retries.delay,
        "backoff": ctx.config.retries.backoff,
        "timeout": ctx.config.timeout,
    })
    if ctx.attempt < fail_until:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return ctx.attempt

once = define_step("once", handler=flaky, retries=Retries(limit=0, delay="3 seconds"), timeout="5 s")

@workflow
async def overrides(ctx: WorkflowContext[None]) -> dict[str, object]:
    plain = await ctx.run_step(once, {"fail_until": 1})
    retried = await ctx.run_step(
        once, {"fail_until": 3}, config=StepConfig(retries=Retries(limit=2), timeout="1 minute")
    )
    try:
        await ctx.run_step(once, {"fail_until": 2})
        third = "ran"
    except Exception as exc:
        third = type(exc).__name__
    return {"plain": plain, "retried": retried, "third": third, "seen": SEEN}
"""


async def test_run_step_config_overrides_retries_and_timeout_for_one_call(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"overrides_workflow.py": OVERRIDES})

    output = await env.run("overrides")

    assert output["plain"] == 1
    assert output["retried"] == 3
    assert output["third"] == "StepError"  # the step's own limit of 0 again
    default = {"limit": 0, "delay": 3.0, "backoff": "exponential", "timeout": 5.0}
    override = {"limit": 2, "delay": 3.0, "backoff": "exponential", "timeout": 60.0}
    assert output["seen"] == [
        {"step": ["once", 1], "attempt": 1, **default},
        {"step": ["once", 2], "attempt": 1, **override},
        {"step": ["once", 2], "attempt": 2, **override},
        {"step": ["once", 2], "attempt": 3, **override},
        {"step": ["once", 3], "attempt": 1, **default},
    ]


ROLLBACKS = """
import asyncio
from framework import workflow, WorkflowContext, define_step, StepContext, RollbackContext, Retries

LOG: list[str] = []
ATTEMPTS = {"refund": 0, "release": 0}

async def charge(ctx: StepContext) -> str:
    return "charged"

async def refund(ctx: RollbackContext) -> None:
    ATTEMPTS["refund"] += 1
    if ATTEMPTS["refund"] < 3:
        raise RuntimeError("the bank is down")
    LOG.append(f"refunded after {ATTEMPTS['refund']}")

async def hold(ctx: StepContext) -> str:
    return "held"

async def release(ctx: RollbackContext) -> None:
    ATTEMPTS["release"] += 1
    await asyncio.sleep(5)

# The charge is never retried; its refund is, by its own policy.
charge_card = define_step(
    "charge", handler=charge, rollback=refund, retries=Retries(limit=0),
    rollback_retries=Retries(limit=3, delay="1 second", backoff="constant"),
)
# The hold may take long; its release may not.
hold_stock = define_step(
    "hold", handler=hold, rollback=release, timeout="1 minute",
    rollback_timeout="50 ms", rollback_retries=Retries(limit=1, delay=0),
)

@workflow
async def rollbacks(ctx: WorkflowContext[None]) -> None:
    await ctx.run_step(charge_card)
    await ctx.run_step(hold_stock)
    raise RuntimeError("out of stock")
"""


async def test_rollbacks_run_by_their_own_retries_and_timeout(make_env: MakeEnv) -> None:
    env = await make_env(
        {"rollbacks_workflow.py": ROLLBACKS}, settings="[defaults.retries]\nlimit = 0\n"
    )

    instance = await env.start("rollbacks")
    await env.wait_for(instance, "errored")

    module = env.app.definition("rollbacks").target.__module__
    assert sys.modules[module].LOG == ["refunded after 3"]
    assert sys.modules[module].ATTEMPTS == {"refund": 3, "release": 2}
    steps = {(s.name, s.kind): s for s in await instance.steps()}
    refund = steps[("rollback:charge", "rollback")]
    assert (refund.status, refund.attempts) == ("complete", 3)
    release = steps[("rollback:hold", "rollback")]
    assert (release.status, release.attempts) == ("errored", 2)
    assert release.error is not None and release.error.name == "StepTimeoutError"


KEYS = """
from framework import workflow, WorkflowContext, define_step, StepContext, Retries

KEYS: list[tuple[str, str]] = []
FAILED: list[bool] = []

def charge(ctx: WorkflowContext[dict[str, str]], fail: bool) -> str:
    KEYS.append(("charge", ctx.step.idempotency_key))
    if fail and not FAILED:
        FAILED.append(True)
        raise ConnectionError("the bank hung up")
    return "charged"

def receipt(ctx: WorkflowContext[dict[str, str]]) -> str:
    KEYS.append(("receipt", ctx.step.idempotency_key))
    return "sent"

async def ship(ctx: StepContext, parcel: str) -> str:
    KEYS.append(("ship", ctx.idempotency_key))
    return parcel

shipping = define_step("ship", handler=ship)

@workflow
async def keyed(ctx: WorkflowContext[dict[str, str]]) -> list[tuple[str, str]]:
    order = ctx.params["order"]
    await ctx.step.do(
        "charge", charge, ctx, order == "o-1", idempotency_key="charge:" + order,
        retries=Retries(limit=1, delay=0),
    )
    await ctx.step.do("receipt", receipt, ctx)
    await ctx.run_step(shipping, {"parcel": "p"}, idempotency_key="ship:" + order)
    return list(KEYS)
"""


async def test_a_callers_idempotency_key_is_seen_by_the_step_and_kept_hashed(
    make_env: MakeEnv,
) -> None:
    import hashlib

    env = await make_env({"keyed_workflow.py": KEYS})
    instance = await env.start("keyed", {"order": "o-1"}, id="k-1")

    assert await instance.result(timeout=30) == [
        ("charge", "charge:o-1"),  # the failed attempt
        ("charge", "charge:o-1"),  # its retry: the same key
        ("receipt", "k-1:receipt:1"),  # no key given: the derived one
        ("ship", "ship:o-1"),
    ]
    steps = {s.name: s for s in await instance.steps()}
    sha = hashlib.sha256(b"charge:o-1").hexdigest()
    assert (steps["charge"].attempts, steps["charge"].idempotency_key_sha256) == (2, sha)
    assert steps["receipt"].idempotency_key_sha256 is None
    assert steps["ship"].idempotency_key_sha256 == hashlib.sha256(b"ship:o-1").hexdigest()
    stored = (await (await env.app.store()).list_steps("k-1"))[0]
    assert "charge:o-1" not in (stored.detail or "")  # only its hash

    # After a restart the caller's keys stay as given; derived keys change.
    module = sys.modules[env.app.definition("keyed").target.__module__]
    module.KEYS.clear()
    await instance.restart(from_step="charge")
    assert await instance.result(timeout=30) == [
        ("charge", "charge:o-1"),
        ("receipt", "k-1:receipt:1:r1"),
        ("ship", "ship:o-1"),
    ]


BAD_KEY = """
from framework import workflow, WorkflowContext

@workflow
async def bad_key(ctx: WorkflowContext[None]) -> str:
    try:
        await ctx.step.do("charge", lambda: "x", idempotency_key="")
    except ValueError as exc:
        empty = str(exc)
    try:
        await ctx.step.do("charge", lambda: "x", idempotency_key=42)  # type: ignore[arg-type]
    except TypeError as exc:
        return empty + " / " + str(exc)
    return "accepted"
"""


async def test_an_idempotency_key_that_is_not_a_non_empty_str_is_refused(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"bad_key_workflow.py": BAD_KEY})

    output = await env.run("bad-key")

    assert output == (
        "step 'charge': idempotency_key is empty; pass a key or leave it out"
        " / step 'charge': idempotency_key must be a str, not int"
    )
