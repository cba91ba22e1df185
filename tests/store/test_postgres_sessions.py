"""fw's PostgreSQL sessions end a transaction their client abandoned: the server ends a session
left idle inside a transaction (``IDLE_IN_TRANSACTION_TIMEOUT``), releasing its row locks, and
probes its client with keepalives, on every kind of connection fw opens (pooled, hot, and its
own: migrations, wake-ups, liveness locks)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from framework.store import postgres_connection
from framework.store.postgres_connection import Connection, Database, PostgresSettings
from tests.conftest import PG_SKIP_REASON, postgres_server_url

pytestmark = pytest.mark.skipif(postgres_server_url() is None, reason=PG_SKIP_REASON)

SETTINGS = (
    "idle_in_transaction_session_timeout",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
)


async def settings_of(c: Connection) -> dict[str, str]:
    cur = await c.execute(
        "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),)
    )
    return {str(name): str(value) for name, value in await cur.fetchall()}


EXPECTED = {
    "idle_in_transaction_session_timeout": "60000",
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "15000",
}


async def test_every_kind_of_connection_gets_the_session_settings(postgres_url: str) -> None:
    db = Database(PostgresSettings.from_url(f"{postgres_url}?pool_size=3"))
    await db.open()
    try:
        seen = await asyncio.gather(
            *(db.run("reading settings", settings_of, replay_safe=True) for _ in range(6))
        )  # at once: the hot connection and pooled ones
        seen += [await db.run("reading settings", settings_of, replay_safe=True)]
        own = await db.connect(autocommit=True)
        try:
            seen.append(await settings_of(own))
        finally:
            await own.close()
        assert all(s == EXPECTED for s in seen), seen
    finally:
        await db.close()


async def test_the_server_ends_a_transaction_its_client_left_idle(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_connection, "IDLE_IN_TRANSACTION_TIMEOUT", 1.0)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        await admin.execute("CREATE TABLE held (id int PRIMARY KEY, n int)")
        await admin.execute("INSERT INTO held VALUES (1, 0)")
        db = Database(PostgresSettings.from_url(postgres_url))
        await db.open()
        stalled = asyncio.Event()
        let_go = asyncio.Event()

        async def lock_then_stall(c: Connection) -> None:
            await c.execute("BEGIN")
            await c.execute("SELECT * FROM held WHERE id = 1 FOR UPDATE")
            stalled.set()
            await let_go.wait()  # a client that stopped talking, its transaction open

        holder = asyncio.create_task(db.run("holding a lock", lock_then_stall, replay_safe=True))
        try:
            await stalled.wait()
            began = time.monotonic()
            await admin.execute("SET lock_timeout = '20s'")
            await admin.execute("UPDATE held SET n = n + 1 WHERE id = 1")  # waits for the lock
            waited = time.monotonic() - began
            assert 0.5 < waited < 15, waited
        finally:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
            await db.close()
