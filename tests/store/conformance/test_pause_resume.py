"""Store conformance: pause and resume."""

from __future__ import annotations

import pytest

from framework.errors import InstanceNotFoundError, InstanceStateError
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, new, row, start, step


async def test_pause_and_resume_an_idle_instance(store: Store) -> None:
    await store.create_instances([new("a", at=T0 + 50)])
    paused = await store.pause("a", T0 + 1)
    assert (paused.status, paused.wake_at, paused.updated_at) == ("paused", None, T0 + 1)
    assert await store.claim("w1", 10, T0 + 100, T0 + 130) == []
    assert await store.next_wake_at() is None
    resumed = await store.resume("a", T0 + 2)
    assert (resumed.status, resumed.wake_at, resumed.updated_at) == ("queued", T0 + 2, T0 + 2)
    with pytest.raises(InstanceStateError, match="not paused"):
        await store.resume("a", T0 + 3)
    await store.pause("a", T0 + 3)
    with pytest.raises(InstanceStateError, match="cannot pause"):
        await store.pause("a", T0 + 4)
    with pytest.raises(InstanceNotFoundError):
        await store.pause("missing", T0)
    with pytest.raises(InstanceNotFoundError):
        await store.resume("missing", T0)


async def test_pause_while_held_lets_the_holder_reach_a_step_boundary(store: Store) -> None:
    claim = await start(store, "a")
    paused = await store.pause("a", T0 + 1)
    assert (paused.status, paused.lease_owner, paused.wake_at) == ("paused", "w1", T0 + LEASE)
    assert await store.claim("w2", 10, T0 + 100, T0 + 130) == []  # not claimable, even expired
    # The holder still journals its step, and learns the instance is paused.
    assert (
        await store.apply(Transition("a", claim.token, steps=[step("a", "s", 0)]), T0 + 2)
        == "paused"
    )
    # A resume before the holder stopped hands the instance back to it.
    resumed = await store.resume("a", T0 + 3)
    assert (resumed.status, resumed.lease_owner, resumed.wake_at) == ("running", "w1", T0 + LEASE)
    await store.pause("a", T0 + 4)
    # The holder stops: the instance stays paused, released, with no wake time.
    stop = Transition("a", claim.token, status="queued", wake_at=T0 + 5, release=True)
    assert await store.apply(stop, T0 + 5) == "paused"
    current = await row(store, "a")
    assert (current.status, current.lease_owner, current.wake_at) == ("paused", None, None)
    assert (await store.resume("a", T0 + 6)).status == "queued"


async def test_a_paused_instance_can_still_end(store: Store) -> None:
    claim = await start(store, "a")
    await store.pause("a", T0 + 1)
    assert (
        await store.apply(Transition("a", claim.token, status="complete", output="1"), T0 + 2)
        == "complete"
    )
    current = await row(store, "a")
    assert (current.status, current.wake_at, current.lease_owner) == ("complete", None, None)


async def test_a_paused_instance_whose_holder_died_is_reclaimed_after_resume(store: Store) -> None:
    await start(store, "a")
    await store.pause("a", T0 + 1)
    resumed = await store.resume("a", T0 + LEASE + 5)
    assert resumed.status == "running"
    again = await claim_one(store, "a", owner="w2", now=T0 + LEASE + 5)
    assert again.crashed and again.instance.crash_count == 1
