"""Creates and journal writes on PostgreSQL: what they send to the server and whom they wake.

A single instance's create is one statement in autocommit, its NOTIFY carried inside it; a
batch is one transaction (BEGIN, the statement, COMMIT). A journal write alone is one
statement in autocommit; writes that arrive together commit together (group commit), and
one that fails or lost its lease fails alone. The statements are counted by wrapping
psycopg's own ``execute`` and ``transaction`` around the real server.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from framework.errors import InstanceIdConflictError, LeaseLostError, StoreError
from framework.store.base import Claim, Handoff, LogRow, NewInstance, StepRow, Transition
from framework.store.postgres import PostgresStore
from framework.store.postgres_connection import SESSION_SETUP
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
    """Statements executed and transactions opened by any psycopg connection (but a new
    session's setup, made once per connection)."""
    counts: Counter[str] = Counter()
    execute = psycopg.AsyncCursor.execute  # what the connection's execute calls too
    transaction = psycopg.AsyncConnection.transaction

    async def counting_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if query != SESSION_SETUP:
            counts["statements"] += 1
        return await execute(self, query, *args, **kwargs)

    def counting_transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["transactions"] += 1
        return transaction(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counting_execute)
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



async def test_single_creates_that_arrive_together_are_one_transaction(
    store: PostgresStore, sent: Counter[str], listening: psycopg.Connection[Any]
) -> None:
    created = await asyncio.gather(*(store.create_instances([new(f"i-{n}")]) for n in range(40)))

    assert [c.row.id for [c] in created] == [f"i-{n}" for n in range(40)]
    assert all(c.created and c.row.status == "queued" for [c] in created)
    # The first two go alone, each one statement in autocommit; the others wait for them and
    # go together: one statement in one transaction (two at most).
    assert sent["statements"] <= 4 and 1 <= sent["transactions"] <= 2
    assert 1 <= wake_ups(listening) <= 4


async def test_single_creates_of_one_id_together_store_it_once(store: PostgresStore) -> None:
    same = NewInstance("same", "wf", '{"n": 1}', T0)
    results = await asyncio.gather(
        *(store.create_instances([same if n % 3 == 0 else new(f"i-{n}")]) for n in range(30))
    )

    for_same = [c for [c] in results if c.row.id == "same"]
    assert len(for_same) == 10 and [c.created for c in for_same].count(True) == 1
    assert all(c.created for [c] in results if c.row.id != "same")
    row = await store.get_instance("same")
    assert row is not None and row.params == '{"n": 1}'


async def test_a_create_that_conflicts_fails_alone_and_the_others_are_stored(
    store: PostgresStore,
) -> None:
    await store.create_instances([new("taken", "other")])

    results = await asyncio.gather(
        *(store.create_instances([new("taken" if n == 11 else f"i-{n}")]) for n in range(30)),
        return_exceptions=True,
    )

    assert isinstance(results[11], InstanceIdConflictError)
    assert all(isinstance(r, list) and r[0].created for n, r in enumerate(results) if n != 11)
    assert len(await store.get_instances([f"i-{n}" for n in range(30)])) == 29


async def test_handed_off_creates_that_arrive_together_are_each_claimed(
    store: PostgresStore, sent: Counter[str], listening: psycopg.Connection[Any]
) -> None:
    def handoff(n: int) -> Handoff:
        return Handoff("w1", 1, T0 + n, T0 + n + 30)

    results = await asyncio.gather(
        *(store.create_instances([new(f"i-{n}")], handoff(n)) for n in range(30))
    )

    for [created] in results:
        assert created.claim is not None and created.claim.instance.id == created.row.id
        assert (created.row.status, created.row.lease_owner) == ("running", "w1")
    assert len({c.claim.token for [c] in results if c.claim is not None}) == 30
    assert sent["transactions"] <= 2
    assert wake_ups(listening) == 0


# Journal writes.


async def running(store: PostgresStore, count: int) -> list[Claim]:
    """``count`` instances, created and claimed by worker w1 in one statement."""
    created = await store.create_instances(
        [NewInstance(f"i-{n:03}", "wf", "{}", T0) for n in range(count)],
        Handoff("w1", count, T0, T0 + 300),
    )
    claims = [c.claim for c in created]
    assert all(claims)
    return [c for c in claims if c is not None]


def step(claim: Claim, output: str = "1") -> Transition:
    row = StepRow(claim.instance.id, "one", 1, 1, "do", "complete", 1, T0, T0, None, None, output)
    return Transition(claim.instance.id, claim.token, steps=[row])


async def test_writes_that_arrive_together_are_one_statement(
    store: PostgresStore, sent: Counter[str]
) -> None:
    claims = await running(store, 40)
    sent.clear()

    statuses = await asyncio.gather(*(store.apply(step(c), T0 + 1) for c in claims))

    assert statuses == ["running"] * 40
    # The first MOST_IN_FLIGHT go alone (nothing was under way), one statement each in
    # autocommit; the others wait for them and go together: one statement for all of them
    # (two at most), in autocommit too, so one transaction.
    assert 3 <= sent["statements"] <= 4 and not sent["transactions"]
    for claim in claims:
        [journaled] = await store.list_steps(claim.instance.id)
        assert (journaled.name, journaled.output) == ("one", "1")


async def test_a_write_alone_is_one_statement_and_no_transaction(
    store: PostgresStore, sent: Counter[str]
) -> None:
    [claim] = await running(store, 1)
    sent.clear()

    assert await store.apply(step(claim), T0 + 1) == "running"

    assert sent == Counter(statements=1)


async def test_a_write_that_fails_fails_alone_and_the_others_commit(
    store: PostgresStore, sent: Counter[str]
) -> None:
    claims = await running(store, 30)
    bad = claims[17]  # PostgreSQL text cannot hold a NUL character: the server refuses this

    results = await asyncio.gather(
        *(store.apply(step(c, "\x00" if c is bad else "1"), T0 + 1) for c in claims),
        return_exceptions=True,
    )

    failed = {c.instance.id: r for c, r in zip(claims, results, strict=True) if r != "running"}
    assert list(failed) == [bad.instance.id]
    assert isinstance(failed[bad.instance.id], StoreError)
    assert "UntranslatableCharacter" in str(failed[bad.instance.id])
    for claim in claims:
        journaled = await store.list_steps(claim.instance.id)
        assert len(journaled) == (0 if claim is bad else 1)


async def test_a_write_json_cannot_carry_still_commits_with_the_others(
    store: PostgresStore,
) -> None:
    # A batch travels as one JSON document, which has no infinity: its batch goes alone.
    claims = await running(store, 30)
    endless = claims[11]
    transitions = [step(c) for c in claims]
    transitions[11] = Transition(
        endless.instance.id, endless.token, status="waiting", wake_at=math.inf,
        steps=step(endless).steps,
    )  # fmt: skip

    results = await asyncio.gather(*(store.apply(t, T0 + 1) for t in transitions))

    assert results == ["running"] * 11 + ["waiting"] + ["running"] * 18
    row = await store.get_instance(endless.instance.id)
    assert row is not None and row.wake_at == math.inf


async def test_a_lost_lease_in_a_batch_is_that_writes_alone(store: PostgresStore) -> None:
    claims = await running(store, 30)
    stale = claims[3]
    transitions = [step(c) for c in claims]
    transitions[3] = Transition(stale.instance.id, "not-the-token", steps=step(stale).steps)

    results = await asyncio.gather(
        *(store.apply(t, T0 + 1) for t in transitions), return_exceptions=True
    )

    assert isinstance(results[3], LeaseLostError)
    assert results[:3] + results[4:] == ["running"] * 29
    assert await store.list_steps(stale.instance.id) == []


async def test_ends_and_steps_of_many_instances_mix_in_a_batch(store: PostgresStore) -> None:
    claims = await running(store, 30)
    ending = {c.instance.id for c in claims[::2]}

    def transition(claim: Claim) -> Transition:
        if claim.instance.id in ending:
            return Transition(claim.instance.id, claim.token, status="complete", output="7",
                              release=True)
        return step(claim)

    statuses = await asyncio.gather(*(store.apply(transition(c), T0 + 1) for c in claims))

    assert statuses == ["complete" if c.instance.id in ending else "running" for c in claims]
    rows = {r.id: r for r in await store.get_instances([c.instance.id for c in claims])}
    for claim in claims:
        row = rows[claim.instance.id]
        if claim.instance.id in ending:
            assert (row.status, row.output, row.lease_owner) == ("complete", "7", None)
        else:
            assert (row.status, row.lease_owner) == ("running", "w1")


async def test_closing_the_store_lets_the_writes_under_way_and_waiting_commit(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    claims = await running(store, 60)
    writes = [asyncio.ensure_future(store.apply(step(c), T0 + 1)) for c in claims]
    await asyncio.sleep(0)  # two writes are under way, the others wait for a batch

    await asyncio.wait_for(store.close(), timeout=30)

    assert await asyncio.wait_for(asyncio.gather(*writes), 10) == ["running"] * 60
    reopened = PostgresStore(postgres_url)
    await reopened.open()
    try:
        for claim in claims:
            assert len(await reopened.list_steps(claim.instance.id)) == 1
    finally:
        await reopened.close()


async def test_every_kind_of_transition_applies_in_a_batch(store: PostgresStore) -> None:
    claims = await running(store, 40)
    await store.send_event("i-002", "approved", '"yes"', T0)  # buffered before it waits
    kinds = ["logs", "children", "wait-buffered", "wait-empty", "end"]

    def transition(n: int, claim: Claim) -> Transition:
        i, token, kind = claim.instance.id, claim.token, kinds[n % len(kinds)]
        if kind == "logs":
            line = LogRow(i, token, 1, T0, "info", f"hello from {i}", "one", 1, '{"n": 1}')
            return Transition(i, token, steps=step(claim).steps, logs=[line])
        if kind == "children":
            child = NewInstance(f"{i}-child", "wf", "{}", T0, parent_id=i)
            return Transition(i, token, status="waiting", children=[child],
                              wake_on_children=[child.id], release=True)
        if kind.startswith("wait"):
            return Transition(i, token, status="waiting", wake_at=T0 + 100,
                              wake_on_events=["approved"], release=True)
        return Transition(i, token, status="complete", output="7", release=True)

    statuses = await asyncio.gather(
        *(store.apply(transition(n, c), T0 + 1) for n, c in enumerate(claims))
    )

    assert set(statuses) == {"running", "waiting", "complete"}
    for n, claim in enumerate(claims):
        i, kind = claim.instance.id, kinds[n % len(kinds)]
        row = await store.get_instance(i)
        assert row is not None, i
        if kind == "logs":
            [logged] = await store.list_logs(i)
            assert (logged.message, logged.fields) == (f"hello from {i}", '{"n": 1}')
            assert len(await store.list_steps(i)) == 1
        elif kind == "children":
            child = await store.get_instance(f"{i}-child")
            assert child is not None and (child.status, child.parent_id) == ("queued", i)
            assert row.status == "waiting" and row.lease_owner is None
        elif kind == "wait-buffered" and i == "i-002":
            assert (row.status, row.wake_at) == ("waiting", T0 + 1)  # runnable at once
        elif kind.startswith("wait"):
            assert (row.status, row.wake_at) == ("waiting", T0 + 100)
        else:
            assert (row.status, row.output, row.lease_owner) == ("complete", "7", None)
