"""Awaiting many instances at once: their rows are read together, one query a round, so a
thousand ``result()`` calls do not take every pooled connection from the worker's commits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from framework import InstanceNotFoundError
from framework.runtime import row_reads
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


GATED = """
from framework import workflow, WorkflowContext

async def twice(n: int) -> int:
    return 2 * n

@workflow
async def gated(ctx: WorkflowContext[int]) -> int:
    await ctx.step.wait_for_event("go", type="go", timeout="1 hour")
    if ctx.params < 0:
        raise ValueError("a negative number")
    return await ctx.step.do("twice", twice, ctx.params)
"""


@pytest.mark.parametrize("params", [21, -1], ids=["complete", "errored"])
async def test_an_instance_ended_by_a_worker_of_this_process_is_read_once(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, params: int
) -> None:
    """The worker's ending commit tells ``outcome()`` the status, output and error it stored:
    the only read is the one before the wait."""
    app = App(write_app(tmp_path, {"gated_workflow.py": GATED}), database=database_url)
    previous = app.install()
    try:
        async with Worker(app):
            instance = await app.handle("gated").create(params, id="g")
            for _ in range(6000):  # up to 60 s
                if (await instance.status()).status == "waiting":
                    break
                await asyncio.sleep(0.01)
            store = await app.store()
            reads: list[list[str]] = []
            read_many = store.get_instances

            async def counted(ids: Sequence[str]) -> list[InstanceRow]:
                reads.append(list(ids))
                return await read_many(ids)

            monkeypatch.setattr(store, "get_instances", counted)
            outcome = asyncio.ensure_future(instance.outcome(timeout=60))
            for _ in range(6000):
                if reads:
                    break
                await asyncio.sleep(0.01)
            await instance.send_event("go")
            ended = await outcome
            assert reads == [["g"]]
        status = await instance.status()
        if params > 0:
            assert ended and ended.output == status.output == 42
        else:
            assert not ended and ended.error == status.error
            assert status.error is not None and "a negative number" in status.error.message
    finally:
        await app.close()
        app.uninstall(previous)


async def test_the_first_read_of_a_wait_beside_a_worker_is_not_held_back(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rounds of polls stay ROUND_GAP apart; a wait's first read starts one at once, so
    # instances created and awaited one after another never wait out the gap (10 s here).
    monkeypatch.setattr(row_reads, "ROUND_GAP", 10.0)
    app = App(write_app(tmp_path, {"double_workflow.py": DOUBLE}), database=database_url)
    previous = app.install()
    try:
        handle = app.handle("double")
        async with Worker(app):
            for n in range(3):
                instance = await handle.create(n)
                assert await asyncio.wait_for(instance.result(), timeout=5) == 2 * n
    finally:
        await app.close()
        app.uninstall(previous)
