"""Concurrency limits across worker processes (``fw worker``), on both stores.

Three workers run a limited workflow whose one step takes a moment. From the journal (each
step's started and finished times): never more than the limit ran at once, and the instances
took their slots in creation order. Per key: two keys run side by side, and each key's
instances one at a time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from framework.runtime.app import App
from framework.runtime.handles import Instance
from tests.apps import write_app
from tests.runtime.processes import start_worker, stop, wait_until_started

LIMITED = """
import asyncio
from framework import workflow, WorkflowContext

async def work() -> None:
    await asyncio.sleep(0.15)

@workflow(concurrency={limit}{key})
async def limited(ctx: WorkflowContext[dict[str, str]]) -> None:
    await ctx.step.do("work", work)
"""

SETTINGS = """
[runtime]
poll_interval = "200 ms"
"""
WORKERS = 3


def limited(limit: int, key: str | None = None) -> str:
    return LIMITED.format(limit=limit, key="" if key is None else f", concurrency_key={key!r}")


Interval = tuple[datetime, datetime]


async def run_on_workers(
    tmp_path: Path, database_url: str, source: str, params: list[tuple[str, dict[str, str]]]
) -> dict[str, Interval]:
    """Create the instances, run them on ``WORKERS`` worker processes and return each one's
    ``work`` step interval, by instance id."""
    root = write_app(tmp_path, {"limited_workflow.py": source}, SETTINGS)
    app = App(root, database=database_url)
    previous = app.install()
    env = {"FW_DATABASE_URL": database_url}
    try:
        handle = app.handle("limited")
        instances = await handle.create_batch([{"id": i, "params": p} for i, p in params])
        workers = [start_worker(root, tmp_path / f"w{n}.log", env) for n in range(WORKERS)]
        try:
            for number, worker in enumerate(workers):
                wait_until_started(worker, tmp_path / f"w{number}.log")
            for instance in instances:
                await instance.result(timeout=60)
        finally:
            for worker in workers:
                stop(worker)
        return {i.id: await work_interval(i) for i in instances}
    finally:
        await app.close()
        app.uninstall(previous)


async def work_interval(instance: Instance[object]) -> Interval:
    (step,) = await instance.steps()
    assert step.started_at is not None and step.finished_at is not None
    return step.started_at, step.finished_at


def most_at_once(intervals: list[Interval]) -> int:
    """The most intervals that overlap at one moment."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda event: (event[0], event[1]),  # an end before a start at the same moment
    )
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("limit", [1, 2])
async def test_workers_never_run_more_than_the_limit_and_keep_creation_order(
    tmp_path: Path, database_url: str, limit: int
) -> None:
    ids = [f"i{n}" for n in range(8)]
    runs = await run_on_workers(tmp_path, database_url, limited(limit), [(i, {}) for i in ids])

    intervals = [runs[i] for i in ids]
    assert most_at_once(intervals) == limit
    for index, (start, _) in enumerate(intervals):
        # Slots go in creation order: every earlier instance started before this one, so
        # all but the limit - 1 others of them had finished by then.
        finished = sum(1 for _, end in intervals[:index] if end <= start)
        assert finished >= index - (limit - 1), (index, intervals)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_workers_run_two_keys_side_by_side_and_each_key_in_turn(
    tmp_path: Path, database_url: str
) -> None:
    params = [(f"{key}{n}", {"customer": key}) for n in range(3) for key in ("a", "b")]
    runs = await run_on_workers(tmp_path, database_url, limited(1, "customer"), params)

    per_key = {key: [runs[f"{key}{n}"] for n in range(3)] for key in ("a", "b")}
    for intervals in per_key.values():
        assert most_at_once(intervals) == 1
        starts = [start for start, _ in intervals]
        assert starts == sorted(starts)
    assert most_at_once(list(runs.values())) == 2
