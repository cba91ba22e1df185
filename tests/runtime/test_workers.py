"""The worker registry: every worker registers itself, shows what it holds, and leaves when
it stops; a worker whose liveness lock is free is dead, and its instances are taken over."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import psycopg
import pytest

from framework.runtime.app import App
from framework.runtime.liveness import CONFIRM_AFTER, Liveness, worker_statuses
from framework.runtime.worker import Worker
from framework.store import open_store
from framework.store.base import NewInstance
from framework.store.postgres import PostgresStore
from framework.store.workers import WorkerInfo
from tests.apps import write_app
from tests.registrant import Registered

SLOW = """
import asyncio
from framework import workflow, WorkflowContext

async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds

@workflow
async def slow(ctx: WorkflowContext[float]) -> float:
    return await ctx.step.do("nap", nap, ctx.params)
"""


async def test_workers_register_show_what_they_hold_and_leave(
    tmp_path: Path, database_url: str
) -> None:
    root = write_app(tmp_path, {"slow_workflow.py": SLOW})
    app = App(root, database=database_url)
    previous = app.install()
    try:
        first = Worker(app, concurrency=3, shutdown_grace=0)
        second = Worker(app, concurrency=2, shutdown_grace=0)
        async with first, second:
            statuses = {w.id: w for w in await worker_statuses(app)}
            assert set(statuses) == {first.id, second.id}
            assert all(w.state == "alive" for w in statuses.values())
            assert statuses[first.id].concurrency == 3
            assert len(statuses[first.id].code_version) == 12
            instance = await app.handle("slow").create(30.0, id="held-1")
            deadline = time.monotonic() + 10
            while not any("held-1" in w.instances for w in await worker_statuses(app)):
                assert time.monotonic() < deadline, "no worker shows held-1"
                await asyncio.sleep(0.05)
            assert (await instance.status()).status == "running"
        assert await worker_statuses(app) == []  # both deregistered; held-1 was released
    finally:
        app.uninstall(previous)
        await app.close()


async def test_a_worker_whose_lock_is_free_is_dead_and_its_instances_due_now(
    tmp_path: Path, database_url: str
) -> None:
    """A worker's store closing without deregistering lets its lock go, as its death does."""
    now = time.time()
    gone = open_store(database_url)
    await gone.open()
    watcher = open_store(database_url)
    await watcher.open()
    try:
        await gone.create_instances([NewInstance("orphan", "wf", "{}", now)])
        info = WorkerInfo("host:1:gone", socket.gethostname(), 1, "0", "abc", 5, now)
        await gone.register_worker(info)
        [claim] = await gone.claim("host:1:gone", 1, now, now + 600)
        [row] = await watcher.list_workers()
        assert row.liveness == "alive" and row.state(now, 30) == "alive"
        await gone.close()  # the lock goes with the store (or the process)
        deadline = time.monotonic() + 10  # a PostgreSQL backend ends a moment after its client
        while (row := (await watcher.list_workers())[0]).liveness == "alive":
            assert time.monotonic() < deadline, "the lock of a closed store is still held"
            await asyncio.sleep(0.02)
        assert row.held == ("orphan",)
        assert row.liveness == "dead" and row.state(now, 30) == "dead"
        assert await watcher.reclaim_worker("host:1:gone", now + 1) == 1
        [claim] = await watcher.claim("host:2:live", 1, now + 1, now + 600)
        assert claim.instance.id == "orphan" and claim.crashed
        [row] = await watcher.list_workers()
        assert row.dead_at == now + 1 and row.state(now + 1, 30) == "dead"
        assert await watcher.forget_workers(now + 2) == 1
        assert await watcher.list_workers() == []
    finally:
        await watcher.close()
        await gone.close()


@pytest.mark.slow
async def test_a_running_worker_takes_over_a_dead_workers_instances(
    tmp_path: Path, database_url: str
) -> None:
    """A worker that died holding an instance under a 10-minute lease: a live worker sees its
    lock free and runs the instance within seconds."""
    root = write_app(tmp_path, {"slow_workflow.py": SLOW})
    app = App(root, database=database_url)
    previous = app.install()
    gone = open_store(database_url)
    await gone.open()
    try:
        instance = await app.handle("slow").create(0.0, id="orphan")
        now = time.time()
        info = WorkerInfo("h:1:gone", socket.gethostname(), 1, "0", "v", 1, now)
        await gone.register_worker(info)
        [claim] = await gone.claim("h:1:gone", 1, now, now + 600)
        assert claim.instance.id == "orphan"
        await gone.close()  # it dies holding the instance
        async with Worker(app, shutdown_grace=0):
            assert await instance.result(timeout=20) == 0.0
            [row] = [w for w in await worker_statuses(app) if w.id == "h:1:gone"]
            assert row.state == "dead" and row.dead_at is not None
        status = await instance.status()
        assert status.status == "complete"
    finally:
        app.uninstall(previous)
        await app.close()
        await gone.close()


async def test_after_a_database_restart_free_locks_are_believed_only_a_lease_later(
    tmp_path: Path, postgres_url: str
) -> None:
    """A server restart frees every liveness lock at once, and a live worker may need
    seconds to take its own back: a worker that lost its own lock takes nothing over for a
    lease (a worker that is really dead is taken over after it)."""
    root = write_app(tmp_path, {"slow_workflow.py": SLOW})
    app = App(root, database=postgres_url)
    gone, store = open_store(postgres_url), open_store(postgres_url)
    await gone.open()
    await store.open()
    try:
        now = time.time()
        await gone.create_instances([NewInstance("orphan", "slow", "0", now)])
        await gone.register_worker(WorkerInfo("h:1:gone", "h", 1, "0", "v", 1, now))
        assert len(await gone.claim("h:1:gone", 1, now, now + 600)) == 1
        watcher = Liveness(Registered("h:2:watcher", app, lease=2.0), store)
        await watcher.register()
        assert isinstance(store, PostgresStore)
        own = store._liveness["h:2:watcher"][0].info.backend_pid
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as c:
            await c.execute("SELECT pg_terminate_backend(%s)", [own])
        await gone.close()  # both locks are free, as after a restart; only one comes back
        lost_at = time.monotonic()
        await watcher.keep_lock()
        while not (dead := await watcher.take_over_dead_workers()):
            assert time.monotonic() - lost_at < 10, "the dead worker was never taken over"
            await asyncio.sleep(0.05)
        assert dead == ["h:1:gone"]
        assert time.monotonic() - lost_at >= 2.0 + CONFIRM_AFTER
    finally:
        await store.close()
        await gone.close()
        await app.close()
