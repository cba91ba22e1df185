"""The hot connection: operations one after another go over one connection, the pool takes
what runs beside them, and a hot connection that cannot be trusted is dropped, never reused.

Each test drives ``Database`` (what every PostgreSQL store operation runs through) against a
scratch database and reads the server's own view (``pg_backend_pid``, ``pg_stat_activity``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from framework.store.postgres_connection import Connection, Database, PostgresSettings
from tests.conftest import PG_SKIP_REASON, postgres_server_url

pytestmark = pytest.mark.skipif(postgres_server_url() is None, reason=PG_SKIP_REASON)

SETTLE_WITHIN = 10.0
"""Seconds the hot connection may take to connect (a loaded machine)."""


async def backend_pid(c: Connection, sleep: float = 0.0) -> int:
    row = await (await c.execute("SELECT pg_backend_pid(), pg_sleep(%s)", (sleep,))).fetchone()
    assert row is not None
    return int(row[0])


async def pid_of(db: Database, sleep: float = 0.0) -> int:
    return await db.run("reading the backend", lambda c: backend_pid(c, sleep), replay_safe=True)


async def settled_pid(db: Database, run_of: int = 30) -> int:
    """The backend that ``run_of`` operations in a row went to, one after another: the hot
    connection's (while it connects, a pool that has opened one connection so far may also
    serve a streak)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_WITHIN
    last, streak = None, 0
    while streak < run_of or last != hot_backend(db):
        assert loop.time() < deadline, f"no {run_of} operations in a row shared a connection"
        pid = await pid_of(db)
        last, streak = pid, streak + 1 if pid == last else 1
    assert last is not None
    return last


def hot_backend(db: Database) -> int | None:
    """The backend of ``db``'s hot connection, if it is connected (read from its client
    side: asking the server would take it)."""
    hot = db._hot
    conn = None if hot is None else hot._conn
    return None if conn is None or conn.closed else conn.info.backend_pid


async def our_backends(url: str) -> list[tuple[int, str, str]]:
    """(pid, state, query) of the fw sessions connected to the scratch database."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pid, coalesce(state, ''), query FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'fw' "
            "AND pid <> pg_backend_pid()"
        )
        return [(int(pid), str(state), str(query)) for pid, state, query in await cur.fetchall()]


async def until(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_WITHIN
    while not await check():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.02)


async def until_gone(url: str, pid: int, otherwise: str) -> None:
    """Wait until backend ``pid`` has left the scratch database."""

    async def gone() -> bool:
        return pid not in [backend for backend, _, _ in await our_backends(url)]

    await until(gone, f"backend {pid} {otherwise}")


def with_pool_size(url: str, size: int) -> str:
    return f"{url}{'&' if '?' in url else '?'}pool_size={size}"


async def opened(url: str) -> Database:
    db = Database(PostgresSettings.from_url(url))
    await db.open()
    return db


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = await opened(with_pool_size(postgres_url, 4))
    try:
        yield database
    finally:
        await database.close()


async def test_operations_one_after_another_go_over_one_connection(db: Database) -> None:
    # Operations at once open several connections (the pool grows in the background).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_WITHIN
    seen: set[int] = set()
    while len(seen) < 3:
        assert loop.time() < deadline, f"operations at once used only {seen}"
        seen.update(await asyncio.gather(*(pid_of(db, 0.05) for _ in range(4))))
    hot = await settled_pid(db)
    assert [await pid_of(db) for _ in range(50)] == [hot] * 50


async def test_operations_at_once_take_the_pool_beside_it_within_pool_size(
    postgres_url: str,
) -> None:
    db = await opened(with_pool_size(postgres_url, 3))
    try:
        hot = await settled_pid(db)
        pids = await asyncio.gather(*(pid_of(db, 0.1) for _ in range(7)))
        assert hot in pids  # the hot connection took one while free
        assert 2 <= len(set(pids)) <= 3
        assert len(await our_backends(postgres_url)) <= 3  # pool_size, the hot one included
    finally:
        await db.close()
    assert await our_backends(postgres_url) == []


async def test_with_pool_size_1_there_is_only_the_pool(postgres_url: str) -> None:
    db = await opened(with_pool_size(postgres_url, 1))
    try:
        pids = await asyncio.gather(*(pid_of(db, 0.02) for _ in range(5)))
        pids += [await pid_of(db) for _ in range(20)]
        assert len(set(pids)) == 1
        assert len(await our_backends(postgres_url)) == 1
    finally:
        await db.close()


async def test_a_hot_connection_terminated_while_idle_is_replaced_without_an_error(
    db: Database, postgres_url: str
) -> None:
    hot = await settled_pid(db)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (hot,))

    await until_gone(postgres_url, hot, "still connected")
    after = [await pid_of(db) for _ in range(5)]  # no error: noticed before anything is sent
    assert hot not in after
    assert await settled_pid(db) != hot


async def test_an_operation_cancelled_on_the_hot_connection_ends_its_query(
    db: Database, postgres_url: str
) -> None:
    hot = await settled_pid(db)
    sleeping = asyncio.create_task(pid_of(db, 30))

    async def sleeping_on_hot() -> bool:
        return any(
            pid == hot and state == "active" and "pg_sleep" in query
            for pid, state, query in await our_backends(postgres_url)
        )

    await until(sleeping_on_hot, "the long query never ran on the hot connection")
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    # psycopg cancels the query on the server; the connection is kept only if it is idle
    # again, else dropped: either way nothing runs the query any more.
    assert not await sleeping_on_hot()
    assert [await pid_of(db) for _ in range(5)]


async def test_an_operation_failing_in_its_transaction_leaves_the_hot_connection_usable(
    db: Database,
) -> None:
    hot = await settled_pid(db)

    async def failing(c: Connection) -> None:
        await c.execute("SELECT 1/0")

    with pytest.raises(Exception, match="division by zero"):
        await db.run("dividing", failing, replay_safe=False)
    assert await pid_of(db) == hot  # rolled back by its transaction block: idle, kept


async def test_an_operation_leaving_a_transaction_open_has_the_hot_connection_dropped(
    db: Database, postgres_url: str
) -> None:
    hot = await settled_pid(db)

    async def leaves_it_open(c: Connection) -> int:
        await c.execute("BEGIN")
        return await backend_pid(c)

    assert await db.run("beginning", leaves_it_open, replay_safe=True) == hot
    assert await pid_of(db) != hot  # the next operation is not inside that transaction

    await until_gone(postgres_url, hot, "still connected, its transaction open")


async def test_an_idle_connection_past_file_number_1024_is_not_taken_for_dead(
    postgres_url: str,
) -> None:
    """``fw serve`` raises its open-file limit, so its connections may get file numbers past
    ``select``'s 1,024: such a connection, alive, must not be dropped on every use."""
    import os
    import resource

    from framework.store.postgres_connection import _dead_while_idle

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the open-file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        conn = await Connection.connect(postgres_url, autocommit=True)
        try:
            assert conn.fileno() >= 1024
            assert not _dead_while_idle(conn)
            await conn.execute("SELECT 1")
        finally:
            await conn.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
