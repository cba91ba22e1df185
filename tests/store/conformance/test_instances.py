"""Store conformance: creating and reading instances."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from framework.errors import InstanceIdConflictError
from framework.store.base import NewInstance, Store
from tests.store.conformance.helpers import LEASE, T0, claim_one, new, row


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
