"""Tests of the example app's workflows with fw's pytest plugin (the ``fw_env`` fixture):
a temporary store, an in-process worker, a clock that skips the 1-minute cool-off and the
7-day approval timeout, and injected step failures."""

from __future__ import annotations

import pytest

from example_app.services import CALLS
from framework import InstanceFailedError, UnknownEventTypeError
from framework.testing import WorkflowTestEnv


async def test_an_approved_order_ships(fw_env: WorkflowTestEnv) -> None:
    order = await fw_env.start("order-pipeline", {"order_id": "o-1", "amount": 4200}, id="o-1")
    await order.send_event("approval", {"approved": True, "by": "ada"})

    result = await order.result(timeout=30)

    assert (result.receipt_id, result.approved, result.shipped) == ("rcpt-o-1", True, True)


async def test_an_order_nobody_approves_is_refunded_after_seven_days(
    fw_env: WorkflowTestEnv,
) -> None:
    result = await fw_env.run("order-pipeline", {"order_id": "o-2", "amount": 100})

    assert (result.approved, result.shipped) == (False, False)
    assert "refund rcpt-o-2 100" in CALLS


async def test_a_flaky_charge_is_retried_with_the_same_idempotency_key(
    fw_env: WorkflowTestEnv,
) -> None:
    fw_env.fail_step("charge", times=2)
    order = await fw_env.start("order-pipeline", {"order_id": "o-3", "amount": 7}, id="o-3")
    await order.send_event("approval", {"approved": True})

    await order.result(timeout=30)

    charge = next(s for s in await order.steps() if s.name == "charge")
    assert charge.attempts == 3
    assert charge.output["idempotency_key"] == "o-3:charge:1"


async def test_a_declined_card_releases_the_stock_and_tells_support(
    fw_env: WorkflowTestEnv,
) -> None:
    order = await fw_env.start("order-pipeline", {"order_id": "o-4", "amount": 5_000_000}, id="o-4")

    with pytest.raises(InstanceFailedError, match="over the card's limit"):
        await order.result(timeout=30)

    assert any(call.startswith("release res-o-4:reserve-stock:1") for call in CALLS)
    assert "support: order o-4 failed at charge: amount 5000000 is over the card's limit" in CALLS


async def test_image_batch_fans_out_to_children(fw_env: WorkflowTestEnv) -> None:
    result = await fw_env.run("image-batch", {"urls": ["a.png", "b.png", "c.png"], "width": 64})

    assert result["thumbnails"] == ["a.png?w=64", "b.png?w=64", "c.png?w=64"]
    assert set(result["tags"]) == {"a.png", "b.png", "c.png"}


async def test_migration_in_class_form(fw_env: WorkflowTestEnv) -> None:
    result = await fw_env.run("migration", {"source_id": "legacy", "batches": 4})

    assert result.migrated == 40


async def test_refund_with_typeddict_params(fw_env: WorkflowTestEnv) -> None:
    assert await fw_env.run("refund", {"receipt_id": "rcpt-9", "amount": 5}) == "refund-rcpt-9"


async def test_an_unrelated_event_leaves_the_order_waiting(fw_env: WorkflowTestEnv) -> None:
    order = await fw_env.start("order-pipeline", {"order_id": "o-4", "amount": 100})
    await fw_env.wait_for(order, "waiting")  # in its 1-minute cool-off
    fw_env.advance("1 minute")
    await fw_env.idle()  # the cool-off is over: it waits for approval

    with pytest.raises(UnknownEventTypeError, match="never waits for an event of type"):
        await order.send_event("newsletter", {})  # refused: order-pipeline never waits for it
    await fw_env.idle()

    last = (await order.steps())[-1]
    assert (await order.status()).status == "waiting"
    assert (last.name, last.status) == ("await-approval", "waiting")
