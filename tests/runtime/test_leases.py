"""Leases: several worker processes on one SQLite file never run one instance at once, and a
worker that stalls past its lease can write nothing once another worker took over."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from framework.runtime.app import App
from framework.testing.env import wait_for_status
from tests.apps import write_app
from tests.runtime.processes import start_worker, stop, wait_until_started

TRACED = """
import asyncio, os, time
from framework import workflow, WorkflowContext

async def traced(instance: str, step: str, seconds: float) -> int:
    start = time.time()
    await asyncio.sleep(seconds)
    with open(os.environ["FW_TRACE_LOG"], "a") as log:
        log.write(f"{instance} {step} {os.getpid()} {start} {time.time()}\\n")
    return os.getpid()

@workflow
async def traced_flow(ctx: WorkflowContext[float]) -> list[int]:
    pids = []
    for n in range(4):
        pids.append(await ctx.step.do(f"s{n}", traced, ctx.instance_id, f"s{n}", ctx.params))
        if n == 1:
            await ctx.step.sleep("yield", "50 ms")
    return pids
"""
SETTINGS = '[runtime]\nlease = "2 seconds"\npoll_interval = "100 ms"\n'
LIVE_SETTINGS = '[runtime]\npoll_interval = "100 ms"\n'
"""The default lease: live workers that never lose one, however starved of CPU or disk a
loaded machine leaves them (a lease that expires under a live worker lets another worker
take the instance over and run its current step again: at least once, by design)."""


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_three_workers_on_one_file_never_share_an_instance(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"traced_workflow.py": TRACED}, LIVE_SETTINGS)
    trace = tmp_path / "trace.log"
    env = {"FW_TRACE_LOG": str(trace)}
    app = App(root)
    app.install()
    workers = [start_worker(root, tmp_path / f"w{n}.log", env, concurrency=10) for n in range(3)]
    try:
        for n, worker in enumerate(workers):  # all running first: a late one may find no work
            wait_until_started(worker, tmp_path / f"w{n}.log")
        instances = await app.handle("traced").create_batch([{"params": 0.01} for _ in range(150)])
        await asyncio.wait_for(asyncio.gather(*(i.result() for i in instances)), timeout=120)
    finally:
        for worker in workers:
            assert stop(worker) == 0

    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    runs: dict[tuple[str, str], int] = defaultdict(int)
    for line in trace.read_text().splitlines():
        instance_id, step, pid, start, end = line.split()
        spans[instance_id].append((float(start), float(end), int(pid)))
        runs[(instance_id, step)] += 1
    twice = sorted(key for key, count in runs.items() if count > 1)
    lost = [
        line
        for n in range(3)
        for line in (tmp_path / f"w{n}.log").read_text().splitlines()
        if "lease lost" in line or "no longer held" in line
    ]
    assert not twice, f"steps ran twice without any crash: {twice[:5]}; leases lost: {lost[:5]}"
    assert len({pid for s in spans.values() for _, _, pid in s}) == 3, "not all workers took part"
    for instance_id, intervals in spans.items():
        intervals.sort()
        for (_, end, pid), (start, _, other) in itertools.pairwise(intervals):
            assert start >= end or pid == other, f"{instance_id} ran in {pid} and {other} at once"
    await app.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_stalled_worker_loses_its_lease_and_writes_nothing_after(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"traced_workflow.py": TRACED}, SETTINGS)
    trace = tmp_path / "trace.log"
    env = {"FW_TRACE_LOG": str(trace)}
    app = App(root)
    app.install()
    first = start_worker(root, tmp_path / "first.log", env)
    wait_until_started(first, tmp_path / "first.log")
    instance = await app.handle("traced").create(1.5, id="stall-1")
    await wait_for_status(instance, "running", timeout=30)  # the first worker holds it

    os.kill(first.pid, signal.SIGSTOP)
    second = start_worker(root, tmp_path / "second.log", env)
    try:
        pids = await instance.result(timeout=60)
        os.kill(first.pid, signal.SIGCONT)
        await asyncio.to_thread(_wait_for_line, tmp_path / "first.log", LEASE_LOST, 30)
    finally:
        os.kill(first.pid, signal.SIGCONT)
        assert stop(first) == 0
        wait_until_started(second, tmp_path / "second.log")
        assert stop(second) == 0

    assert set(pids) == {second.pid}
    lines = [line.split() for line in trace.read_text().splitlines()]
    by_first = [(step, float(end)) for _, step, pid, _, end in lines if int(pid) == first.pid]
    assert [step for step, _ in by_first] in ([], ["s0"]), "the stalled worker ran past its step"
    steps = await instance.steps()
    assert all(s.output != first.pid for s in steps), "the stalled worker's result was journaled"
    await app.close()


LEASE_LOST = ("lease lost", "no longer held")
"""What a worker logs when it finds out another worker took its instance over."""


def _wait_for_line(log: Path, texts: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in log.read_text() for text in texts):
        assert time.monotonic() < deadline, f"no {texts} in {log}: {log.read_text()[-2000:]}"
        time.sleep(0.05)
