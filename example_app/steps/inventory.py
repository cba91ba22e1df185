"""Reusable steps with rollbacks: reserve stock, and release it if the order fails later."""

from __future__ import annotations

from pydantic import BaseModel

from example_app.services import CALLS
from framework import Retries, RollbackContext, StepContext, define_step


class Reservation(BaseModel):
    reservation_id: str
    sku: str
    quantity: int


async def reserve(ctx: StepContext, sku: str, quantity: int) -> Reservation:
    """Hold ``quantity`` of ``sku`` for an order."""
    CALLS.append(f"reserve {sku} x{quantity}")
    ctx.log.info("reserved", sku=sku, quantity=quantity)
    return Reservation(reservation_id=f"res-{ctx.idempotency_key}", sku=sku, quantity=quantity)


async def release(ctx: RollbackContext) -> None:
    """Undo ``reserve`` when the workflow fails after it."""
    CALLS.append(f"release {ctx.output.reservation_id} because {ctx.error.name}")


reserve_stock = define_step(
    "reserve-stock", handler=reserve, rollback=release, retries=Retries(limit=3, delay="1 second")
)
