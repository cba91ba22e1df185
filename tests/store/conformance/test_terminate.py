"""Store conformance: terminate."""

from __future__ import annotations

import pytest

from framework.errors import InstanceNotFoundError, InstanceStateError, LeaseLostError
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, new, row, step


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


@pytest.mark.parametrize("compensate", [False, True])
async def test_terminate_reaches_the_end_of_a_chain_of_children_thousands_deep(
    store: Store, compensate: bool
) -> None:
    chain = [new("c0"), *(new(f"c{n}", parent=f"c{n - 1}") for n in range(1, 3000))]
    await store.create_instances(chain)

    await store.terminate("c0", T0 + 1, compensate=compensate)

    statuses = {r.status for r in await store.get_instances([i.id for i in chain])}
    assert statuses == ({"queued"} if compensate else {"terminated"})
    if compensate:
        deepest = await store.get_instance("c2999")
        assert deepest is not None and deepest.control == "terminate"
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


async def test_terminate_reaches_a_child_committed_while_it_ran(
    store: Store, database_url: str
) -> None:
    """A running child commits a child of its own while the terminate reads the tree (on
    PostgreSQL, a transaction holding the child's row commits the grandchild once the
    terminate waits for that row): the grandchild is terminated too."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one write at a time: nothing commits while a terminate runs")
    import asyncio

    import psycopg

    await store.create_instances([new("root"), new("kid", parent="root")])
    async with await psycopg.AsyncConnection.connect(database_url) as other:
        async with other.transaction():
            await other.execute("SELECT 1 FROM instances WHERE id = 'kid' FOR UPDATE")
            terminating = asyncio.ensure_future(store.terminate("root", T0 + 1))
            async with await psycopg.AsyncConnection.connect(database_url) as watcher:
                while not terminating.done():  # until it waits for the row of 'kid'
                    cur = await watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'"
                    )
                    if (await cur.fetchone() or [0])[0]:
                        break
                    await asyncio.sleep(0.01)
            assert not terminating.done()
            await other.execute(
                "INSERT INTO instances (id, workflow, status, params, parent_id, created_at, "
                "updated_at, wake_at) VALUES ('grandkid', 'wf', 'queued', '{}', 'kid', %s, %s, %s)",
                (T0, T0, T0),
            )
        await terminating

    statuses = {r.id: r.status for r in await store.get_instances(["root", "kid", "grandkid"])}
    assert statuses == {"root": "terminated", "kid": "terminated", "grandkid": "terminated"}
