"""The SQLite writer thread: group commits, and callers that give up."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from framework.store.sqlite_writer import SQLiteWriter, WriteResult


async def started_writer(folder: Path) -> SQLiteWriter:
    """A writer on a WAL file in ``folder`` holding an empty table ``t (n)``."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(folder / "w.db", isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    writer = SQLiteWriter(connect, lambda: None, lambda exc: exc)
    await asyncio.wrap_future(writer.start())
    await writer.write(lambda c: WriteResult(c.execute("CREATE TABLE t (n INTEGER)")))
    return writer


@pytest.mark.timeout(30)
async def test_a_cancelled_caller_never_breaks_the_writer(tmp_path: Path) -> None:
    writer = await started_writer(tmp_path)

    def slow_insert(c: sqlite3.Connection) -> WriteResult:
        c.execute("INSERT INTO t VALUES (1)")
        import time

        time.sleep(0.2)
        return WriteResult(1)

    for _ in range(5):  # callers cancelled while queued and while their write runs
        task = asyncio.ensure_future(writer.write(slow_insert))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    count = await writer.write(lambda c: WriteResult(c.execute("SELECT count(*) FROM t").fetchone()[0]))
    assert 1 <= count <= 5
    await asyncio.to_thread(writer.stop)


@pytest.mark.timeout(30)
async def test_a_write_behind_another_connections_lock_tries_again_every_millisecond(
    tmp_path: Path,
) -> None:
    # SQLite's own busy handler sleeps up to 25-100 ms between tries; the writer's is off, and
    # it tries again every LOCK_RETRY instead, so it commits soon after the lock is let go.
    tries: list[str] = []

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA busy_timeout=0")
        connection.set_trace_callback(tries.append)
        return connection

    writer = SQLiteWriter(connect, lambda: None, lambda exc: exc, lock_wait=10)
    await asyncio.wrap_future(writer.start())
    await writer.write(lambda c: WriteResult(c.execute("CREATE TABLE t (n INTEGER)")))
    holder = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    tries.clear()
    write = asyncio.ensure_future(writer.write(lambda c: WriteResult(c.execute("INSERT INTO t VALUES (1)"))))
    while tries.count("BEGIN IMMEDIATE") < 20:  # it keeps trying while the lock is held
        assert not write.done()
        await asyncio.sleep(0.01)
    holder.execute("COMMIT")
    await asyncio.wait_for(write, timeout=10)
    rows = await writer.write(lambda c: WriteResult(c.execute("SELECT n FROM t").fetchall()))
    assert rows == [(1,)]
    holder.close()
    await asyncio.to_thread(writer.stop)


@pytest.mark.timeout(30)
async def test_a_write_that_fails_in_a_group_fails_alone_and_the_others_commit(
    tmp_path: Path,
) -> None:
    writer = await started_writer(tmp_path)
    started = threading.Event()
    go_on = threading.Event()

    def held(c: sqlite3.Connection) -> WriteResult[int]:  # keeps the writer busy meanwhile
        started.set()
        go_on.wait(10)
        c.execute("INSERT INTO t VALUES (0)")
        return WriteResult(0)

    def insert(n: int) -> Callable[[sqlite3.Connection], WriteResult[int]]:
        def write(c: sqlite3.Connection) -> WriteResult[int]:
            c.execute("INSERT INTO t VALUES (?)", (n,))
            if n == 3:
                raise ValueError("three is refused")  # after its insert: undone with it
            return WriteResult(n)

        return write

    first = asyncio.ensure_future(writer.write(held))
    await asyncio.to_thread(started.wait, 10)
    group = [asyncio.ensure_future(writer.write(insert(n))) for n in range(1, 6)]
    await asyncio.sleep(0.05)  # all five queued behind the held write: one group
    go_on.set()
    assert await first == 0
    outcomes = await asyncio.gather(*group, return_exceptions=True)
    assert outcomes[:2] == [1, 2] and outcomes[3:] == [4, 5]
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "three is refused"
    assert writer.commits == 3  # the table, the held write, the group of five
    rows = await writer.write(
        lambda c: WriteResult([n for (n,) in c.execute("SELECT n FROM t ORDER BY n")])
    )
    assert rows == [0, 1, 2, 4, 5]
    await asyncio.to_thread(writer.stop)
