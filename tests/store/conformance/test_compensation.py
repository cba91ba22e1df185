"""Store conformance: terminate with compensation (schema v2: the control column)."""

from __future__ import annotations

import json

import pytest

from framework.errors import LeaseLostError
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, new, row, start, step


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
