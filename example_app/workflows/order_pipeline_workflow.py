"""An order: reserve stock, charge the card, cool off, wait for approval, then ship.

Uses: step.do with retries and a timeout, a reusable step with a rollback (saga), a durable
sleep, an event with a timeout, an idempotency key, structured logs and on_failure.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from example_app.services import CALLS, PaymentDeclined, Receipt, charge_card, refund_card
from example_app.steps.inventory import reserve_stock
from framework import (
    CompensationContext,
    EventTimeoutError,
    NonRetryableError,
    Retries,
    WorkflowContext,
    workflow,
)


class OrderParams(BaseModel):
    order_id: str
    sku: str = "book-1"
    quantity: int = Field(default=1, ge=1)
    amount: int = Field(gt=0, description="The amount to charge, in cents.")
    cool_off: str = "1 minute"
    approval_timeout: str = "7 days"


class OrderResult(BaseModel):
    receipt_id: str
    approved: bool
    shipped: bool


class Approval(BaseModel):
    approved: bool
    by: str = "someone"


async def charge(order: OrderParams, idempotency_key: str) -> Receipt:
    try:
        return await charge_card(order.order_id, order.amount, idempotency_key)
    except PaymentDeclined as declined:
        raise NonRetryableError(str(declined)) from declined


def ship(order_id: str, sku: str) -> bool:
    CALLS.append(f"ship {order_id} {sku}")
    return True


async def notify_support(ctx: CompensationContext) -> None:
    CALLS.append(
        f"support: order {ctx.instance_id} failed at {ctx.failed_step}: {ctx.error.message}"
    )


@workflow(on_failure=notify_support)
async def order_pipeline(ctx: WorkflowContext[OrderParams]) -> OrderResult:
    order = ctx.params
    await ctx.run_step(reserve_stock, {"sku": order.sku, "quantity": order.quantity})
    receipt = await ctx.step.do(
        "charge",
        lambda: charge(order, ctx.step.idempotency_key),
        retries=Retries(limit=3, delay="2 seconds", backoff="exponential"),
        timeout="30 seconds",
    )
    ctx.log.info("charged", receipt=receipt.id, amount=receipt.amount)
    await ctx.step.sleep("cool-off", order.cool_off)
    try:
        approval = await ctx.step.wait_for_event(
            "await-approval", type="approval", timeout=order.approval_timeout, model=Approval
        )
    except EventTimeoutError:
        approval = Approval(approved=False, by="timeout")
    if not approval.approved:
        await ctx.step.do("refund", refund_card, receipt.id, receipt.amount)
        return OrderResult(receipt_id=receipt.id, approved=False, shipped=False)
    shipped = await ctx.step.do("ship", ship, order.order_id, order.sku)
    return OrderResult(receipt_id=receipt.id, approved=True, shipped=shipped)
