"""PostgreSQL failures while workers run: killed connections and a restarted server.

The store reconnects with backoff, logs what happened, and nothing is lost or repeated: every
step's side effect happens exactly once, because a journal write whose connection dropped is
replayed safely (it is fenced on the lease token) instead of being given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from framework.errors import LeaseLostError, StoreError
from framework.runtime.app import App
from framework.runtime.liveness import Liveness
from framework.store import open_store
from framework.store.base import NewInstance, StepRow, Transition
from framework.store.postgres import PostgresStore
from framework.store.workers import WorkerInfo
from framework.testing import workflow_test_env
from tests.apps import write_app
from tests.conftest import PG_SKIP_REASON, postgres_server_url
from tests.registrant import Registered
from tests.runtime.processes import start_worker, stop, wait_until_started
from tests.store.private_postgres import PrivatePostgres, private_postgres

EFFECTS = """
import asyncio, os
from framework import workflow, WorkflowContext

async def effect(instance: str, step: str, pause: float) -> str:
    with open(os.environ["FW_EFFECTS_LOG"], "a") as log:
        log.write(f"{instance} {step}\\n")
    await asyncio.sleep(pause)
    return step

@workflow
async def effects(ctx: WorkflowContext[float]) -> list[str]:
    done = []
    for n in range(5):
        done.append(await ctx.step.do(f"s{n}", effect, ctx.instance_id, f"s{n}", ctx.params))
    await ctx.step.sleep("nap", "100 ms")
    done.append(await ctx.step.do("last", effect, ctx.instance_id, "last", ctx.params))
    return done
"""
STEPS = ["s0", "s1", "s2", "s3", "s4", "last"]
T0 = 1_000_000.0

pytestmark = pytest.mark.skipif(postgres_server_url() is None, reason=PG_SKIP_REASON)


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as started:
        yield started


def effects_by_step(log: Path) -> Counter[tuple[str, str]]:
    return Counter(tuple(line.split()) for line in log.read_text().splitlines())  # type: ignore[misc]


async def terminate_backends(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def test_a_liveness_lock_taken_while_the_store_closes_leaves_no_connection(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker's watch left running past its stop (its connection was being killed) may still
    # be taking its lock again when the store closes: the connection it opens then goes too
    # (the fixture fails the test on any session left connected).
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    await store.open()
    connected = asyncio.Event()
    go_on = asyncio.Event()
    connect = store._db.connect

    async def late_connect(**kwargs: Any) -> Any:
        connection = await connect(**kwargs)
        connected.set()
        await go_on.wait()
        return connection

    monkeypatch.setattr(store._db, "connect", late_connect)
    taking = asyncio.create_task(store.ensure_worker_lock("h:1:late"))
    await connected.wait()
    await store.close()
    go_on.set()
    with pytest.raises(StoreError, match="closed"):
        await taking


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_killed_connections_during_a_run_lose_and_repeat_nothing(
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = tmp_path / "effects.log"
    monkeypatch.setenv("FW_EFFECTS_LOG", str(log))
    root = write_app(tmp_path, {"effects_workflow.py": EFFECTS})
    caplog.set_level(logging.INFO, logger="fw")
    kills = 0
    async with workflow_test_env(root, database=postgres_url, concurrency=20) as env:
        instances = [await env.start("effects", 0.05, id=f"k{n}") for n in range(60)]

        async def killer() -> None:
            nonlocal kills
            while True:
                await asyncio.sleep(0.1)
                kills += await terminate_backends(postgres_url)

        killing = asyncio.create_task(killer())
        try:
            outputs = await asyncio.wait_for(
                asyncio.gather(*(i.result(timeout=90) for i in instances)), 100
            )
        finally:
            killing.cancel()
    assert all(output == STEPS for output in outputs)
    assert kills >= 10, "the test killed too few connections to mean anything"
    runs = effects_by_step(log)
    assert set(runs) == {(f"k{n}", s) for n in range(60) for s in STEPS}
    assert set(runs.values()) == {1}, [k for k, v in runs.items() if v > 1]
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m or "reconnecting" in m for m in messages), messages[-20:]


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_database_outage_under_running_workers_loses_and_repeats_nothing(
    tmp_path: Path,
    server: PrivatePostgres,
) -> None:
    log = tmp_path / "effects.log"
    workers_log = tmp_path / "workers.log"
    url = f"{server.url}?retry_for=60"
    root = write_app(tmp_path, {"effects_workflow.py": EFFECTS})
    env = {"FW_EFFECTS_LOG": str(log), "FW_DATABASE_URL": url}
    os.environ["FW_DATABASE_URL"] = url
    try:
        app = App(root)
    finally:
        del os.environ["FW_DATABASE_URL"]
    app.install()
    handle = app.handle("effects")
    instances = [await handle.create(0.3, id=f"r{n}") for n in range(40)]
    workers = [start_worker(root, workers_log, env, concurrency=20) for _ in range(2)]
    try:
        for worker in workers:
            wait_until_started(worker, workers_log)
        while not log.exists() or len(log.read_text().splitlines()) < 60:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(server.stop)  # a restart with three seconds of outage
        await asyncio.sleep(3)
        await asyncio.to_thread(server.start)
        outputs = await asyncio.wait_for(
            asyncio.gather(*(i.result(timeout=120) for i in instances)), 150
        )
    finally:
        codes = [stop(worker) for worker in workers]
        await app.close()
    output = workers_log.read_text()
    assert codes == [0, 0], output[-3000:]
    assert all(o == STEPS for o in outputs)
    runs = effects_by_step(log)
    assert set(runs) == {(f"r{n}", s) for n in range(40) for s in STEPS}
    assert set(runs.values()) == {1}, [k for k, v in runs.items() if v > 1]
    assert "pooled connections were lost" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.timeout(120)
async def test_a_worker_started_just_after_a_restart_waits_a_lease_to_believe_free_locks(
    tmp_path: Path, server: PrivatePostgres
) -> None:
    """A server restart frees every liveness lock; a worker that starts right after it cannot
    tell a dead worker from one still connecting again, so it takes nothing over until a
    lease after the server's start."""
    app = App(write_app(tmp_path, {"effects_workflow.py": EFFECTS}), database=server.url)
    gone, store = open_store(server.url), open_store(server.url)
    try:
        await gone.open()
        now = time.time()
        await gone.create_instances([NewInstance("orphan", "effects", "0", now)])
        await gone.register_worker(WorkerInfo("h:1:gone", "h", 1, "0", "v", 1, now))
        assert len(await gone.claim("h:1:gone", 1, now, now + 600)) == 1
        await asyncio.to_thread(server.stop)  # the lock goes with the server, and the worker
        await gone.close()
        await asyncio.to_thread(server.start)
        await store.open()
        watcher = Liveness(Registered("h:2:new", app, lease=3.0), store)
        await watcher.register()
        lost_at = await store.locks_lost_at()
        assert lost_at is not None and time.time() - lost_at < 3.0
        while not (dead := await watcher.take_over_dead_workers()):
            assert time.time() - lost_at < 30, "the dead worker was never taken over"
            await asyncio.sleep(0.05)
        assert dead == ["h:1:gone"]
        assert time.time() >= lost_at + 3.0
    finally:
        await store.close()
        await gone.close()
        await app.close()


