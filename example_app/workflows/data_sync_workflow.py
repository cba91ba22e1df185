"""A nightly sync: sleep until a time, then sync each table; shows ctx.patched for a change
made while instances were in flight."""

from __future__ import annotations

from datetime import timedelta

from example_app.services import CALLS
from framework import WorkflowContext, workflow


def sync_table(table: str) -> int:
    CALLS.append(f"sync {table}")
    return len(table)


def verify(total: int) -> bool:
    return total > 0


@workflow
async def data_sync(ctx: WorkflowContext[list[str]]) -> dict[str, int]:
    await ctx.step.sleep_until("start-window", ctx.event.timestamp + timedelta(seconds=1))
    synced = {table: await ctx.step.do("sync-table", sync_table, table) for table in ctx.params}
    if ctx.patched("verify-totals"):
        await ctx.step.do("verify", verify, sum(synced.values()))
    return synced
