"""Store conformance: apply, status by status."""

from __future__ import annotations

from dataclasses import replace

import pytest

from framework.errors import LeaseLostError
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, is_due, new, row, start, step


async def test_apply_without_a_status_journals_and_keeps_the_lease(store: Store) -> None:
    claim = await start(store, "a")
    first = step("a", "s", 0, status="waiting", attempts=1, wake_at=T0 + 9, error='{"e": 1}')
    assert (
        await store.apply(Transition("a", claim.token, steps=[first], version="v1"), T0 + 1)
        == "running"
    )
    done = replace(first, status="complete", attempts=2, wake_at=None, error=None, output='"ok"')
    assert (
        await store.apply(Transition("a", claim.token, steps=[done], version="v2"), T0 + 2)
        == "running"
    )
    current = await row(store, "a")
    assert (current.status, current.lease_owner, current.wake_at) == ("running", "w1", T0 + LEASE)
    assert current.version == "v1"  # (whether a mid-run journal write bumps updated_at is open)
    assert await store.list_steps("a") == [done]


async def test_apply_queued_releases_for_later_or_now(store: Store) -> None:
    claim = await start(store, "a")
    later = Transition("a", claim.token, status="queued", wake_at=T0 + 10, release=True)
    assert await store.apply(later, T0 + 1) == "queued"
    current = await row(store, "a")
    assert (current.status, current.wake_at, current.lease_owner) == ("queued", T0 + 10, None)
    assert await store.claim("w2", 10, T0 + 9, T0 + 9 + LEASE) == []
    again = await claim_one(store, "a", owner="w2", now=T0 + 10)
    now = Transition("a", again.token, status="queued", release=True)
    await store.apply(now, T0 + 11)
    assert (await row(store, "a")).wake_at == T0 + 11


