"""Store conformance: prune and next_wake_at."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, new, row, start, step


async def test_prune_deletes_old_finished_instances_in_batches(store: Store) -> None:
    await store.create_instances([new(f"i{n}") for n in range(5)] + [new("new"), new("running")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    for n in range(5):
        i = f"i{n}"
        await store.send_event(i, "go", "1", T0)
        status: Any = "complete" if n % 2 else "errored"
        await store.apply(
            Transition(i, claims[i].token, steps=[step(i, "s", 0)], status=status), T0 + 1
        )
    await store.apply(Transition("new", claims["new"].token, status="complete"), T0 + 100)

    assert await store.prune([], T0 + 50, 10) == 0
    assert await store.prune(["complete"], T0 + 50, 10) == 2
    assert await store.prune(["errored", "complete"], T0 + 50, 2) == 2
    assert await store.prune(["errored", "complete"], T0 + 50, 2) == 1
    assert await store.prune(["errored", "complete"], T0 + 50, 2) == 0
    left = sorted(r.id for r in (await store.list_instances()).instances)
    assert left == ["new", "running"]
    for n in range(5):
        assert await store.list_steps(f"i{n}") == []
    # Their events are gone too: a new instance with a pruned id starts with none.
    claim = await start(store, "i0", at=T0 + 200)
    assert (
        await store.take_event(claim.token, "i0", "go", step("i0", "w", 0, kind="event"), T0 + 200)
        is None
    )


async def test_next_wake_at_is_the_earliest_runnable_time(store: Store) -> None:
    assert await store.next_wake_at() is None
    await store.create_instances([new("a", at=T0 + 10), new("b", at=T0 + 20), new("c", at=T0 + 5)])
    await store.pause("c", T0)
    assert await store.next_wake_at() == T0 + 10
    await claim_one(store, "a", now=T0 + 10, lease=100)
    assert await store.next_wake_at() == T0 + 20
    await claim_one(store, "b", now=T0 + 20, lease=30)
    assert await store.next_wake_at() == T0 + 50  # b's lease expiry


async def end(store: Store, instance_ids: list[str], status: Any, at: float) -> None:
    claims = {c.instance.id: c for c in await store.claim("w1", 10, at, at + LEASE)}
    for instance_id in instance_ids:
        await store.apply(Transition(instance_id, claims[instance_id].token, status=status), at)


async def test_prune_by_workflow_skips_instances_with_their_own_retention(store: Store) -> None:
    await store.create_instances(
        [
            new("a1", workflow="a"),
            new("b1", workflow="b"),
            new("c1", workflow="c"),
            replace(new("own", workflow="a"), retention=1000.0),
        ]
    )
    await end(store, ["a1", "b1", "c1", "own"], "complete", T0 + 1)

    assert await store.prune(["complete"], T0 + 50, 10, workflows=[]) == 0
    assert await store.prune(["complete"], T0 + 50, 10, workflows=["a"]) == 1
    assert await store.prune(["complete"], T0 + 50, 10, other_than=["b"]) == 1
    assert sorted(r.id for r in (await store.list_instances()).instances) == ["b1", "own"]


async def test_prune_own_retention_deletes_ended_instances_past_their_own(store: Store) -> None:
    await store.create_instances(
        [
            replace(new("short"), retention=10.0),
            replace(new("long"), retention=100.0),
            replace(new("running"), retention=1.0),
            new("none"),
        ]
    )
    await end(store, ["short", "long", "none"], "errored", T0 + 1)

    assert (await row(store, "short")).retention == 10.0
    assert await store.prune_own_retention(["errored"], T0 + 11, 10) == 0
    assert await store.prune_own_retention(["errored"], T0 + 12, 10) == 1
    assert await store.prune_own_retention(["complete"], T0 + 500, 10) == 0
    assert await store.prune_own_retention(["errored"], T0 + 500, 10) == 1
    assert sorted(r.id for r in (await store.list_instances()).instances) == ["none", "running"]
