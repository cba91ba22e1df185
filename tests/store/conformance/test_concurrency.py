"""Store conformance: claims under concurrency limits (``ConcurrencyLimit``).

A limited group never holds more leases than its limit, whoever claims; its due instances
are claimed earliest due, then earliest created first; a full group's instances neither
block other workflows nor count as due for ``next_wake_at``.
"""

from __future__ import annotations

import asyncio

from framework.store.base import ConcurrencyLimit, NewInstance, Store, Transition
from tests.store.conformance.helpers import LEASE, T0, new, row

ONE = [ConcurrencyLimit("limited", 1)]


def keyed(instance_id: str, key: str, *, at: float = T0) -> NewInstance:
    return NewInstance(instance_id, "limited", "{}", at, concurrency_key=key)


async def claimed_ids(
    store: Store, limits: list[ConcurrencyLimit], *, now: float = T0, limit: int = 10
) -> list[str]:
    claims = await store.claim("w1", limit, now, now + LEASE, limits)
    return [c.instance.id for c in claims]


async def test_a_limited_workflow_runs_at_most_its_limit_in_creation_order(store: Store) -> None:
    await store.create_instances(
        [new(f"l{n}", workflow="limited") for n in range(4)] + [new("free", at=T0 + 1)]
    )
    two = [ConcurrencyLimit("limited", 2)]
    assert await claimed_ids(store, two, now=T0 + 1) == ["l0", "l1", "free"]
    assert await claimed_ids(store, two, now=T0 + 1) == []
    held = (await store.claim("w2", 10, T0 + 1, T0 + 1 + LEASE, two)) == []
    assert held
    first = await row(store, "l0")
    assert first.status == "running"


async def test_a_finished_instance_frees_its_slot_for_the_next_in_line(store: Store) -> None:
    await store.create_instances([new(f"l{n}", workflow="limited", at=T0 + n) for n in range(3)])
    (claim,) = await store.claim("w1", 10, T0 + 5, T0 + 5 + LEASE, ONE)
    assert claim.instance.id == "l0"
    await store.apply(Transition("l0", claim.token, status="complete", output="1"), T0 + 6)
    assert await claimed_ids(store, ONE, now=T0 + 6) == ["l1"]


async def test_a_waiting_instance_holds_no_slot_and_queues_again_when_it_wakes(
    store: Store,
) -> None:
    await store.create_instances([new("sleeper", workflow="limited"), new("next", at=T0 + 1)])
    await store.create_instances([new("after", workflow="limited", at=T0 + 2)])
    (claim,) = await store.claim("w1", 1, T0 + 3, T0 + 3 + LEASE, ONE)
    assert claim.instance.id == "sleeper"
    sleep = Transition("sleeper", claim.token, status="waiting", wake_at=T0 + 10, release=True)
    await store.apply(sleep, T0 + 4)
    assert await claimed_ids(store, ONE, now=T0 + 4) == ["next", "after"]
    # Awake, the sleeper waits for the slot `after` holds, and no time wakes it meanwhile.
    assert await claimed_ids(store, ONE, now=T0 + 11) == []
    assert await store.next_wake_at(ONE, T0 + 11) == T0 + 4 + LEASE  # `after`'s lease expiry
    assert await store.next_wake_at() == T0 + 10


async def test_a_full_group_does_not_hold_back_other_workflows(store: Store) -> None:
    await store.create_instances([new(f"l{n}", workflow="limited") for n in range(50)])
    await store.create_instances([new(f"o{n}", at=T0 + 1) for n in range(3)])
    assert await claimed_ids(store, ONE, now=T0 + 1, limit=2) == ["l0", "o0"]
    assert await claimed_ids(store, ONE, now=T0 + 1, limit=2) == ["o1", "o2"]
    assert await claimed_ids(store, ONE, now=T0 + 1) == []
    assert await store.next_wake_at(ONE, T0 + 1) == T0 + 1 + LEASE


async def test_a_keyed_limit_counts_each_key_apart(store: Store) -> None:
    await store.create_instances(
        [
            keyed("a1", "a"),
            keyed("b1", "b", at=T0 + 1),
            keyed("a2", "a", at=T0 + 2),
            keyed("b2", "b", at=T0 + 3),
            keyed("c1", "c", at=T0 + 4),
        ]
    )
    per_key = [ConcurrencyLimit("limited", 1, keyed=True)]
    assert await claimed_ids(store, per_key, now=T0 + 5) == ["a1", "b1", "c1"]
    assert await claimed_ids(store, per_key, now=T0 + 5) == []
    # The same instances limited as a whole: one at a time, whatever their keys.
    assert await claimed_ids(store, ONE, now=T0 + 5) == []


async def test_the_reclaim_of_a_dead_workers_instance_keeps_its_slot(store: Store) -> None:
    await store.create_instances([new("l0", workflow="limited"), new("l1", workflow="limited")])
    assert await claimed_ids(store, ONE, now=T0) == ["l0"]
    expired = T0 + LEASE
    claims = await store.claim("w2", 10, expired, expired + LEASE, ONE)
    assert [(c.instance.id, c.crashed) for c in claims] == [("l0", True)]


async def test_racing_claimers_never_exceed_the_limit(store: Store, other_store: Store) -> None:
    await store.create_instances([new(f"l{n}", workflow="limited") for n in range(20)])
    three = [ConcurrencyLimit("limited", 3)]
    results = await asyncio.gather(
        *[
            (store if n % 2 else other_store).claim(f"w{n}", 2, T0, T0 + LEASE, three)
            for n in range(8)
        ]
    )
    claimed = sorted(c.instance.id for claims in results for c in claims)
    assert claimed == ["l0", "l1", "l2"]
