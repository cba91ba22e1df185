"""Store conformance: many instances' journal writes made at once (which the stores commit
in groups) each keep their own outcome: a lost lease or a refused value fails that write
alone."""

from __future__ import annotations

import asyncio

import pytest

from framework.errors import FwError, LeaseLostError
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import T0, start, step


async def test_concurrent_writes_each_keep_their_own_outcome(store: Store) -> None:
    claims = [await start(store, f"i{n}") for n in range(12)]

    def write(n: int) -> Transition:
        token = "stolen" if n == 3 else claims[n].token
        output = '"\x00"' if n == 7 else f'"{n}"'  # PostgreSQL refuses a NUL in text
        rows = [step(f"i{n}", "s", 0, output=output)]
        if n % 2:
            return Transition(f"i{n}", token, steps=rows)
        return Transition(f"i{n}", token, steps=rows, status="complete", output="1")

    outcomes = await asyncio.gather(
        *(store.apply(write(n), T0 + 1) for n in range(12)), return_exceptions=True
    )
    assert isinstance(outcomes[3], LeaseLostError)
    if store.url.startswith("postgres"):
        assert isinstance(outcomes[7], FwError) and await store.list_steps("i7") == []
    for n, outcome in enumerate(outcomes):
        if n in (3, 7):
            continue
        assert outcome == ("running" if n % 2 else "complete"), (n, outcome)
        assert [s.output for s in await store.list_steps(f"i{n}")] == [f'"{n}"']
    assert await store.list_steps("i3") == []


@pytest.mark.parametrize("count", [1, 40])
async def test_writes_made_together_all_commit(store: Store, count: int) -> None:
    claims = [await start(store, f"j{n}") for n in range(count)]
    statuses = await asyncio.gather(
        *(
            store.apply(
                Transition(c.instance.id, c.token, steps=[step(c.instance.id, "s", 0)]), T0 + 1
            )
            for c in claims
        )
    )
    assert statuses == ["running"] * count
    for c in claims:
        assert [s.name for s in await store.list_steps(c.instance.id)] == ["s"]
