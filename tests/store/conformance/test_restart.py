"""Store conformance: restart."""

from __future__ import annotations

import pytest

from framework.errors import (
    InstanceNotFoundError,
    InstanceStateError,
    LeaseLostError,
    UnknownStepError,
)
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import T0, claim_one, row, start, step


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

    with pytest.raises(UnknownStepError, match="first, wait, last") as unknown:
        await store.restart("a", T0 + 4, ("nope", 1))
    assert (unknown.value.step, unknown.value.occurrence) == ("nope", 1)
    assert unknown.value.steps == ["first", "wait", "last"]
    assert isinstance(unknown.value, InstanceStateError)
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


async def test_a_restart_records_the_code_version_that_runs_it_from_then_on(
    store: Store,
) -> None:
    claim = await start(store, "a")
    await store.apply(Transition("a", claim.token, steps=[step("a", "s", 0)], version="v1"), T0)
    assert (await row(store, "a")).version == "v1"

    assert (await store.restart("a", T0 + 1, None, version="v2")).version == "v2"
    again = await claim_one(store, "a", owner="w2", now=T0 + 1)
    await store.apply(Transition("a", again.token, steps=[step("a", "s", 0)], version="v2"), T0 + 2)
    assert (await row(store, "a")).version == "v2"

    # Without one, the next worker to write records its own.
    assert (await store.restart("a", T0 + 3, None)).version is None
    third = await claim_one(store, "a", owner="w3", now=T0 + 3)
    await store.apply(Transition("a", third.token, steps=[step("a", "s", 0)], version="v3"), T0 + 4)
    assert (await row(store, "a")).version == "v3"
