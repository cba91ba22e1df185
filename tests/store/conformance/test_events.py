"""Store conformance: events."""

from __future__ import annotations

from dataclasses import replace

import pytest

from framework.errors import InstanceNotFoundError, InstanceStateError
from framework.store.base import StepRow, Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, new, row, start, step


async def test_take_event_is_fifo_per_type_and_journals_the_wait(store: Store) -> None:
    claim = await start(store, "a")
    await store.send_event("a", "a", '"a1"', T0 + 1)
    await store.send_event("a", "b", '"b1"', T0 + 2)
    await store.send_event("a", "a", '"a2"', T0 + 3)
    taken = []
    for n, kind in enumerate(["a", "a", "b", "a", "b"]):
        wait = step("a", f"w{kind}", n, kind="event", count=n + 1, detail={"type": kind})
        event = await store.take_event(claim.token, "a", kind, wait, T0 + 10)
        taken.append(None if event is None else (event.payload, event.created_at))
    assert taken == [('"a1"', T0 + 1), ('"a2"', T0 + 3), ('"b1"', T0 + 2), None, None]
    journal = await store.list_steps("a")
    assert [(s.name, s.count, s.status, s.output) for s in journal] == [
        ("wa", 1, "complete", '"a1"'),
        ("wa", 2, "complete", '"a2"'),
        ("wb", 3, "complete", '"b1"'),
    ]


async def test_take_event_resets_the_crash_count(store: Store) -> None:
    await start(store, "a")
    claim = await claim_one(store, "a", owner="w2", now=T0 + LEASE)
    assert claim.instance.crash_count == 1
    await store.send_event("a", "go", "1", T0 + LEASE)
    await store.take_event(claim.token, "a", "go", step("a", "w", 0, kind="event"), T0 + LEASE + 1)
    current = await row(store, "a")
    assert (current.crash_count, current.updated_at) == (0, T0 + LEASE + 1)


async def test_send_event_wakes_only_an_instance_waiting_for_that_type(store: Store) -> None:
    await store.create_instances([new("sleeping"), new("other-type"), new("match"), new("running")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}

    async def wait(i: str, rows: list[StepRow], wake_at: float | None) -> None:
        await store.apply(
            Transition(
                i, claims[i].token, steps=rows, status="waiting", wake_at=wake_at, release=True
            ),
            T0 + 1,
        )

    await wait("sleeping", [step("sleeping", "nap", 0, kind="sleep", status="waiting")], T0 + 99)
    await wait(
        "other-type",
        [step("other-type", "w", 0, kind="event", status="waiting", detail={"type": "other"})],
        None,
    )
    await wait(
        "match",
        [step("match", "w", 0, kind="event", status="waiting", detail={"type": "go"})],
        T0 + 500,
    )
    for i in ("sleeping", "other-type", "match", "running"):
        returned = await store.send_event(i, "go", '{"ok": true}', T0 + 2)
        assert returned == await row(store, i)
    assert (await row(store, "sleeping")).wake_at == T0 + 99
    assert (await row(store, "other-type")).wake_at is None
    matched = await row(store, "match")
    assert (matched.wake_at, matched.updated_at) == (T0 + 2, T0 + 2)
    assert (await row(store, "running")).wake_at == T0 + LEASE
    # The running instance finds its buffered event when it gets to the wait.
    taken = await store.take_event(
        claims["running"].token, "running", "go", step("running", "w", 0, kind="event"), T0 + 3
    )
    assert taken is not None and taken.payload == '{"ok": true}'


async def test_send_event_refuses_ended_and_missing_instances(store: Store) -> None:
    claim = await start(store, "a")
    await store.apply(Transition("a", claim.token, status="complete"), T0 + 1)
    with pytest.raises(InstanceStateError, match="complete"):
        await store.send_event("a", "go", "1", T0 + 2)
    with pytest.raises(InstanceNotFoundError):
        await store.send_event("missing", "go", "1", T0 + 2)


async def test_an_event_sent_to_a_paused_instance_is_buffered(store: Store) -> None:
    claim = await start(store, "a")
    rows = [step("a", "w", 0, kind="event", status="waiting", detail={"type": "go"})]
    await store.apply(
        Transition(
            "a", claim.token, steps=rows, status="waiting", release=True, wake_on_events=["go"]
        ),
        T0 + 1,
    )
    await store.pause("a", T0 + 2)
    paused = await store.send_event("a", "go", "1", T0 + 3)
    assert (paused.status, paused.wake_at) == ("paused", None)
    resumed = await store.resume("a", T0 + 4)
    again = await claim_one(store, "a", owner="w2", now=resumed.wake_at or 0)
    assert await store.take_event(
        again.token, "a", "go", replace(rows[0], status="complete"), T0 + 5
    )


async def test_an_instance_holds_at_most_so_many_events_it_has_not_taken(store: Store) -> None:
    from framework.store.base import MAX_BUFFERED_EVENTS

    claim = await start(store, "a")
    await store.create_instances([new("b")])
    for n in range(MAX_BUFFERED_EVENTS):
        await store.send_event("a", "note", f'"{n}"', T0 + 1)

    with pytest.raises(InstanceStateError, match="has not taken yet"):
        await store.send_event("a", "note", '"one too many"', T0 + 2)
    await store.send_event("b", "note", '"another instance is not full"', T0 + 2)

    wait = step("a", "w", 0, kind="event", detail={"type": "note"})
    taken = await store.take_event(claim.token, "a", "note", wait, T0 + 3)
    assert taken is not None and taken.payload == '"0"'
    await store.send_event("a", "note", '"room again"', T0 + 4)
    with pytest.raises(InstanceStateError):
        await store.send_event("a", "note", '"full again"', T0 + 5)
