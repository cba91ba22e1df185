"""Recovery: another worker resumes the instances of a SIGKILLed worker within seconds (its
liveness lock died with it), not when their 30 s leases expire, and a worker stopped with
SIGTERM hands its instances over at once (the others are woken, not left to their next poll).
Real ``fw worker`` processes with the default lease, on both stores."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from framework.runtime.app import App
from tests.apps import write_app
from tests.runtime.processes import kill, start_worker, stop, wait_until_started

TRACED = """
import asyncio, os, time
from framework import workflow, WorkflowContext

def mark(instance: str, step: str) -> int:
    with open(os.environ["FW_TRACE_LOG"], "a") as trace:
        trace.write(f"{instance} {step} {os.getpid()} {time.time()}\\n")
    return os.getpid()

async def work(instance: str) -> int:
    mark(instance, "work")
    await asyncio.sleep(float(os.environ["FW_WORK_SECONDS"]))
    return os.getpid()

@workflow
async def traced(ctx: WorkflowContext[None]) -> list[int]:
    first = await ctx.step.do("first", mark, ctx.instance_id, "first")
    second = await ctx.step.do("work", work, ctx.instance_id)
    return [first, second, await ctx.step.do("after", mark, ctx.instance_id, "after")]
"""
N = 10


Row = tuple[str, str, int, float]
"""A trace line: instance, step, pid, time."""


def trace_of(path: Path) -> list[Row]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(i, step, int(pid), float(at)) for i, step, pid, at in rows]


async def wait_for_trace(
    path: Path, check: Callable[[list[Row]], bool], what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not check(trace_of(path)):
        assert time.monotonic() < deadline, f"{what}: {trace_of(path)}"
        await asyncio.sleep(0.05)


def app_on(tmp_path: Path, database_url: str, settings: str = "") -> Path:
    config = f'[runtime]\ndatabase = "{database_url}"\n{settings}'
    return write_app(tmp_path, {"traced_workflow.py": TRACED}, config)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_killed_workers_instances_resume_well_within_the_lease(
    tmp_path: Path, database_url: str
) -> None:
    root = app_on(tmp_path, database_url)
    trace = tmp_path / "trace.log"
    env = {"FW_TRACE_LOG": str(trace)}
    first = start_worker(root, tmp_path / "a.log", {**env, "FW_WORK_SECONDS": "3600"}, N)
    second = None
    app = App(root)
    previous = app.install()
    try:
        wait_until_started(first, tmp_path / "a.log")
        instances = await app.handle("traced").create_batch([{"params": None} for _ in range(N)])
        await wait_for_trace(
            trace, lambda t: sum(s == "work" for _, s, _, _ in t) == N, "not all in flight"
        )
        second = start_worker(root, tmp_path / "b.log", {**env, "FW_WORK_SECONDS": "0"}, N)
        wait_until_started(second, tmp_path / "b.log")
        killed_at = time.time()
        kill(first)
        results = await asyncio.wait_for(
            asyncio.gather(*(i.result() for i in instances)), timeout=60
        )
        rows = trace_of(trace)
        resumed = [at - killed_at for _, step, pid, at in rows if step == "work" and pid == second.pid]
        assert len(resumed) == N
        assert max(resumed) < 10, f"resumed after {max(resumed):.1f} s (the lease is 30 s)"
        runs: dict[tuple[str, str], int] = defaultdict(int)
        for instance_id, step, _, _ in rows:
            runs[(instance_id, step)] += 1
        assert all(runs[(i.id, "first")] == 1 for i in instances), "a completed step ran twice"
        assert all(runs[(i.id, "work")] == 2 for i in instances)  # in flight when killed
        assert all(r == [first.pid, second.pid, second.pid] for r in results)
        assert stop(second) == 0
    finally:
        app.uninstall(previous)
        await app.close()
        for process in (first, second):
            if process is not None and process.poll() is None:
                kill(process)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_stopped_worker_hands_its_instances_over_at_once(
    tmp_path: Path, database_url: str
) -> None:
    """The other worker polls once a minute: only a wake-up brings it the instances in time."""
    root = app_on(tmp_path, database_url, 'poll_interval = "60 seconds"\n')
    trace = tmp_path / "trace.log"
    env = {"FW_TRACE_LOG": str(trace), "FW_WORK_SECONDS": "1"}
    first = start_worker(root, tmp_path / "a.log", env, N)
    second = None
    app = App(root)
    previous = app.install()
    try:
        wait_until_started(first, tmp_path / "a.log")
        second = start_worker(root, tmp_path / "b.log", env, N)
        wait_until_started(second, tmp_path / "b.log")
        os.kill(second.pid, signal.SIGSTOP)  # so the first worker takes them all
        instances = await app.handle("traced").create_batch([{"params": None} for _ in range(N)])
        await wait_for_trace(
            trace, lambda t: sum(s == "work" for _, s, _, _ in t) == N, "not all in flight"
        )
        os.kill(second.pid, signal.SIGCONT)
        stopped_at = time.time()
        assert stop(first) == 0  # each run finishes its step, then is released
        results = await asyncio.wait_for(
            asyncio.gather(*(i.result() for i in instances)), timeout=60
        )
        rows = trace_of(trace)
        after = [at - stopped_at for _, step, _, at in rows if step == "after"]
        assert all(pid == second.pid for _, step, pid, _ in rows if step == "after")
        assert max(after) < 10, f"taken over after {max(after):.1f} s (the poll is 60 s)"
        assert all(r[:2] == [first.pid, first.pid] for r in results)  # nothing ran twice
        assert stop(second) == 0
    finally:
        app.uninstall(previous)
        await app.close()
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                kill(process)
