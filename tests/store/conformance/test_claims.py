"""Store conformance: claims, leases and fencing."""

from __future__ import annotations

import json

import pytest

from framework.errors import LeaseLostError
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, new, row, start, step


async def test_claim_takes_due_instances_by_wake_time_up_to_the_limit(store: Store) -> None:
    await store.create_instances(
        [new("late", at=T0 + 2), new("early", at=T0), new("future", at=T0 + 100)]
    )
    assert await store.claim("w1", 10, T0 - 1, T0 + LEASE) == []
    first = await store.claim("w1", 1, T0 + 5, T0 + 5 + LEASE)
    assert [c.instance.id for c in first] == ["early"]
    claimed = first[0].instance
    assert (claimed.status, claimed.lease_owner, claimed.wake_at, claimed.updated_at) == (
        "running",
        "w1",
        T0 + 5 + LEASE,
        T0 + 5,
    )
    assert first[0].crashed is False and first[0].steps == []
    second = await store.claim("w2", 10, T0 + 5, T0 + 5 + LEASE)
    assert [c.instance.id for c in second] == ["late"]
    assert await store.claim("w3", 10, T0 + 5, T0 + 5 + LEASE) == []
    assert first[0].token != second[0].token


async def test_a_claim_brings_the_journal_in_order(store: Store) -> None:
    claim = await start(store, "a")
    rows = [
        step("a", "second", 1, output='"2"'),
        step("a", "first", 0, output='"1"', attempts=2, started_at=T0, finished_at=T0 + 0.5),
    ]
    await store.apply(
        Transition("a", claim.token, steps=rows, status="queued", release=True), T0 + 1
    )
    again = await claim_one(store, "a", owner="w2", now=T0 + 1)
    assert [(s.name, s.output) for s in again.steps] == [("first", '"1"'), ("second", '"2"')]
    assert again.steps[0] == rows[1]
    assert again.crashed is False


async def test_a_claim_of_an_expired_lease_counts_a_crash(store: Store) -> None:
    first = await start(store, "a")
    assert await store.claim("w2", 10, T0 + LEASE - 1, T0 + 2 * LEASE) == []
    second = await claim_one(store, "a", owner="w2", now=T0 + LEASE)
    assert second.crashed is True
    assert second.instance.crash_count == 1
    assert second.instance.lease_owner == "w2"
    assert json.loads(second.instance.crashes or "null") == [
        {"worker": "w1", "lease_expired_at": T0 + LEASE}
    ]
    assert second.token != first.token
    with pytest.raises(LeaseLostError):
        await store.apply(Transition("a", first.token, steps=[step("a", "s", 0)]), T0 + LEASE)
    assert await store.list_steps("a") == []
    # A journal write by the new holder resets the count of crashes in a row.
    await store.apply(Transition("a", second.token, steps=[step("a", "s", 0)]), T0 + LEASE + 1)
    assert (await row(store, "a")).crash_count == 0


async def test_the_crash_history_keeps_the_last_twenty(store: Store) -> None:
    await start(store, "a")
    now = T0
    for n in range(22):
        now += LEASE
        claim = await claim_one(store, "a", owner=f"w{n + 2}", now=now)
        assert claim.crashed
    current = await row(store, "a")
    assert current.crash_count == 22
    history = json.loads(current.crashes or "[]")
    assert len(history) == 20
    assert history[-1] == {"worker": "w22", "lease_expired_at": now}
    assert history[0]["worker"] == "w3"


async def test_apply_and_take_event_are_fenced_on_the_token(store: Store) -> None:
    claim = await start(store, "a")
    await store.send_event("a", "go", '"x"', T0)
    with pytest.raises(LeaseLostError):
        await store.apply(Transition("a", "forged", steps=[step("a", "s", 0)]), T0)
    with pytest.raises(LeaseLostError):
        await store.take_event("forged", "a", "go", step("a", "w", 0, kind="event"), T0)
    with pytest.raises(LeaseLostError):
        await store.apply(Transition("missing", claim.token), T0)
    assert await store.list_steps("a") == []
    taken = await store.take_event(claim.token, "a", "go", step("a", "w", 0, kind="event"), T0)
    assert taken is not None and taken.payload == '"x"'


async def test_heartbeat_extends_only_the_owners_leases(store: Store) -> None:
    await store.create_instances([new("a"), new("b"), new("c"), new("d")])
    claims = {c.instance.id: c for c in await store.claim("w1", 2, T0, T0 + LEASE)}
    other = await store.claim("w2", 2, T0, T0 + LEASE)
    assert set(claims) == {"a", "b"} and {c.instance.id for c in other} == {"c", "d"}
    await store.pause("b", T0 + 1)  # paused while held: its lease still runs
    held = await store.heartbeat("w1", ["a", "b", "c"], T0 + 50)
    assert held == {"a", "b"}
    assert (await row(store, "a")).wake_at == T0 + 50
    assert (await row(store, "b")).wake_at == T0 + 50
    assert (await row(store, "c")).wake_at == T0 + LEASE
    await store.apply(Transition("a", claims["a"].token, status="complete", output="1"), T0 + 2)
    assert await store.heartbeat("w1", ["a", "b"], T0 + 60) == {"b"}
    assert await store.heartbeat("nobody", ["b"], T0 + 60) == set()
    assert await store.heartbeat("w1", [], T0 + 60) == set()


async def test_heartbeat_lets_a_lease_the_worker_no_longer_runs_expire(store: Store) -> None:
    await store.create_instances([new("a"), new("b")])
    await store.claim("w1", 2, T0, T0 + LEASE)
    assert await store.heartbeat("w1", ["a"], T0 + 50) == {"a"}
    assert (await row(store, "a")).wake_at == T0 + 50
    assert (await row(store, "b")).wake_at == T0 + LEASE
    (reclaimed,) = await store.claim("w2", 5, T0 + LEASE + 1, T0 + LEASE + 31)
    assert (reclaimed.instance.id, reclaimed.crashed) == ("b", True)
