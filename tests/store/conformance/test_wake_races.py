"""Store conformance: races between a transition to waiting and the writer that would wake it."""

from __future__ import annotations

import asyncio

from framework.store.base import Claim, Store, Transition
from tests.store.conformance.helpers import LEASE, T0, is_due, new, step


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
