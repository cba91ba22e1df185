"""The store conformance suite: every protocol operation and its semantics, on both stores.

Each test runs once on SQLite and once on PostgreSQL (which skips without
``FW_TEST_DATABASE_URL``). Times are explicit: the store never reads a clock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from framework.errors import (
    InstanceIdConflictError,
    InstanceNotFoundError,
    InstanceStateError,
    LeaseLostError,
    StoreError,
)
from framework.store import open_store
from framework.store.base import (
    Claim,
    InstanceRow,
    NewInstance,
    StepRow,
    Store,
    Transition,
)

T0 = 1_000_000.0
LEASE = 30.0
REPO = Path(__file__).resolve().parents[2]


# Helpers.


def new(
    instance_id: str,
    *,
    at: float = T0,
    workflow: str = "wf",
    parent: str | None = None,
    params: str = "{}",
    version: str | None = None,
) -> NewInstance:
    return NewInstance(instance_id, workflow, params, at, version, parent)


def step(
    instance_id: str,
    name: str,
    seq: int,
    *,
    kind: Any = "do",
    status: Any = "complete",
    count: int = 1,
    detail: dict[str, Any] | None = None,
    **fields: Any,
) -> StepRow:
    return StepRow(
        instance_id,
        name,
        count,
        seq,
        kind,
        status,
        detail=None if detail is None else json.dumps(detail),
        **fields,
    )


async def claim_one(
    store: Store, instance_id: str, *, owner: str = "w1", now: float = T0, lease: float = LEASE
) -> Claim:
    claims = await store.claim(owner, 10, now, now + lease)
    matching = [c for c in claims if c.instance.id == instance_id]
    assert matching, f"{instance_id} was not claimed; got {[c.instance.id for c in claims]}"
    return matching[0]


async def row(store: Store, instance_id: str) -> InstanceRow:
    found = await store.get_instance(instance_id)
    assert found is not None
    return found


async def start(
    store: Store, instance_id: str, *, at: float = T0, owner: str = "w1", parent: str | None = None
) -> Claim:
    await store.create_instances([new(instance_id, at=at, parent=parent)])
    return await claim_one(store, instance_id, owner=owner, now=at)


async def is_due(store: Store, instance_id: str, now: float) -> bool:
    current = await row(store, instance_id)
    return (
        current.wake_at is not None
        and current.wake_at <= now
        and current.status
        in (
            "queued",
            "waiting",
            "running",
        )
    )


# Creating and reading instances.


async def test_create_returns_queued_rows_in_order(store: Store) -> None:
    outcomes = await store.create_instances(
        [new("b", params='{"n": 1}', version="v1"), new("a", at=T0 + 1, parent="p")]
    )
    assert [(o.row.id, o.created) for o in outcomes] == [("b", True), ("a", True)]
    b, a = (o.row for o in outcomes)
    assert (b.status, b.params, b.version, b.workflow) == ("queued", '{"n": 1}', "v1", "wf")
    assert (b.created_at, b.updated_at, b.wake_at) == (T0, T0, T0)
    assert (b.output, b.error, b.lease_owner, b.crash_count, b.crashes, b.generation) == (
        None,
        None,
        None,
        0,
        None,
        0,
    )
    assert a.parent_id == "p" and a.seq > b.seq


async def test_create_is_idempotent_and_keeps_the_existing_instance(store: Store) -> None:
    (first,) = await store.create_instances([new("x", params='"one"')])
    again = await store.create_instances([new("x", params='"two"', at=T0 + 5), new("y")])
    assert again[0].row == first.row
    assert (first.created, again[0].created) == (True, False)
    assert (again[1].row.id, again[1].created) == ("y", True)
    assert (await row(store, "x")).params == '"one"'


async def test_create_with_an_empty_batch_stores_nothing(store: Store) -> None:
    assert await store.create_instances([]) == []
    assert (await store.list_instances()).instances == []


async def test_a_batch_is_atomic(store: Store) -> None:
    broken = NewInstance("bad", None, "{}", T0)  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - each store names the constraint its own way
        await store.create_instances([new("ok-1"), broken, new("ok-2")])
    assert await store.get_instances(["ok-1", "ok-2", "bad"]) == []
    assert len(await store.create_instances([new("ok-1")])) == 1


async def test_an_id_of_another_workflow_refuses_the_whole_batch(store: Store) -> None:
    await store.create_instances([new("taken", workflow="other")])

    with pytest.raises(InstanceIdConflictError) as refused:
        await store.create_instances([new("a"), new("b"), new("taken"), new("c")])

    assert (refused.value.index, refused.value.instance_id) == (2, "taken")
    assert refused.value.workflow == "other"
    assert str(refused.value) == (
        "id 'taken' (item 2 of the batch) already belongs to an instance of workflow 'other'; "
        "nothing was stored"
    )
    assert [r.id for r in (await store.list_instances()).instances] == ["taken"]
    assert (await row(store, "taken")).workflow == "other"
    claims = await store.claim("w1", 10, T0, T0 + LEASE)
    assert [c.instance.id for c in claims] == ["taken"]


async def test_an_id_given_twice_in_one_batch_refuses_it(store: Store) -> None:
    with pytest.raises(InstanceIdConflictError) as refused:
        await store.create_instances([new("a"), new("dup", params="1"), new("dup", params="2")])

    assert (refused.value.index, refused.value.first_index) == (2, 1)
    assert "id 'dup' is given twice in one batch (items 1 and 2)" in str(refused.value)
    assert (await store.list_instances()).instances == []


async def test_racing_creators_of_one_id_see_exactly_one_created(
    store: Store, other_store: Store
) -> None:
    outcomes = await asyncio.gather(
        *(
            (store if n % 2 else other_store).create_instances([new("race", params=str(n))])
            for n in range(20)
        )
    )

    created = [n for n, (outcome,) in enumerate(outcomes) if outcome.created]
    assert len(created) == 1
    assert (await row(store, "race")).params == str(created[0])
    assert {outcome.row.params for (outcome,) in outcomes} == {str(created[0])}


async def test_get_instance_and_get_instances(store: Store) -> None:
    await store.create_instances([new("a"), new("b"), new("c")])
    assert await store.get_instance("missing") is None
    assert (await row(store, "b")).id == "b"
    found = await store.get_instances(["c", "a", "missing"])
    assert sorted(r.id for r in found) == ["a", "c"]
    assert await store.get_instances([]) == []


async def test_list_is_newest_first_and_paginates(store: Store) -> None:
    await store.create_instances([new(f"i{n}") for n in range(7)])
    seen: list[str] = []
    cursor: str | None = None
    sizes = []
    while True:
        page = await store.list_instances(limit=3, cursor=cursor)
        seen += [r.id for r in page.instances]
        sizes.append(len(page.instances))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"i{n}" for n in reversed(range(7))]
    assert sizes == [3, 3, 1]
    exact = await store.list_instances(limit=7)
    assert len(exact.instances) == 7 and exact.next_cursor is None
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_instances(cursor="not-a-cursor")


@pytest.mark.parametrize(
    "cursor", ["99999999999999999999999", "9" * 19, "-1", "+5", " 5", "1_000", "\u0663", ""]
)
async def test_a_cursor_is_ascii_digits_of_a_64_bit_seq(store: Store, cursor: str) -> None:
    await store.create_instances([new("i1")])

    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_instances(cursor=cursor)
    assert [r.id for r in (await store.list_instances(cursor="9" * 18)).instances] == ["i1"]


async def test_reads_naming_nul_find_nothing(store: Store) -> None:
    await store.create_instances([new("i1")])

    assert await store.get_instance("i\x001") is None
    assert await store.get_instances(["i1", "i\x001"]) == [await store.get_instance("i1")]
    assert await store.list_steps("i\x001") == []
    for query in ({"search": "i\x00"}, {"workflow": "wf\x00"}, {"parent_id": "\x00"}):
        assert (await store.list_instances(**query)).instances == []  # type: ignore[arg-type]


async def test_sessions_live_until_deleted_or_expired(store: Store) -> None:
    await store.create_session("s1", T0, T0 + 60)
    await store.create_session("s2", T0, T0 + 120)
    await store.create_session("s1", T0 + 1, T0 + 999)  # a replayed create changes nothing

    assert await store.session_active("s1", T0 + 59)
    assert not await store.session_active("s1", T0 + 60)  # expired
    assert not await store.session_active("nope", T0)
    await store.delete_session("s2")
    assert not await store.session_active("s2", T0)
    await store.delete_session("s2")  # ending an ended session does nothing
    await store.create_session("s3", T0 + 61, T0 + 200)  # drops the expired s1
    assert not await store.session_active("s1", T0)
    assert await store.session_active("s3", T0 + 100)


async def test_list_filters_by_workflow_status_parent_and_search(store: Store) -> None:
    await store.create_instances(
        [
            new("order-1", workflow="order"),
            new("order-2", workflow="order"),
            new("refund-1", workflow="refund", parent="order-1"),
            new("100%_sure"),
            new("100x_sure"),
            new("Mixed-Case"),
        ]
    )
    await claim_one(store, "order-2")  # claims order-1 and order-2... and the rest
    await store.pause("refund-1", T0)

    def ids(page: Any) -> list[str]:
        return sorted(r.id for r in page.instances)

    assert ids(await store.list_instances(workflow="order")) == ["order-1", "order-2"]
    assert ids(await store.list_instances(status="paused")) == ["refund-1"]
    assert ids(await store.list_instances(parent_id="order-1")) == ["refund-1"]
    assert ids(await store.list_instances(workflow="order", status="paused")) == []
    assert ids(await store.list_instances(search="der-")) == ["order-1", "order-2"]
    assert ids(await store.list_instances(search="%_")) == ["100%_sure"]  # literal, not a pattern
    assert ids(await store.list_instances(search="mixed-case")) == ["Mixed-Case"]
    assert ids(await store.list_instances(search="nothing")) == []


async def test_count_by_status(store: Store) -> None:
    assert await store.count_by_status() == {}
    await store.create_instances(
        [new("a", workflow="x"), new("b", workflow="x"), new("c", workflow="y")]
    )
    await store.pause("b", T0)
    assert await store.count_by_status() == {"x": {"queued": 1, "paused": 1}, "y": {"queued": 1}}


# Claims, leases and fencing.


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


# Apply, status by status.


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


# Races between a transition to waiting and the writer that would wake it.


async def test_an_event_racing_a_wait_is_never_lost(store: Store, other_store: Store) -> None:
    rounds = 60
    await store.create_instances([new(f"r{n}") for n in range(rounds)])
    claims = await store.claim("w1", rounds, T0, T0 + LEASE)
    assert len(claims) == rounds

    async def wait(claim: Claim) -> None:
        i = claim.instance.id
        rows = [step(i, "w", 0, kind="event", status="waiting", detail={"type": "go"})]
        await store.apply(
            Transition(
                i, claim.token, steps=rows, status="waiting", wake_on_events=["go"], release=True
            ),
            T0 + 1,
        )

    async def send(claim: Claim, n: int) -> None:
        await asyncio.sleep(0.0003 * (n % 7))
        await other_store.send_event(claim.instance.id, "go", str(n), T0 + 1)

    await asyncio.gather(*(wait(c) for c in claims), *(send(c, n) for n, c in enumerate(claims)))
    for claim in claims:
        assert await is_due(store, claim.instance.id, T0 + 1), claim.instance.id


async def test_a_child_ending_while_its_parent_starts_waiting_is_never_lost(
    store: Store, other_store: Store
) -> None:
    rounds = 60
    await store.create_instances(
        [new(f"p{n}") for n in range(rounds)]
        + [new(f"k{n}", parent=f"p{n}") for n in range(rounds)]
    )
    claims = {c.instance.id: c for c in await store.claim("w1", 2 * rounds, T0, T0 + LEASE)}

    async def parent_waits(n: int) -> None:
        p = f"p{n}"
        rows = [step(p, "kid", 0, kind="child", status="waiting", detail={"child_id": f"k{n}"})]
        await store.apply(
            Transition(
                p,
                claims[p].token,
                steps=rows,
                status="waiting",
                wake_on_children=[f"k{n}"],
                release=True,
            ),
            T0 + 1,
        )

    async def child_ends(n: int) -> None:
        await asyncio.sleep(0.0003 * (n % 7))
        k = f"k{n}"
        await other_store.apply(
            Transition(k, claims[k].token, status="complete", output="1"), T0 + 1
        )

    await asyncio.gather(
        *(parent_waits(n) for n in range(rounds)), *(child_ends(n) for n in range(rounds))
    )
    for n in range(rounds):
        assert await is_due(store, f"p{n}", T0 + 1), f"p{n}"


# Events.


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


# Pause and resume.


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


# Terminate.


async def test_terminate_cascades_depth_first_to_children_that_have_not_ended(store: Store) -> None:
    await store.create_instances(
        [
            new("root"),
            new("kid", parent="root"),
            new("done-kid", parent="root"),
            new("grandkid", parent="kid"),
            new("done-kid-child", parent="done-kid"),
        ]
    )
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    await store.apply(Transition("done-kid", claims["done-kid"].token, status="complete"), T0 + 1)
    terminated = await store.terminate("root", T0 + 2)
    assert (terminated.status, terminated.lease_owner, terminated.wake_at) == (
        "terminated",
        None,
        None,
    )
    assert terminated.updated_at == T0 + 2
    statuses = {r.id: r.status for r in (await store.list_instances()).instances}
    assert statuses == {
        "root": "terminated",
        "kid": "terminated",
        "grandkid": "terminated",
        "done-kid": "complete",
        "done-kid-child": "running",
    }
    with pytest.raises(LeaseLostError):
        await store.apply(
            Transition("kid", claims["kid"].token, steps=[step("kid", "s", 0)]), T0 + 3
        )
    assert "kid" not in await store.heartbeat("w1", ["kid"], T0 + 60)
    with pytest.raises(InstanceStateError, match="already terminated"):
        await store.terminate("root", T0 + 3)
    with pytest.raises(InstanceNotFoundError):
        await store.terminate("missing", T0 + 3)


async def test_terminating_a_child_wakes_the_parent_waiting_for_it(store: Store) -> None:
    await store.create_instances([new("p"), new("k", parent="p"), new("k2", parent="p")])
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
    await store.terminate("k2", T0 + 2)
    assert (await row(store, "p")).wake_at is None
    await store.terminate("k", T0 + 3)
    assert (await row(store, "p")).wake_at == T0 + 3


# Restart.


async def test_restart_from_a_step_keeps_the_journal_before_it(store: Store) -> None:
    claim = await start(store, "a")
    await store.send_event("a", "go", '"e1"', T0)
    await store.send_event("a", "go", '"e2"', T0)
    await store.apply(
        Transition("a", claim.token, steps=[step("a", "first", 0, output="1")]), T0 + 1
    )
    wait = step("a", "wait", 1, kind="event", detail={"type": "go"})
    assert await store.take_event(claim.token, "a", "go", wait, T0 + 2) is not None
    await store.apply(
        Transition(
            "a",
            claim.token,
            steps=[step("a", "last", 2, output="3")],
            status="complete",
            output='"done"',
        ),
        T0 + 3,
    )

    with pytest.raises(InstanceStateError, match="first, wait, last"):
        await store.restart("a", T0 + 4, ("nope", 1))
    restarted = await store.restart("a", T0 + 4, ("wait", 1))
    assert (restarted.status, restarted.wake_at, restarted.updated_at) == ("queued", T0 + 4, T0 + 4)
    assert (restarted.output, restarted.error, restarted.lease_owner, restarted.crash_count) == (
        None,
        None,
        None,
        0,
    )
    assert restarted.generation == 1
    assert [s.name for s in await store.list_steps("a")] == ["first"]
    again = await claim_one(store, "a", owner="w2", now=T0 + 4)
    assert [s.name for s in again.steps] == ["first"]
    # The event the dropped wait consumed is buffered again, ahead of the later one.
    taken = await store.take_event(again.token, "a", "go", wait, T0 + 5)
    assert taken is not None and taken.payload == '"e1"'


async def test_restart_from_the_top_drops_the_whole_journal_and_fences_the_old_holder(
    store: Store,
) -> None:
    claim = await start(store, "a")
    await store.apply(
        Transition("a", claim.token, steps=[step("a", "s", 0), step("a", "t", 1)]), T0 + 1
    )
    restarted = await store.restart("a", T0 + 2, None)
    assert restarted.status == "queued" and restarted.generation == 1
    assert await store.list_steps("a") == []
    with pytest.raises(LeaseLostError):
        await store.apply(Transition("a", claim.token, steps=[step("a", "u", 2)]), T0 + 3)
    with pytest.raises(InstanceNotFoundError):
        await store.restart("missing", T0, None)


# Prune, next_wake_at.


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


# Wake-ups.


async def prime(store: Store) -> None:
    """Start listening and take the wake-up a (re)connection gives."""
    await store.wait_for_work(0.5)
    await store.wait_for_work(0.05)


async def waits_less_than(store: Store, timeout: float, trigger: Any) -> float:
    waiter = asyncio.ensure_future(store.wait_for_work(timeout))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await trigger()
    await waiter
    return time.monotonic() - started


async def test_wait_for_work_times_out_when_nothing_happens(store: Store) -> None:
    await prime(store)
    started = time.monotonic()
    await store.wait_for_work(0.3)
    assert 0.25 <= time.monotonic() - started < 2


async def test_created_instances_wake_a_waiting_worker_of_another_store(
    store: Store, other_store: Store
) -> None:
    await prime(other_store)
    elapsed = await waits_less_than(other_store, 10, lambda: store.create_instances([new("a")]))
    assert elapsed < 2


async def test_events_resumes_restarts_and_finished_children_wake_workers(
    store: Store, other_store: Store
) -> None:
    await store.create_instances([new("p"), new("k", parent="p"), new("w")])
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
    wait = [step("w", "w", 0, kind="event", status="waiting", detail={"type": "go"})]
    await store.apply(
        Transition(
            "w",
            claims["w"].token,
            steps=wait,
            status="waiting",
            wake_on_events=["go"],
            release=True,
        ),
        T0 + 1,
    )
    await prime(other_store)

    triggers = [
        lambda: store.apply(Transition("k", claims["k"].token, status="complete"), T0 + 3),
        lambda: store.send_event("w", "go", "1", T0 + 3),
        lambda: store.pause("p", T0 + 4),
        lambda: store.resume("p", T0 + 4),
        lambda: store.restart("k", T0 + 5, None),
    ]
    for number, trigger in enumerate(triggers):
        if number == 2:  # pausing makes nothing runnable: no wake-up needed
            await trigger()
            continue
        elapsed = await waits_less_than(other_store, 10, trigger)
        assert elapsed < 2, f"trigger {number} did not wake the worker"


CREATE_IN_A_PROCESS = """
import asyncio, sys
from framework.store import open_store
from framework.store.base import NewInstance

