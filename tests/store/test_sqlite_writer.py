"""The SQLite writer thread: group commits, and callers that give up."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from framework.store.sqlite_writer import SQLiteWriter, WriteResult


@pytest.mark.timeout(30)
async def test_a_cancelled_caller_never_breaks_the_writer(tmp_path: Path) -> None:
    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    writer = SQLiteWriter(connect, lambda: None, lambda exc: exc)
    await asyncio.wrap_future(writer.start())
    await writer.write(lambda c: WriteResult(c.execute("CREATE TABLE t (n INTEGER)")))

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
