"""Store conformance: what instances wait for (``list_waiting_steps``) and ``retry_now``."""

from __future__ import annotations

import pytest

from framework.errors import InstanceNotFoundError, InstanceStateError
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import T0, claim_one, row, start, step


async def wait_on(store: Store, instance_id: str, *steps_: object, wake_at: float | None) -> None:
    claim = await start(store, instance_id)
    transition = Transition(
        instance_id, claim.token, steps=list(steps_), status="waiting", wake_at=wake_at,
        release=True,
    )  # fmt: skip
    assert await store.apply(transition, T0 + 1) == "waiting"


async def test_waiting_steps_of_several_instances_in_one_read(store: Store) -> None:
    retry = step("a", "charge", 1, status="waiting", attempts=1, wake_at=T0 + 60, error="{}")
    await wait_on(store, "a", step("a", "load", 0), retry, wake_at=T0 + 60)
    event = step("b", "approval", 0, kind="event", status="waiting", detail={"type": "ok"})
    await wait_on(store, "b", event, wake_at=None)
    waiting = await store.list_waiting_steps(["a", "b", "missing"])
    assert sorted((s.instance_id, s.name, s.kind) for s in waiting) == [
        ("a", "charge", "do"),
        ("b", "approval", "event"),
    ]
    assert await store.list_waiting_steps([]) == []


async def test_retry_now_makes_the_retry_and_the_instance_due(store: Store) -> None:
    retry = step("a", "charge", 0, status="waiting", attempts=1, wake_at=T0 + 600, error="{}")
    await wait_on(store, "a", retry, wake_at=T0 + 600)
    assert await store.claim("w2", 10, T0 + 5, T0 + 35) == []
    done = await store.retry_now("a", T0 + 5)
    assert (done.status, done.wake_at, done.updated_at) == ("waiting", T0 + 5, T0 + 5)
    [charge] = await store.list_steps("a")
    assert (charge.status, charge.wake_at, charge.attempts) == ("waiting", T0 + 5, 1)
    claim = await claim_one(store, "a", owner="w2", now=T0 + 5)
    assert [s.wake_at for s in claim.steps] == [T0 + 5]


async def test_retry_now_is_refused_without_a_retry_wait(store: Store) -> None:
    sleep = step("a", "nap", 0, kind="sleep", status="waiting", wake_at=T0 + 600)
    await wait_on(store, "a", sleep, wake_at=T0 + 600)
    with pytest.raises(InstanceStateError, match="waits for a timer, not for a retry"):
        await store.retry_now("a", T0 + 5)
    assert (await row(store, "a")).wake_at == T0 + 600  # untouched
    await start(store, "b")
    with pytest.raises(InstanceStateError, match="is running: only a waiting instance"):
        await store.retry_now("b", T0 + 5)
    with pytest.raises(InstanceNotFoundError):
        await store.retry_now("missing", T0)