async def _logged(log: Path, text: str, worker: Any) -> None:
    """Wait until ``log`` holds ``text`` (or the worker exited, which fails the test)."""
    while not (log.exists() and text in log.read_text()):
        assert worker.poll() is None, (
            f"the worker exited with {worker.returncode}: {log.read_text()}"
        )
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_a_worker_started_while_the_server_is_down_waits_for_it(
    tmp_path: Path, server: PrivatePostgres
) -> None:
    """A worker (re)started during a server restart or failover waits for the database, as
    a running worker does, instead of exiting."""
    log, workers_log = tmp_path / "effects.log", tmp_path / "workers.log"
    root = write_app(tmp_path, {"effects_workflow.py": EFFECTS})
    app = App(root, database=server.url)
    app.install()
    instance = await app.handle("effects").create(0.0, id="late")
    server.stop()
    worker = start_worker(
        root, workers_log, {"FW_EFFECTS_LOG": str(log), "FW_DATABASE_URL": server.url}
    )
    try:
        await _logged(workers_log, "waiting for the database", worker)
        await asyncio.to_thread(server.start)
        assert await instance.result(timeout=60) == STEPS
    finally:
        code = stop(worker)
        await app.close()
    assert code == 0, workers_log.read_text()[-3000:]
    assert "Traceback" not in workers_log.read_text()


@pytest.mark.timeout(60)
async def test_a_worker_waiting_for_the_server_stops_cleanly(
    tmp_path: Path, server: PrivatePostgres
) -> None:
    workers_log = tmp_path / "workers.log"
    root = write_app(tmp_path, {"effects_workflow.py": EFFECTS})
    server.stop()
    worker = start_worker(root, workers_log, {"FW_DATABASE_URL": server.url})
    await _logged(workers_log, "waiting for the database", worker)
    assert stop(worker, timeout=10) == 0, workers_log.read_text()[-3000:]


