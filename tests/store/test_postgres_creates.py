"""Creates on PostgreSQL: what they send to the server and whom they wake.

A single instance's create is one statement in autocommit, its NOTIFY carried inside it; a
batch is one transaction (BEGIN, the statement, COMMIT). The statements are counted by
wrapping psycopg's own ``execute`` and ``transaction`` around the real server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from framework.errors import InstanceIdConflictError
from framework.store.base import Handoff, NewInstance
from framework.store.postgres import PostgresStore
from framework.store.postgres_listener import CHANNEL

T0 = 1_000_000.0


def new(instance_id: str, workflow: str = "wf") -> NewInstance:
    return NewInstance(instance_id, workflow, "{}", T0)


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Statements executed and transactions opened by any psycopg connection."""
    counts: Counter[str] = Counter()
    execute = psycopg.AsyncConnection.execute
    transaction = psycopg.AsyncConnection.transaction

    async def counting_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        counts["statements"] += 1
        return await execute(self, query, *args, **kwargs)

    def counting_transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["transactions"] += 1
        return transaction(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", counting_execute)
    monkeypatch.setattr(psycopg.AsyncConnection, "transaction", counting_transaction)
    return counts


@pytest.fixture
def listening(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection listening on fw's wake-up channel, as another process's worker."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"LISTEN {CHANNEL}")
        yield connection


def wake_ups(listening: psycopg.Connection[Any]) -> int:
    """The wake-ups delivered since the last call: those committed before a marker this
    connection then sends itself (notifications arrive in commit order)."""
    listening.execute("SELECT pg_notify(%s, 'marker')", [CHANNEL])
    for count, notification in enumerate(listening.notifies(timeout=60)):
        if notification.payload == "marker":
            return count
    raise AssertionError("the marker notification did not arrive within 60 s")


async def test_a_single_create_is_one_statement_that_notifies_once(
    store: PostgresStore, sent: Counter[str], listening: psycopg.Connection[Any]
) -> None:
    (created,) = await store.create_instances([new("a")])

    assert created.created and created.row.status == "queued"
    assert sent == {"statements": 1}
    assert wake_ups(listening) == 1


async def test_a_single_create_of_an_existing_id_wakes_nobody(
    store: PostgresStore, sent: Counter[str], listening: psycopg.Connection[Any]
) -> None:
    await store.create_instances([new("a"), new("taken", "other")])
    assert wake_ups(listening) == 1
    sent.clear()

    (again,) = await store.create_instances([new("a")])
    with pytest.raises(InstanceIdConflictError):
        await store.create_instances([new("taken")])

    assert not again.created
    assert sent == {"statements": 2}
    assert wake_ups(listening) == 0
    row = await store.get_instance("taken")
    assert row is not None and row.workflow == "other"


async def test_a_single_create_handed_off_wakes_nobody(
    store: PostgresStore, sent: Counter[str], listening: psycopg.Connection[Any]
) -> None:
    handoff = Handoff("w1", 1, T0, T0 + 30)
    (created,) = await store.create_instances([new("a")], handoff)

    assert created.claim is not None and created.row.status == "running"
    assert sent == {"statements": 1}
    assert wake_ups(listening) == 0


async def test_a_batch_is_one_transaction_that_notifies_once(
    store: PostgresStore, sent: Counter[str], listening: psycopg.Connection[Any]
) -> None:
    created = await store.create_instances([new("a"), new("b"), new("c")])

    assert [c.created for c in created] == [True, True, True]
    assert sent == {"statements": 1, "transactions": 1}
    assert wake_ups(listening) == 1
