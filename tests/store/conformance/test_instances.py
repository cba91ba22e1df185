"""Store conformance: creating and reading instances."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from framework.errors import InstanceIdConflictError
from framework.store.base import NewInstance, Store, Transition
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


async def test_an_id_of_another_workflow_refuses_a_single_create(store: Store) -> None:
    await store.create_instances([new("taken", workflow="other")])
    before, counts = await row(store, "taken"), await store.count_by_status()

    with pytest.raises(InstanceIdConflictError) as refused:
        await store.create_instances([new("taken")])

    assert (refused.value.index, refused.value.workflow) == (None, "other")
    assert "nothing was stored" in str(refused.value)
    assert await row(store, "taken") == before
    assert await store.count_by_status() == counts
    assert [r.id for r in (await store.list_instances()).instances] == ["taken"]


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
    sizes: list[int] = []
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


@pytest.mark.parametrize("odd", ["\x00", "\udcff", "\ud800"], ids=["nul", "escaped-byte", "surrogate"])
async def test_reads_naming_nul_or_half_a_surrogate_pair_find_nothing(
    store: Store, odd: str
) -> None:
    """Such a text was never stored (PostgreSQL refuses a NUL; half a surrogate pair, as a
    command-line argument that was not UTF-8 decodes to, has no UTF-8 form at all)."""
    await store.create_instances([new("i1")])

    assert await store.get_instance(f"i{odd}1") is None
    assert await store.get_instances(["i1", f"i{odd}1"]) == [await store.get_instance("i1")]
    assert await store.list_steps(f"i{odd}1") == []
    assert await store.list_logs(f"i{odd}1") == []
    assert await store.list_waiting_steps([f"i{odd}1"]) == []
    assert await store.restarted_at(f"i{odd}1") is None
    for query in (
        {"search": f"i{odd}"}, {"workflow": f"wf{odd}"}, {"parent_id": odd},
        {"id_prefix": f"i{odd}"}, {"status": odd},
    ):
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
    assert ids(await store.list_instances(id_prefix="order-")) == ["order-1", "order-2"]
    assert ids(await store.list_instances(id_prefix="100%")) == ["100%_sure"]  # literal
    assert ids(await store.list_instances(id_prefix="mixed")) == []  # exact case
    assert ids(await store.list_instances(id_prefix="der-")) == []  # the start only


async def test_count_by_status(store: Store) -> None:
    assert await store.count_by_status() == {}
    await store.create_instances(
        [new("a", workflow="x"), new("b", workflow="x"), new("c", workflow="y")]
    )
    await store.pause("b", T0)
    assert await store.count_by_status() == {"x": {"queued": 1, "paused": 1}, "y": {"queued": 1}}


async def test_count_by_status_follows_every_change(store: Store) -> None:
    """The counts (kept by the store as instances change, not counted row by row) agree with
    the instances themselves through create, claim, the ends, restart, terminate and prune,
    also once many changes have piled up (PostgreSQL folds its deltas then)."""

    async def counted() -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for r in (await store.list_instances(limit=1_000)).instances:
            by_status = found.setdefault(r.workflow, {})
            by_status[r.status] = by_status.get(r.status, 0) + 1
        return found

    await store.create_instances([new(f"a{n}", workflow="x") for n in range(600)])
    await store.create_instances([new("b", workflow="y"), new("c", workflow="y")])
    assert (
        await store.count_by_status()
        == await counted()
        == {"x": {"queued": 600}, "y": {"queued": 2}}
    )
    claims = {c.instance.id: c for c in await store.claim("w1", 1_000, T0, T0 + LEASE)}
    assert await store.count_by_status() == {"x": {"running": 600}, "y": {"running": 2}}
    await store.apply(Transition("b", claims["b"].token, status="complete"), T0 + 1)
    await store.apply(Transition("c", claims["c"].token, status="errored"), T0 + 1)
    for n in range(10):
        await store.apply(Transition(f"a{n}", claims[f"a{n}"].token, status="complete"), T0 + 1)
    assert await store.count_by_status() == await counted()
    await store.restart("c", T0 + 2, None)
    await store.terminate("a599", T0 + 2)
    assert await store.count_by_status() == await counted()
    pruned = [await store.prune(["complete"], T0 + 50, 100)]
    while pruned[-1]:  # a batch stops after PRUNE_SECONDS: it may take fewer than it could
        pruned.append(await store.prune(["complete"], T0 + 50, 100))
    assert sum(pruned) == 11 and all(pruned[:-1])
    expected = {"x": {"running": 589, "terminated": 1}, "y": {"queued": 1}}
    assert await store.count_by_status() == await counted() == expected
    assert await store.count_by_status() == expected  # read again (after a fold)


SEARCHED_IDS = [
    "order-1", "order-2", "ORDER-30", "refund-1", "100%_sure", "100x_sure", 'say-"hi"', "ab",
    "0f3a9c2e", "a0f3a9c2", "zzz",
]  # fmt: skip


def contains(text: str) -> list[str]:
    """What a search means: the ids holding ``text`` anywhere, in any case (ASCII)."""
    return sorted(i for i in SEARCHED_IDS if text.lower() in i.lower())


async def test_search_reads_an_index_of_trigrams_and_keeps_its_meaning(
    store: Store, database_url: str
) -> None:
    from tests.store.conformance.test_schema_versions import has_table

    await store.create_instances([new(i) for i in SEARCHED_IDS])

    assert await has_table(database_url, "instance_search")  # pg_trgm and FTS5 here
    # Three characters or more go through the index; shorter ones read the instances.
    for text in (
        "der-", "DER-3", "order-1", "%_s", "0%_", '"hi"', 'y-"', "f3a9c2", "F3A9", "a0f",
        "zzz", "zzzz", "nothing", "rde", "ab", "AB", "%", "_", '"', "1", "z", "x_s",
    ):  # fmt: skip
        page = await store.list_instances(search=text)
        assert sorted(r.id for r in page.instances) == contains(text), text
    # With the other filters and newest first, page by page.
    await claim_one(store, "order-2")
    assert [r.id for r in (await store.list_instances(search="ord", status="running")).instances]
    first = await store.list_instances(search="order", limit=2)
    assert [r.id for r in first.instances] == ["ORDER-30", "order-2"]
    assert first.next_cursor is not None
    rest = await store.list_instances(search="order", limit=2, cursor=first.next_cursor)
    assert [r.id for r in rest.instances] == ["order-1"] and rest.next_cursor is None


async def test_search_follows_creates_and_prunes(store: Store) -> None:
    await store.create_instances([new("old-abc-1"), new("old-abc-2"), new("kept-abc")])
    claims = {c.instance.id: c for c in await store.claim("w1", 10, T0, T0 + LEASE)}
    for instance_id in ("old-abc-1", "old-abc-2"):
        await store.apply(Transition(instance_id, claims[instance_id].token, status="complete"), T0)
    assert await store.prune(["complete"], T0 + 1, 10) == 2
    await store.create_instances([new("new-abc")])

    found = await store.list_instances(search="abc")
    assert [r.id for r in found.instances] == ["new-abc", "kept-abc"]
    assert (await store.list_instances(search="old-abc")).instances == []
    # A pruned id created again is found again, once.
    await store.create_instances([new("old-abc-1")])
    assert [r.id for r in (await store.list_instances(search="old-abc")).instances] == [
        "old-abc-1"
    ]
