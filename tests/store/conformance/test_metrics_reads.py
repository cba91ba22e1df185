"""Store conformance: what ``/metrics`` reads at scrape time, and the counts of ended instances
Studio's activity chart reads."""

from __future__ import annotations

from framework.store.base import DURATION_EDGES, Status, Store, Transition
from tests.store.conformance.helpers import LEASE, T0, claim_one, new


async def test_count_due_counts_what_a_worker_could_claim_now_by_workflow(store: Store) -> None:
    await store.create_instances([new("c-held", workflow="c", at=T0)])
    held = await claim_one(store, "c-held", now=T0)  # a live lease: not claimable
    await store.create_instances(
        [
            new("a1", workflow="a", at=T0),
            new("a2", workflow="a", at=T0),
            new("b-future", workflow="b", at=T0 + 10),
            new("c-paused", workflow="c", at=T0),
        ]
    )
    await store.pause("c-paused", T0)
    assert await store.count_due(T0 - 1) == {}
    assert held.instance.status == "running"
    assert await store.count_due(T0) == {"a": 2}
    assert await store.count_due(T0 + 10) == {"a": 2, "b": 1}
    # The lease expired: another worker could claim it now.
    assert await store.count_due(T0 + LEASE) == {"a": 2, "b": 1, "c": 1}
    await store.apply(
        Transition("c-held", held.token, status="complete", output="null", release=True), T0 + 1
    )
    assert await store.count_due(T0 + 1000) == {"a": 2, "b": 1}


async def end(
    store: Store, instance_id: str, *, created: float, ended: float, status: Status
) -> None:
    await store.create_instances([new(instance_id, workflow="w", at=created)])
    claim = await claim_one(store, instance_id, now=created)
    error = None if status == "complete" else '{"name": "E", "message": "m"}'
    await store.apply(
        Transition(
            instance_id, claim.token, status=status, output="null", error=error, release=True
        ),
        ended,
    )


async def test_count_ended_counts_by_bucket_status_and_duration_class(store: Store) -> None:
    await end(store, "fast", created=T0, ended=T0 + 0.004, status="complete")  # 4 ms
    await end(store, "slow", created=T0 + 10, ended=T0 + 70, status="complete")  # 60 s
    await end(store, "broke", created=T0 + 61, ended=T0 + 62, status="errored")  # 1 s
    await end(store, "early", created=T0 - 200, ended=T0 - 100, status="complete")  # before
    await end(store, "late", created=T0 + 100, ended=T0 + 200, status="complete")  # after
    await store.create_instances([new("other", workflow="x", at=T0)])
    other = await claim_one(store, "other", now=T0)
    await store.apply(
        Transition("other", other.token, status="complete", output="null", release=True), T0 + 1
    )
    await store.create_instances([new("going", workflow="w", at=T0)])  # not ended

    counts = await store.count_ended("w", T0, 60.0, 2)

    got = sorted((c.bucket, c.status, c.duration_class, c.count) for c in counts)
    assert got == [
        (0, "complete", duration_class(0.004), 1),
        (1, "complete", duration_class(60.0), 1),
        (1, "errored", duration_class(1.0), 1),
    ]
    assert await store.count_ended("nobody", T0, 60.0, 2) == []


def duration_class(seconds: float) -> int:
    """The class ``DURATION_EDGES`` puts a duration in (as the store's CASE does)."""
    return next((i for i, edge in enumerate(DURATION_EDGES) if seconds < edge), len(DURATION_EDGES))
