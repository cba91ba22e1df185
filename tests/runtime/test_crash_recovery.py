"""Workers killed with SIGKILL at random moments lose nothing and repeat nothing journaled.

Each step appends ``instance step token`` to a file before returning ``token`` (the pid of
the process that ran it and a random part). After a randomized kill loop over many
instances, a final worker completes them all, and for every step the journaled token is
the last execution of it: a journaled step never ran again, and each earlier execution
happened in a worker that was killed before it could journal (at most one per instance per
killed worker: the step in flight).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import defaultdict
from pathlib import Path

import pytest

from framework.runtime.app import App
from tests.apps import write_app
from tests.runtime.processes import kill, start_worker, stop, wait_until_started

CRASHY = """
import asyncio, os, uuid
from framework import workflow, WorkflowContext

def effect(instance: str, step: str) -> str:
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with open(os.environ["FW_CRASH_LOG"], "a") as log:
        log.write(f"{instance} {step} {token}\\n")
    return token

async def slow_effect(instance: str, step: str) -> str:
    token = effect(instance, step)
    await asyncio.sleep(0.02 + 0.1 * (hash(token) % 10) / 10)
    return token

@workflow
async def crashy(ctx: WorkflowContext[None]) -> list[str]:
    i = ctx.instance_id
    out = [await ctx.step.do("a", slow_effect, i, "a")]
    out.append(await ctx.step.do("b", slow_effect, i, "b"))
    await ctx.step.sleep("nap", "500 ms")
    out.append(await ctx.step.do("c", effect, i, "c"))
    await ctx.step.wait_for_event("go", type="go", timeout="1 hour")
    out.append(await ctx.step.do("d", slow_effect, i, "d"))
    await ctx.step.sleep("rest", "400 ms")
    for n in range(5):
        out.append(await ctx.step.do(f"e{n}", slow_effect, i, f"e{n}"))
    return out
"""

SETTINGS = """
[runtime]
lease = "1 second"
poll_interval = "200 ms"
crash_loop_limit = 1000
"""
INSTANCES = 60
KILLS = 14
CONCURRENCY = 8


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_random_sigkills_lose_no_instance_and_rerun_no_journaled_step(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"crashy_workflow.py": CRASHY}, SETTINGS)
    effects = tmp_path / "effects.log"
    env = {"FW_CRASH_LOG": str(effects)}
    app = App(root)
    app.install()
    handle = app.handle("crashy")
    instances = await handle.create_batch([{"id": f"c-{n}"} for n in range(INSTANCES)])
    seed = int(os.environ.get("FW_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    killed: set[int] = set()

    for round_number in range(KILLS):
        worker = start_worker(root, tmp_path / "workers.log", env, CONCURRENCY)
        await asyncio.sleep(rng.uniform(0.2, 1.2))
        if round_number == KILLS // 2:
            for instance in instances:
                await instance.send_event("go")
        kill(worker)
        killed.add(worker.pid)

    final = start_worker(root, tmp_path / "workers.log", env, CONCURRENCY)
    wait_until_started(final, tmp_path / "workers.log")
    try:
        outputs = await asyncio.wait_for(
            asyncio.gather(*(i.result() for i in instances)), timeout=120
        )
    finally:
        assert stop(final) == 0, (tmp_path / "workers.log").read_text()[-3000:]

    executions: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in effects.read_text().splitlines():
        instance_id, step, token = line.split()
        executions[(instance_id, step)].append(token)
    repeats: dict[tuple[str, str], int] = defaultdict(int)
    for instance, output in zip(instances, outputs, strict=True):
        journal = {s.name: s.output for s in await instance.steps() if s.kind == "do"}
        assert list(journal.values()) == output, f"seed {seed}"
        for step, token in journal.items():
            runs = executions[(instance.id, step)]
            assert runs[-1] == token, (
                f"seed {seed}: {instance.id} {step} ran after it was journaled: {runs}"
            )
            for earlier in runs[:-1]:
                pid = int(earlier.split("-")[0])
                assert pid in killed, f"seed {seed}: {instance.id} {step} ran twice without a crash"
                repeats[(instance.id, str(pid))] += 1
    assert all(count <= 1 for count in repeats.values()), f"seed {seed}: {dict(repeats)}"
    print(f"seed {seed}: {len(killed)} kills, {sum(repeats.values())} steps ran twice")
    await app.close()