async def test_apply_waiting_on_a_timer_or_a_signal(store: Store) -> None:
    await store.create_instances([new("timer"), new("signal")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    timer = Transition(
        "timer",
        claims["timer"].token,
        status="waiting",
        wake_at=T0 + 60,
        release=True,
        steps=[step("timer", "nap", 0, kind="sleep", status="waiting", wake_at=T0 + 60)],
    )
    assert await store.apply(timer, T0 + 1) == "waiting"
    signal = Transition(
        "signal", claims["signal"].token, status="waiting", release=True, wake_on_events=["go"]
    )
    assert await store.apply(signal, T0 + 1) == "waiting"
    t, s = await row(store, "timer"), await row(store, "signal")
    assert (t.status, t.wake_at, t.lease_owner) == ("waiting", T0 + 60, None)
    assert (s.status, s.wake_at, s.lease_owner) == ("waiting", None, None)
    assert await store.next_wake_at() == T0 + 60
    assert [c.instance.id for c in await store.claim("w2", 10, T0 + 60, T0 + 90)] == ["timer"]


async def test_apply_complete_errored_and_held(store: Store) -> None:
    await store.create_instances([new("ok"), new("bad"), new("held")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    assert (
        await store.apply(
            Transition(
                "ok",
                claims["ok"].token,
                status="complete",
                output='"out"',
                steps=[step("ok", "s", 0)],
            ),
            T0 + 1,
        )
        == "complete"
    )
    assert (
        await store.apply(
            Transition(
                "bad", claims["bad"].token, status="errored", error='{"name": "E"}', release=True
            ),
            T0 + 1,
        )
        == "errored"
    )
    assert (
        await store.apply(
            Transition(
                "held", claims["held"].token, status="paused", error='{"name": "N"}', release=True
            ),
            T0 + 1,
        )
        == "paused"
    )
    ok, bad, held = await row(store, "ok"), await row(store, "bad"), await row(store, "held")
    assert (ok.status, ok.output, ok.wake_at, ok.lease_owner) == ("complete", '"out"', None, None)
    assert (bad.status, bad.error, bad.wake_at, bad.lease_owner) == (
        "errored",
        '{"name": "E"}',
        None,
        None,
    )
    assert (held.status, held.error, held.wake_at, held.lease_owner) == (
        "paused",
        '{"name": "N"}',
        None,
        None,
    )
    with pytest.raises(LeaseLostError):  # a finished instance's lease is gone
        await store.apply(Transition("ok", claims["ok"].token), T0 + 2)
    assert await store.claim("w2", 10, T0 + 100, T0 + 200) == []


async def test_apply_creates_children_once_and_queued(store: Store) -> None:
    claim = await start(store, "p")
    kids = [
        new("p:k:1", parent="p", workflow="kid", version="k1"),
        new("p:k:2", parent="p", workflow="kid"),
    ]
    rows = [step("p", "kid", 0, kind="child", status="waiting", detail={"child_id": "p:k:1"})]
    await store.apply(Transition("p", claim.token, steps=rows, children=kids), T0 + 1)
    await store.apply(
        Transition("p", claim.token, children=[replace(kids[0], params='"changed"')]), T0 + 2
    )
    children = sorted((await store.list_instances(parent_id="p")).instances, key=lambda r: r.id)
    assert [(c.id, c.status, c.parent_id, c.workflow, c.params) for c in children] == [
        ("p:k:1", "queued", "p", "kid", "{}"),
        ("p:k:2", "queued", "p", "kid", "{}"),
    ]
    assert children[0].version == "k1"
    assert children[0].wake_at == T0 + 1 and children[0].created_at == T0
    claimed = {c.instance.id for c in await store.claim("w2", 10, T0 + 1, T0 + 30)}
    assert claimed == {"p:k:1", "p:k:2"}


async def test_wake_on_events_makes_a_waiting_instance_runnable_at_once(store: Store) -> None:
    claim = await start(store, "a")
    await store.send_event("a", "go", '"early"', T0)  # buffered while the instance runs
    wait = [step("a", "w", 0, kind="event", status="waiting", detail={"type": "go"})]
    waiting = Transition(
        "a",
        claim.token,
        steps=wait,
        status="waiting",
        wake_at=T0 + 3600,
        wake_on_events=["go"],
        release=True,
    )
    assert await store.apply(waiting, T0 + 1) == "waiting"
    assert (await row(store, "a")).wake_at == T0 + 1
    again = await claim_one(store, "a", owner="w2", now=T0 + 1)
    taken = await store.take_event(
        again.token, "a", "go", replace(wait[0], status="complete"), T0 + 2
    )
    assert taken is not None and taken.payload == '"early"'
    # The event is consumed: the next wait on that type sleeps until its timeout.
    second = [step("a", "w", 1, kind="event", status="waiting", count=2, detail={"type": "go"})]
    await store.apply(
        Transition(
            "a",
            again.token,
            steps=second,
            status="waiting",
            wake_at=T0 + 60,
            wake_on_events=["go", "other"],
            release=True,
        ),
        T0 + 3,
    )
    assert (await row(store, "a")).wake_at == T0 + 60


async def test_wake_on_children_makes_a_waiting_parent_runnable_at_once(store: Store) -> None:
    await store.create_instances([new("p"), new("k", parent="p"), new("k2", parent="p")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    await store.apply(Transition("k", claims["k"].token, status="complete", output="1"), T0 + 1)
    rows = [step("p", "kid", 0, kind="child", status="waiting", detail={"child_id": "k"})]
    await store.apply(
        Transition(
            "p",
            claims["p"].token,
            steps=rows,
            status="waiting",
            wake_on_children=["k2"],
            release=True,
        ),
        T0 + 2,
    )
    assert (await row(store, "p")).wake_at is None  # k2 still runs
    assert not await is_due(store, "p", T0 + 1000)
    # A parent waiting on an ended child wakes at once.
    await store.create_instances([new("q"), new("qk", parent="q")])
    more = {c.instance.id: c for c in await store.claim("w1", 10, T0 + 3, T0 + 3 + LEASE)}
    await store.apply(Transition("qk", more["qk"].token, status="errored", error="{}"), T0 + 4)
    await store.apply(
        Transition("q", more["q"].token, status="waiting", wake_on_children=["qk"], release=True),
        T0 + 5,
    )
    assert (await row(store, "q")).wake_at == T0 + 5


async def test_a_finished_child_wakes_only_a_parent_waiting_for_it(store: Store) -> None:
    await store.create_instances(
        [new("p"), new("k", parent="p"), new("other", parent="p"), new("lone", parent="gone")]
    )
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    rows = [step("p", "kid", 0, kind="child", status="waiting", detail={"child_id": "k"})]
    await store.apply(
        Transition(
            "p",
            claims["p"].token,
            steps=rows,
            status="waiting",
            wake_on_children=["k"],
            release=True,
        ),
        T0 + 1,
    )
    assert (await row(store, "p")).wake_at is None
    await store.apply(Transition("other", claims["other"].token, status="complete"), T0 + 2)
    assert (await row(store, "p")).wake_at is None  # not the child it waits for
    await store.apply(Transition("lone", claims["lone"].token, status="complete"), T0 + 2)
    await store.apply(Transition("k", claims["k"].token, status="complete", output="1"), T0 + 3)
    assert (await row(store, "p")).wake_at == T0 + 3


async def test_a_paused_parent_is_not_woken_by_its_child(store: Store) -> None:
    await store.create_instances([new("p"), new("k", parent="p")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    rows = [step("p", "kid", 0, kind="child", status="waiting", detail={"child_id": "k"})]
    await store.apply(
        Transition(
            "p",
            claims["p"].token,
            steps=rows,
            status="waiting",
            wake_on_children=["k"],
            release=True,
        ),
        T0 + 1,
    )
    await store.pause("p", T0 + 2)
    await store.apply(Transition("k", claims["k"].token, status="complete"), T0 + 3)
    assert (await row(store, "p")).wake_at is None
    resumed = await store.resume("p", T0 + 4)
    assert (resumed.status, resumed.wake_at) == ("queued", T0 + 4)
