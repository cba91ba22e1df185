"""How late durable timers fire: 50 ms sleeps and 100 ms retry delays, on each store.

    .venv/bin/python -m bench.timer_bench              # SQLite, and PostgreSQL when reachable
    .venv/bin/python -m bench.timer_bench --rounds 50

An in-process ``Worker`` with a poll interval of 1 second runs one instance at a time. For
each sleep, its lateness (from the timer's ``wake_at`` to the resumed instance completing the
sleep step, its ``finished_at``) and the instance's whole time from create to complete (its
own timestamps); for a step whose first attempt fails, that whole time. A timer is meant to
fire within milliseconds of its due time, whatever the poll interval: the totals should be the
sleep (50 ms) or the retry delay (100 ms) and a few milliseconds.

PostgreSQL uses a scratch database on ``--database`` (default ``FW_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.postgres_bench import Scratch

WORKFLOWS = {
    "nap_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def nap(ctx: WorkflowContext[None]) -> None:
            await ctx.step.sleep("nap", "50 ms")
    """,
    "flaky_workflow.py": """
        from framework import workflow, WorkflowContext, define_step, Retries, StepContext

        async def call(ctx: StepContext) -> None:
            if ctx.attempt == 1:
                raise ConnectionError("the first attempt fails")

        flaky_call = define_step("call", handler=call, retries=Retries(limit=1, delay="100 ms"))

        @workflow
        async def flaky(ctx: WorkflowContext[None]) -> None:
            await ctx.run_step(flaky_call, {})
    """,
}


def make_app(parent: Path, url: str) -> Path:
    from framework.codegen import run_codegen

    root = parent / "timerbench"
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "fw.toml").write_text(
        f'[app]\nname = "timerbench"\n[runtime]\ndatabase = "{url}"\npoll_interval = "1 s"\n'
    )
    for name, source in WORKFLOWS.items():
        (root / "workflows" / name).write_text(textwrap.dedent(source))
    assert run_codegen(root).ok
    return root


async def measure(root: Path, rounds: int) -> dict[str, list[float]]:
    from framework import Worker
    from framework.runtime.app import App

    app = App.for_root(root)
    found: dict[str, list[float]] = {"sleep late": [], "sleep total": [], "retry total": []}
    async with Worker(app):
        for _ in range(rounds):
            nap = await app.handle("nap").create(None)
            await nap.result(timeout=30)
            (step,) = await nap.steps()
            assert step.finished_at is not None and step.wake_at is not None
            found["sleep late"].append((step.finished_at - step.wake_at).total_seconds())
            status = await nap.status()
            found["sleep total"].append((status.updated_at - status.created_at).total_seconds())
            flaky = await app.handle("flaky").create(None)
            await flaky.result(timeout=30)
            status = await flaky.status()
            found["retry total"].append((status.updated_at - status.created_at).total_seconds())
    await app.close()
    return found


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
        f"max {ordered[-1] * 1000:6.1f} ms"
    )


def run(label: str, url: str, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fw-timer-bench-") as scratch:
        root = make_app(Path(scratch), url)
        sys.path.insert(0, scratch)
        started = time.perf_counter()
        found = asyncio.run(measure(root, rounds))
        print(f"{label} ({rounds} rounds, {time.perf_counter() - started:.1f} s)")
        for name, values in found.items():
            print(f"  {name:12} {summary(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database", default=os.environ.get("FW_TEST_DATABASE_URL"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fw-timer-db-") as folder:
        run("SQLite", f"sqlite:///{folder}/timers.db", options.rounds)
    if options.database:
        with Scratch(options.database, "timers") as database:
            run("PostgreSQL", database.url, options.rounds)
    else:
        print("PostgreSQL skipped: set FW_TEST_DATABASE_URL or pass --database")


if __name__ == "__main__":
    main()
