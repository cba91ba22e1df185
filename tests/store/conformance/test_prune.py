"""Store conformance: prune and next_wake_at."""

from __future__ import annotations

from typing import Any

from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, new, start, step


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
