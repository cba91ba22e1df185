"""Store conformance: claims, leases and fencing."""

from __future__ import annotations

import json

import pytest

from framework.errors import LeaseLostError
from framework.store.base import ConcurrencyLimit, Handoff, Store, Transition, newest_share
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


async def test_a_claim_of_a_backlog_takes_the_newest_due_and_the_oldest(store: Store) -> None:
    """Half of a claim goes to the most recently due, the rest to the longest due: a timer
    falling due during a backlog is not kept waiting behind all of it."""
    await store.create_instances([new(f"due{n}", at=T0 + n) for n in range(7)])
    first = await store.claim("w1", 4, T0 + 10, T0 + 10 + LEASE)
    assert [c.instance.id for c in first] == ["due0", "due1", "due5", "due6"]
    # A claim of one goes to either end by the parity of its millisecond (newest_share).
    odd = await store.claim("w1", 1, T0 + 10.001, T0 + 10 + LEASE)
    assert [c.instance.id for c in odd] == ["due4"]
    even = await store.claim("w1", 1, T0 + 10.002, T0 + 10 + LEASE)
    assert [c.instance.id for c in even] == ["due2"]
    assert [c.instance.id for c in await store.claim("w1", 2, T0 + 10, T0 + LEASE)] == ["due3"]


async def test_a_claim_since_takes_only_what_fell_due_from_then(store: Store) -> None:
    """A worker's headroom claim: a timer due after its last ordinary claim looked, not the
    backlog due before it."""
    await store.create_instances([new(f"old{n}", at=T0 + n) for n in range(5)])
    await store.create_instances([new("fresh", at=T0 + 20), new("later", at=T0 + 30)])
    assert await store.next_wake_at() == T0
    assert await store.next_wake_at(since=T0 + 10) == T0 + 20
    assert await store.next_wake_at(since=T0 + 31) is None
    taken = await store.claim("w1", 3, T0 + 25, T0 + 25 + LEASE, since=T0 + 10)
    assert [c.instance.id for c in taken] == ["fresh"]
    assert await store.claim("w1", 3, T0 + 25, T0 + 25 + LEASE, since=T0 + 10) == []
    with pytest.raises(ValueError):
        await store.claim("w1", 1, T0 + 25, T0 + LEASE, [ConcurrencyLimit("wf", 1)], T0)
    rest = await store.claim("w1", 10, T0 + 25, T0 + 25 + LEASE)
    assert sorted(c.instance.id for c in rest) == [f"old{n}" for n in range(5)]


def test_newest_share_is_half_and_the_odd_one_alternates() -> None:
    assert [newest_share(n, T0) for n in (0, 1, 2, 3, 4, 100)] == [0, 0, 1, 1, 2, 50]
    assert [newest_share(n, T0 + 0.001) for n in (0, 1, 2, 3, 4, 100)] == [0, 1, 1, 2, 2, 50]


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
    await store.create_instances([new("a"), new("b")])
    claims = {c.instance.id: c for c in await store.claim("w1", 2, T0, T0 + LEASE)}
    await store.create_instances([new("c"), new("d")])  # due as a and b: which half a
    other = await store.claim("w2", 2, T0, T0 + LEASE)  # claim takes of ties is the store's
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


async def test_each_claim_counts_a_run_and_nothing_else_does(store: Store) -> None:
    await store.create_instances([new("a")])
    assert (await row(store, "a")).runs == 0
    first = await claim_one(store, "a")
    await store.heartbeat("w1", ["a"], T0 + LEASE)
    await store.apply(Transition("a", first.token, steps=[step("a", "s", 0)]), T0 + 1)
    await store.apply(
        Transition("a", first.token, status="waiting", wake_at=T0 + 5, release=True), T0 + 2
    )
    assert (await row(store, "a")).runs == 1
    await claim_one(store, "a", owner="w2", now=T0 + 5)  # woken from its wait
    await claim_one(store, "a", owner="w3", now=T0 + 5 + LEASE)  # its worker died
    assert (await row(store, "a")).runs == 3
    await store.restart("a", T0 + 100, None)
    assert (await row(store, "a")).runs == 3


async def test_a_handoff_claims_new_instances_in_the_creating_transaction(store: Store) -> None:
    await store.create_instances([new("old")])
    handoff = Handoff("w1", 2, T0 + 1, T0 + 1 + LEASE)
    outcomes = await store.create_instances([new("a"), new("b"), new("c"), new("old")], handoff)
    assert [(o.row.id, o.created) for o in outcomes] == [
        ("a", True),
        ("b", True),
        ("c", True),
        ("old", False),
    ]
    claims = {o.row.id: o.claim for o in outcomes}
    assert claims["old"] is None and claims["c"] is None  # an existing id, and past the limit
    a = claims["a"]
    assert a is not None and claims["b"] is not None
    assert (a.instance.status, a.instance.lease_owner, a.instance.wake_at) == (
        "running",
        "w1",
        T0 + 1 + LEASE,
    )
    assert a.steps == [] and a.crashed is False
    assert ((await row(store, "b")).lease_owner, (await row(store, "b")).runs) == ("w1", 1)
    # The claims hold: their tokens fence writes as a claim's do; the rest is claimable.
    status = await store.apply(Transition("a", a.token, status="complete", output="1"), T0 + 2)
    assert status == "complete"
    others = await store.claim("w2", 10, T0 + 2, T0 + 2 + LEASE)
    assert sorted(c.instance.id for c in others) == ["c", "old"]
    with pytest.raises(LeaseLostError):
        await store.apply(Transition("b", "not-its-token", status="complete"), T0 + 2)


async def test_a_handoff_never_claims_an_id_that_existed(store: Store) -> None:
    await store.create_instances([new("x")])
    (again,) = await store.create_instances([new("x")], Handoff("w1", 5, T0, T0 + LEASE))
    assert (again.created, again.claim) == (False, None)
    assert (await row(store, "x")).status == "queued"
