"""Awaiting many instances at once: their rows are read together, one query a round, so a
thousand ``result()`` calls do not take every pooled connection from the worker's commits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from framework import InstanceNotFoundError
from framework.runtime.app import App
from framework.runtime.worker import Worker
from framework.store.base import InstanceRow
from tests.apps import write_app

DOUBLE = """
from framework import workflow, WorkflowContext

async def twice(n: int) -> int:
    return 2 * n

@workflow
async def double(ctx: WorkflowContext[int]) -> int:
    return await ctx.step.do("twice", twice, ctx.params)
"""


async def test_many_awaited_instances_are_read_in_one_query_a_round(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App(write_app(tmp_path, {"double_workflow.py": DOUBLE}), database=database_url)
    previous = app.install()
    try:
        handle = app.handle("double")
        instances = await handle.create_batch([{"params": n, "id": f"d{n}"} for n in range(300)])
        store = await app.store()
        batches: list[int] = []
        read_many, read_one = store.get_instances, store.get_instance

        async def counted(ids: Sequence[str]) -> list[InstanceRow]:
            batches.append(len(ids))
            return await read_many(ids)

        async def single(instance_id: str) -> InstanceRow | None:
            batches.append(-1)  # a read of its own: not gathered
            return await read_one(instance_id)

        monkeypatch.setattr(store, "get_instances", counted)
        monkeypatch.setattr(store, "get_instance", single)
        waits = asyncio.gather(*(i.result(timeout=60) for i in instances))
        while len(batches) < 3:  # a few rounds with no worker: all 300 are polled
            await asyncio.sleep(0.01)
        async with Worker(app):
            outputs = await waits
        assert outputs == [2 * n for n in range(300)]
        assert -1 not in batches
        assert batches[0] == 300, batches[:5]
        assert sum(batches) / len(batches) > 10, batches  # gathered, not one query per wait
    finally:
        await app.close()
        app.uninstall(previous)


async def test_awaiting_an_instance_that_is_gone_still_says_so(
    tmp_path: Path, database_url: str
) -> None:
    app = App(write_app(tmp_path, {"double_workflow.py": DOUBLE}), database=database_url)
    previous = app.install()
    try:
        handle = app.handle("double")
        gone = await handle.create(1, id="gone")
        store = await app.store()
        assert await store.prune(["queued"], before=float("inf"), batch=10) == 1
        with pytest.raises(InstanceNotFoundError, match="gone"):
            await gone.result(timeout=5)
    finally:
        await app.close()
        app.uninstall(previous)
