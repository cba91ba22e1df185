"""A step attempt's timeout: its first stretch runs with no timer (most steps end there),
and the rest of one that suspends runs under a timeout counted from the attempt's start.
Driven directly, so each case is exact; the workflow-level tests cover the same paths."""

from __future__ import annotations

import asyncio
import time

import pytest

from framework.errors import StepTimeoutError
from framework.runtime.durable import _with_timeout
from framework.runtime.journal import StepKey

KEY = StepKey("work", 1, 1)


async def test_a_step_that_never_suspends_returns_and_leaves_no_timer() -> None:
    async def work() -> int:
        return 7

    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    assert await _with_timeout(work(), 5.0, KEY) == 7
    assert len(loop._scheduled) == before  # type: ignore[attr-defined]


async def test_a_step_that_suspends_gets_what_it_awaits_and_its_errors() -> None:
    async def work(fail: bool) -> list[int]:
        seen = []
        for n in range(3):
            await asyncio.sleep(0)
            seen.append(await asyncio.get_running_loop().run_in_executor(None, int, n))
        if fail:
            raise ValueError("after suspending")
        return seen

    assert await _with_timeout(work(False), 5.0, KEY) == [0, 1, 2]
    with pytest.raises(ValueError, match="after suspending"):
        await _with_timeout(work(True), 5.0, KEY)


async def test_the_timeout_counts_from_the_start_and_cancels_inside_the_step() -> None:
    cleaned: list[str] = []

    async def work() -> None:
        time.sleep(0.15)  # its first stretch, run before any await
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    began = time.perf_counter()
    with pytest.raises(StepTimeoutError, match="ran over its timeout"):
        await _with_timeout(work(), 0.2, KEY)
    assert time.perf_counter() - began < 1.0  # 0.2 s after the start, not after the sleep
    assert cleaned == ["cancelled"]


async def test_a_task_cancelled_while_its_step_waits_cancels_the_step() -> None:
    reached = asyncio.Event()
    cleaned: list[str] = []

    async def work() -> None:
        reached.set()
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    task = asyncio.ensure_future(_with_timeout(work(), 30.0, KEY))
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