async def main() -> None:
    store = open_store(sys.argv[1])
    await store.open()
    await store.create_instances([NewInstance("from-another-process", "wf", "{}", 1.0)])
    await store.close()

asyncio.run(main())
"""


async def test_an_instance_created_by_another_process_wakes_a_waiting_worker(
    store: Store, database_url: str
) -> None:
    await prime(store)
    process: asyncio.subprocess.Process | None = None

    async def create_elsewhere() -> None:
        nonlocal process
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CREATE_IN_A_PROCESS,
            database_url,
            cwd=REPO,
        )

    elapsed = await waits_less_than(store, 20, create_elsewhere)
    assert process is not None
    assert await process.wait() == 0
    assert elapsed < 15
    assert await store.get_instance("from-another-process") is not None


# Schema versions.


async def set_schema_version(url: str, version: int) -> None:
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as c:
            c.execute(f"PRAGMA user_version={version}")
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute(
            "INSERT INTO fw_schema (version, name) VALUES (%s, 'from_the_future')", [version]
        )


async def has_table(url: str, table: str) -> bool:
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as c:
            found = c.execute("SELECT 1 FROM sqlite_master WHERE name=?", (table,)).fetchone()
            return found is not None
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        cur = await c.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        found = await cur.fetchone()
        return bool(found and found[0])


async def test_a_newer_schema_than_known_is_a_clear_error(database_url: str) -> None:
    first = open_store(database_url)
    await first.open()
    await first.close()
    from framework.store.migrations import latest_version

    dialect = "sqlite" if database_url.startswith("sqlite") else "postgres"
    await set_schema_version(database_url, latest_version(dialect) + 1)
    newer = open_store(database_url)
    with pytest.raises(StoreError, match=r"newer than this fw knows.*upgrade fw"):
        await newer.open()
    await newer.close()


async def test_an_older_schema_is_migrated_on_open_keeping_the_data(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework.store import migrations

    old = open_store(database_url)
    await old.open()
    await old.create_instances([new("kept")])
    await old.close()

    dialect = "sqlite" if database_url.startswith("sqlite") else "postgres"
    schema = tmp_path / "schema"
    (schema / dialect).mkdir(parents=True)
    for path in (migrations.SCHEMA_DIR / dialect).glob("*.sql"):
        (schema / dialect / path.name).write_text(path.read_text())
    following = len(migrations.migrations(dialect)) + 1
    (schema / dialect / f"{following:04d}_add_notes.sql").write_text(
        "-- a later release's migration\nCREATE TABLE fw_notes (note text);\n"
    )
    monkeypatch.setattr(migrations, "SCHEMA_DIR", schema)

    assert not await has_table(database_url, "fw_notes")
    upgraded = open_store(database_url)
    await upgraded.open()
    try:
        assert await has_table(database_url, "fw_notes")
        assert await upgraded.get_instance("kept") is not None
        version = upgraded.schema_version()  # type: ignore[attr-defined]
        if asyncio.iscoroutine(version):
            version = await version
        assert version == following
    finally:
        await upgraded.close()
    # Opening again at the latest version changes nothing.
    again = open_store(database_url)
    await again.open()
    await again.close()


# Terminate with compensation (schema v2: the control column).


async def test_terminate_with_compensation_queues_the_tree_for_a_worker(store: Store) -> None:
    await store.create_instances(
        [new("root"), new("kid", parent="root"), new("done-kid", parent="root")]
    )
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    await store.apply(Transition("done-kid", claims["done-kid"].token, status="complete"), T0 + 1)
    queued = await store.terminate("root", T0 + 2, compensate=True)
    assert (queued.status, queued.control, queued.wake_at, queued.lease_owner) == (
        "queued",
        "terminate",
        T0 + 2,
        None,
    )
    kid = await row(store, "kid")
    assert (kid.status, kid.control) == ("queued", "terminate")
    assert (await row(store, "done-kid")).control is None
    with pytest.raises(LeaseLostError):  # the old holder is fenced off
        await store.apply(Transition("kid", claims["kid"].token, status="complete"), T0 + 3)
    # A worker claims it with the request, compensates, and ends it: the request is done.
    again = await claim_one(store, "root", owner="w2", now=T0 + 2)
    assert again.instance.control == "terminate"
    ended = Transition("root", again.token, status="terminated", release=True)
    assert await store.apply(ended, T0 + 3) == "terminated"
    assert (await row(store, "root")).control is None


async def test_restart_clears_a_pending_control_request(store: Store) -> None:
    await store.create_instances([new("a")])
    await store.terminate("a", T0 + 1, compensate=True)
    restarted = await store.restart("a", T0 + 2, None)
    assert (restarted.status, restarted.control) == ("queued", None)


async def test_resuming_a_held_instance_clears_the_error_it_was_held_with(store: Store) -> None:
    claim = await start(store, "a")
    held = Transition("a", claim.token, status="paused", error='{"name": "N"}', release=True)
    await store.apply(held, T0 + 1)
    resumed = await store.resume("a", T0 + 2)
    assert (resumed.status, resumed.error) == ("queued", None)


async def test_prune_keeps_the_children_of_a_parent_still_running(store: Store) -> None:
    await store.create_instances([new("p"), new("k", parent="p"), new("q"), new("qk", parent="q")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    for i in ("k", "q", "qk"):
        await store.apply(Transition(i, claims[i].token, status="complete"), T0 + 1)
    assert await store.prune(["complete"], T0 + 50, 10) == 2
    left = sorted(r.id for r in (await store.list_instances()).instances)
    assert left == ["k", "p"]


async def test_journal_rows_round_trip_exactly(store: Store) -> None:
    claim = await start(store, "a")
    tricky = json.dumps(
        {"text": 'quote " backslash \\ newline \n tab \t é 漢字 🙂', "n": 0.1 + 0.2}
    )
    rows = [
        step(
            "a",
            "s",
            0,
            output=tricky,
            input='{"x": [1, 2]}',
            attempts=3,
            started_at=1700000000.123456,
            finished_at=T0 + 1e-6,
            detail={"k": "v"},
        ),
        step("a", "w", 1, kind="event", status="waiting", wake_at=0.1 + 0.2, error='{"e": "é"}'),
    ]
    await store.apply(Transition("a", claim.token, steps=rows), T0 + 1)
    await store.apply(Transition("a", claim.token, status="queued", release=True), T0 + 2)
    assert await store.list_steps("a") == rows
    again = await claim_one(store, "a", owner="w2", now=T0 + 2)
    assert again.steps == rows