@pytest.mark.timeout(60)
async def test_a_worker_with_a_missing_database_exits_at_once(
    tmp_path: Path, server: PrivatePostgres
) -> None:
    """Waiting is for a server that cannot be reached; a wrong URL is an error at once."""
    workers_log = tmp_path / "workers.log"
    root = write_app(tmp_path, {"effects_workflow.py": EFFECTS})
    missing = server.url.rsplit("/", 1)[0] + "/no_such_db"
    worker = start_worker(root, workers_log, {"FW_DATABASE_URL": missing})
    assert worker.wait(timeout=30) == 1
    assert "database does not exist: create it" in workers_log.read_text()


async def test_an_unreachable_server_is_a_clear_error(server: PrivatePostgres) -> None:
    server.stop()
    store = PostgresStore(server.url)
    with pytest.raises(
        StoreError, match=r"127\.0\.0\.1.* the server is unreachable: is it running"
    ):
        await store.open()


async def test_a_missing_database_and_a_bad_password_are_clear_errors(
    server: PrivatePostgres,
) -> None:
    missing = PostgresStore(server.url.rsplit("/", 1)[0] + "/no_such_db")
    with pytest.raises(StoreError, match="database does not exist: create it"):
        await missing.open()
    with psycopg.connect(server.url, autocommit=True) as c:
        c.execute("CREATE ROLE fw_app LOGIN PASSWORD 'right'")
    hba = server.data / "pg_hba.conf"
    hba.write_text("host all fw_app 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    with psycopg.connect(server.url, autocommit=True) as c:
        c.execute("SELECT pg_reload_conf()")
    wrong = PostgresStore(f"postgresql://fw_app:wrong@127.0.0.1:{server.port}/postgres")
    with pytest.raises(StoreError, match="authentication failed") as caught:
        await wrong.open()
    assert "wrong" not in str(caught.value)  # the password is not repeated in messages


@pytest.mark.slow
async def test_operations_wait_out_a_short_outage(server: PrivatePostgres) -> None:
    store = PostgresStore(f"{server.url}?retry_for=30")
    await store.open()
    try:
        await store.create_instances([])
        server.stop()
        restarting = asyncio.get_running_loop().run_in_executor(None, _start_later, server)
        assert await store.get_instance("nothing") is None  # retried until the server is back
        await restarting
        assert await store.next_wake_at() is None
    finally:
        await store.close()


def _start_later(server: PrivatePostgres) -> None:
    import time

    time.sleep(1.5)
    server.start()


# A connection cut after the server committed but before the client heard back.


class CuttingProxy:
    """A TCP proxy in front of PostgreSQL that can drop the reply to the next request, or to
    the next request holding some text: the server has done it (committed, when the request
    commits), the client never learns it (a network cut at the worst moment)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.armed = False
        self.trigger: bytes | None = None
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._handlers:
            _, late = await asyncio.wait(self._handlers, timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def cut_next_reply(self) -> None:
        self.armed = True

    def cut_reply_to(self, text: bytes) -> None:
        """Drop the reply to the next request that holds ``text`` (``b"COMMIT"``)."""
        self.trigger = text

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        server_in, server_out = await asyncio.open_connection(self.host, self.port)

        async def upstream() -> None:
            while data := await client_in.read(65536):
                if self.trigger is not None and self.trigger in data:
                    self.trigger, self.armed = None, True
                server_out.write(data)
                await server_out.drain()
            server_out.close()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                if self.armed:
                    self.armed = False
                    self.cuts += 1
                    break
                client_out.write(data)
                await client_out.drain()
            client_out.close()
            server_out.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        for writer in (client_out, server_out):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
async def cut_store(postgres_url: str) -> Any:
    """(store, proxy): a store with one pooled connection that goes through a CuttingProxy."""
    from urllib.parse import urlsplit

    target = urlsplit(postgres_url)
    proxy = CuttingProxy(target.hostname or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    netloc = target.netloc.replace(f":{target.port}", f":{port}")
    url = target._replace(netloc=netloc).geturl() + "?pool_size=1&pool_min_size=1&retry_for=10"
    store = PostgresStore(url)
    await store.open()
    try:
        yield store, proxy
    finally:
        await store.close()
        await proxy.close()


async def test_a_journal_write_whose_reply_was_lost_is_replayed_safely(cut_store: Any) -> None:
    store, proxy = cut_store
    await store.create_instances(
        [NewInstance("a", "wf", "{}", T0), NewInstance("b", "wf", "{}", T0)]
    )
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + 30)}

    proxy.cut_next_reply()  # a step journaled; the lease is kept
    step = StepRow("a", "s", 1, 0, "do", "complete", 1, T0, T0, output='"x"')
    assert await store.apply(Transition("a", claims["a"].token, steps=[step]), T0 + 1) == "running"
    assert await store.list_steps("a") == [step]

    proxy.cut_next_reply()  # the instance completes and its lease is released
    done = Transition("a", claims["a"].token, status="complete", output='"out"')
    assert await store.apply(done, T0 + 2) == "complete"
    finished = await store.get_instance("a")
    assert finished is not None and (finished.status, finished.output) == ("complete", '"out"')

    proxy.cut_next_reply()  # a replay that finds someone else's lease is a lost lease
    await store.apply(Transition("b", claims["b"].token, status="queued", release=True), T0 + 3)
    with pytest.raises(LeaseLostError):
        await store.apply(Transition("b", claims["b"].token, status="complete"), T0 + 4)
    assert proxy.cuts == 3


async def test_a_claim_whose_reply_was_lost_is_recovered_not_leaked(cut_store: Any) -> None:
    store, proxy = cut_store
    await store.create_instances([NewInstance(f"i{n}", "wf", "{}", T0) for n in range(3)])
    proxy.cut_next_reply()
    claims = await store.claim("w1", 2, T0, T0 + 30)
    assert proxy.cuts == 1
    assert len(claims) == 2  # the two the lost call claimed, not two more
    rest = await store.claim("w2", 10, T0, T0 + 30)
    assert len(rest) == 1
    assert {c.instance.id for c in claims + rest} == {"i0", "i1", "i2"}
    for claim in claims:
        await store.apply(Transition(claim.instance.id, claim.token, status="complete"), T0 + 1)


async def test_an_event_taken_by_a_call_whose_reply_was_lost_is_not_taken_twice(
    cut_store: Any,
) -> None:
    store, proxy = cut_store
    await store.create_instances([NewInstance("a", "wf", "{}", T0)])
    (claim,) = await store.claim("w1", 1, T0, T0 + 30)
    await store.send_event("a", "go", '"first"', T0)
    await store.send_event("a", "go", '"second"', T0)
    wait = StepRow("a", "w", 1, 0, "event", "complete")
    proxy.cut_next_reply()
    taken = await store.take_event(claim.token, "a", "go", wait, T0 + 1)
    assert taken is not None and taken.payload == '"first"'
    second = StepRow("a", "w", 2, 1, "event", "complete")
    again = await store.take_event(claim.token, "a", "go", second, T0 + 2)
    assert again is not None and again.payload == '"second"'


CONTROL_OPERATIONS = {
    "pause": lambda store: store.pause("a", T0 + 1),
    "resume": lambda store: store.resume("p", T0 + 1),
    "terminate": lambda store: store.terminate("a", T0 + 1),
    "restart": lambda store: store.restart("a", T0 + 1, None),
    "send_event": lambda store: store.send_event("a", "go", "1", T0 + 1),
}


async def _control_fixture(store: PostgresStore) -> None:
    await store.create_instances(
        [NewInstance("a", "wf", "{}", T0), NewInstance("p", "wf", "{}", T0)]
    )
    await store.pause("p", T0)


async def _control_effect(store: PostgresStore, operation: str) -> object:
    """What the operation changed, to count how many times it was applied."""
    if operation == "send_event":
        async with await psycopg.AsyncConnection.connect(store.settings.conninfo) as c:
            cur = await c.execute("SELECT count(*) FROM events WHERE instance_id = 'a'")
            row = await cur.fetchone()
            return row[0] if row else None
    row = await store.get_instance("p" if operation == "resume" else "a")
    assert row is not None
    return (row.status, row.generation) if operation == "restart" else row.status


@pytest.mark.parametrize("operation", sorted(CONTROL_OPERATIONS))
async def test_a_control_operation_whose_reply_to_commit_was_lost_says_so(
    cut_store: Any, operation: str
) -> None:
    store, proxy = cut_store
    await _control_fixture(store)
    proxy.cut_reply_to(b"COMMIT")
    with pytest.raises(StoreError, match="may or may not have been applied"):
        await CONTROL_OPERATIONS[operation](store)
    assert proxy.cuts == 1
    assert (await store.get_instance("a")) is not None  # and the store works on


# What the operation leaves behind when applied once (a second run would refuse or differ).
APPLIED_ONCE = {
    "pause": "paused",
    "resume": "queued",
    "terminate": "terminated",
    "restart": ("queued", 1),
    "send_event": 1,
}


@pytest.mark.parametrize("operation", sorted(CONTROL_OPERATIONS))
async def test_a_control_operation_cut_off_before_its_commit_is_retried_and_applied_once(
    cut_store: Any, operation: str
) -> None:
    """A connection lost before the commit was sent (a server restart, a killed backend)
    rolled the operation back: it is retried, not reported as maybe applied."""
    store, proxy = cut_store
    await _control_fixture(store)
    proxy.cut_next_reply()
    await CONTROL_OPERATIONS[operation](store)
    assert proxy.cuts == 1
    assert await _control_effect(store, operation) == APPLIED_ONCE[operation]
