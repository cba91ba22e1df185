"""Store conformance, wake-ups: a store wakes a waiting worker as soon as work is due."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, REPO, T0, new, step


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
