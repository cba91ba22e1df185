"""Every connection a store opens is closed, on every path: a failed, cancelled or migrating
open, a failed write, a close; on SQLite and on PostgreSQL.

Each test looks for itself (SQLite connections still open, PostgreSQL sessions still connected
to the scratch database); besides, the suite fails any test that leaves one open
(``tests/leaks.py``), on every supported Python.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from framework.errors import InstanceNotFoundError, StoreError
from framework.store import open_store
from framework.store.base import NewInstance
from framework.store.migrations import latest_version
from framework.store.postgres import MIGRATION_LOCK
from tests.conftest import postgres_server_url
from tests.leaks import OpenedConnections, backends_left, connections_left, dialect_of
from tests.runtime.test_schema_upgrade import restore_postgres, restore_sqlite

T0 = 1_000_000.0


StoreThreads = Callable[[], list[str]]


@pytest.fixture
def store_threads() -> StoreThreads:
    """The SQLite store threads started during the test and still running."""
    before = set(threading.enumerate())

    def running() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if t.name.startswith("fw-sqlite") and t not in before
        ]

    return running


@pytest.fixture
def thread_errors() -> Iterator[list[threading.ExceptHookArgs]]:
    """Exceptions that ended a thread during the test."""
    errors: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    try:
        yield errors
    finally:
        threading.excepthook = previous


async def set_schema_version(url: str, version: int) -> None:
    if dialect_of(url) == "sqlite":
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        connection.execute(f"PRAGMA user_version={version}")
        connection.close()
        return
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute("INSERT INTO fw_schema (version, name) VALUES (%s, 'later')", [version])


# Both stores.


async def test_an_open_refused_for_a_newer_schema_leaves_nothing_open(
    database_url: str, sqlite_connections: OpenedConnections, store_threads: StoreThreads
) -> None:
    first = open_store(database_url)
    await first.open()
    await first.close()
    await set_schema_version(database_url, latest_version(dialect_of(database_url)) + 1)

    refused = open_store(database_url)
    with pytest.raises(StoreError, match="newer than this fw knows"):
        await refused.open()

    assert connections_left(database_url, sqlite_connections) == []
    assert store_threads() == []
    await refused.close()  # closing it anyway is harmless


async def test_migrating_an_older_schema_on_open_leaves_nothing_open(
    database_url: str,
    tmp_path: Path,
    sqlite_connections: OpenedConnections,
    store_threads: StoreThreads,
) -> None:
    if dialect_of(database_url) == "sqlite":
        url = restore_sqlite(tmp_path / "v1.db")
    else:
        url = restore_postgres(database_url)
    store = open_store(url)
    await store.open()
    try:
        row = await store.get_instance("done")
        assert row is not None and row.status == "complete"
    finally:
        await store.close()

    assert connections_left(url, sqlite_connections) == []
    assert store_threads() == []


async def test_failed_operations_then_a_close_leave_nothing_open(
    database_url: str, sqlite_connections: OpenedConnections, store_threads: StoreThreads
) -> None:
    store = open_store(database_url)
    await store.open()
    await store.create_instances([NewInstance("a", "wf", "{}", T0)])
    with pytest.raises(InstanceNotFoundError):
        await store.pause("missing", T0)  # fails inside a write
    with pytest.raises(InstanceNotFoundError):
        await store.send_event("missing", "go", "{}", T0)
    await store.wait_for_work(0.01)  # opens PostgreSQL's listening connection
    await store.close()
    await store.close()  # a second close changes nothing

    assert connections_left(database_url, sqlite_connections) == []
    assert store_threads() == []


async def test_a_closed_store_says_so_and_opens_nothing(
    database_url: str, sqlite_connections: OpenedConnections
) -> None:
    store = open_store(database_url)
    await store.open()
    await store.close()

    with pytest.raises(StoreError, match=r"store at .* is (closed|not open)"):
        await store.get_instance("a")
    with pytest.raises(StoreError, match=r"store at .* is (closed|not open)"):
        await store.create_instances([NewInstance("a", "wf", "{}", T0)])
    assert connections_left(database_url, sqlite_connections) == []


# SQLite.


async def test_an_open_that_fails_on_a_corrupt_file_leaves_nothing_open(
    tmp_path: Path, sqlite_connections: OpenedConnections, store_threads: StoreThreads
) -> None:
    database = tmp_path / "broken.db"
    database.write_bytes(b"this is not a database" * 200)
    store = open_store(f"sqlite:///{database}")

    with pytest.raises(StoreError, match="not a valid SQLite database"):
        await store.open()

    assert sqlite_connections.open_now() == []
    assert store_threads() == []


async def test_a_write_failing_on_a_locked_file_then_a_close_leave_nothing_open(
    tmp_path: Path, sqlite_connections: OpenedConnections, store_threads: StoreThreads
) -> None:
    database = tmp_path / "fw.db"
    store = open_store(f"sqlite:///{database}?timeout=0.2")
    await store.open()
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="is locked"):
            await store.create_instances([NewInstance("a", "wf", "{}", T0)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await store.close()

    assert sqlite_connections.open_now() == []
    assert store_threads() == []


async def test_stores_opening_a_new_file_while_another_writes_wait_for_it(
    tmp_path: Path,
) -> None:
    """Switching a new file to WAL needs an exclusive lock, and SQLite refuses it at once,
    without waiting, while another connection holds the write lock; the open waits."""
    database = tmp_path / "fw.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what another store's first migration holds
    store = open_store(f"sqlite:///{database}?timeout=10")
    opening = asyncio.ensure_future(store.open())
    try:
        await asyncio.sleep(0.3)
        assert not opening.done(), opening.exception()
    finally:
        holder.execute("COMMIT")
        holder.close()
    await asyncio.wait_for(opening, 10)
    assert await store.get_instance("none") is None
    await store.close()


async def test_a_cancelled_open_leaves_nothing_open(
    tmp_path: Path,
    sqlite_connections: OpenedConnections,
    thread_errors: list[threading.ExceptHookArgs],
    store_threads: StoreThreads,
) -> None:
    database = tmp_path / "fw.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = open_store(f"sqlite:///{database}?timeout=30")
        opening = asyncio.ensure_future(store.open())
        await asyncio.sleep(0.2)
        assert not opening.done()
        started = time.monotonic()
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert time.monotonic() - started < 5, "the cancelled open waited out the lock"
        assert store_threads() == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert sqlite_connections.open_now() == []
    assert thread_errors == []
    await store.open()  # it can be opened once the lock is gone
    await store.close()


async def test_a_failing_open_whose_caller_gave_up_breaks_no_thread(
    tmp_path: Path,
    sqlite_connections: OpenedConnections,
    thread_errors: list[threading.ExceptHookArgs],
) -> None:
    database = tmp_path / "fw.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the open fails after its busy timeout
    try:
        store = open_store(f"sqlite:///{database}?timeout=0.5")
        opening = asyncio.ensure_future(store.open())
        await asyncio.sleep(0.05)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        for thread in threading.enumerate():  # the writer thread, if the open left it running
            if thread.name == "fw-sqlite-writer":
                await asyncio.to_thread(thread.join, 10)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert [f"{e.exc_type.__name__}: {e.exc_value}" for e in thread_errors] == []
    assert sqlite_connections.open_now() == []


# PostgreSQL.


async def test_a_cancelled_postgres_open_leaves_nothing_open(postgres_url: str) -> None:
    server = postgres_server_url()
    assert server is not None
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as holder:
        await holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
        store = open_store(postgres_url)
        opening = asyncio.ensure_future(store.open())
        while not await _waiting_for_a_lock(holder):  # the open waits to migrate
            assert not opening.done(), opening.exception()
            await asyncio.sleep(0.02)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
    assert backends_left(server, postgres_url.rpartition("/")[2]) == []


async def _waiting_for_a_lock(c: psycopg.AsyncConnection[object]) -> bool:
    cur = await c.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    )
    row = await cur.fetchone()
    return bool(row and row[0])
