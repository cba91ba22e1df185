"""A refund, with its params a TypedDict and its output a plain string."""

from __future__ import annotations

from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from example_app.services import refund_card
from framework import WorkflowContext, workflow


class RefundParams(TypedDict):
    receipt_id: str
    amount: int


@workflow
async def refund(ctx: WorkflowContext[RefundParams]) -> str:
    return await ctx.step.do("refund", refund_card, ctx.params["receipt_id"], ctx.params["amount"])
