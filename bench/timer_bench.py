"""How late durable timers fire: 50 ms sleeps and 100 ms retry delays, on each store.

    .venv/bin/python -m bench.timer_bench              # SQLite, and PostgreSQL when reachable
    .venv/bin/python -m bench.timer_bench --rounds 50
    .venv/bin/python -m bench.timer_bench --storm 100000   # then a storm of timers, 1k and 100k

An in-process ``Worker`` with a poll interval of 1 second runs one instance at a time. For
each sleep, its lateness (from the timer's ``wake_at`` to the resumed instance completing the
sleep step, its ``finished_at``) and the instance's whole time from create to complete (its
own timestamps); for a step whose first attempt fails, that whole time. A timer is meant to
fire within milliseconds of its due time, whatever the poll interval: the totals should be the
sleep (50 ms) or the retry delay (100 ms) and a few milliseconds.

With ``--storm N``: N instances sleeping until the same instant (cloned from one instance run
to its sleep, written with one bulk insert; the instant is 2 s after the worker starts), then
the same with 1,000 for reference. It reports how many resumed and ended per second (the
instant to the last one's end, from the database), and how late 50 ms sleeps started
meanwhile, one after another, fire (the ``nap`` workflow: p50, p99, max), beside the same
sleeps with the worker idle.

PostgreSQL uses a scratch database on ``--database`` (default ``FW_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.postgres_bench import Scratch

WORKFLOWS = {
    "nap_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def nap(ctx: WorkflowContext[None]) -> None:
            await ctx.step.sleep("nap", "50 ms")
    """,
    "storm_workflow.py": """
        from framework import workflow, WorkflowContext

        async def done() -> int:
            return 1

        @workflow
        async def storm(ctx: WorkflowContext[None]) -> int:
            await ctx.step.sleep("until", "1 hour")
            return await ctx.step.do("after", done)
    """,
    "three_workflow.py": """
        from framework import workflow, WorkflowContext

        async def add(x: int) -> int:
            return x + 1

        @workflow
        async def three(ctx: WorkflowContext[None]) -> int:
            x = await ctx.step.do("one", add, 0)
            x = await ctx.step.do("two", add, x)
            return await ctx.step.do("three", add, x)
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


# The storm.

INSTANCE_COLUMNS = (
    "id, workflow, status, params, output, error, version, parent_id, generation, created_at, "
    "updated_at, wake_at, lease_owner, lease_token, crash_count, crashes, control"
)
STEP_COLUMNS = (
    "instance_id, name, count, seq, kind, status, attempts, started_at, finished_at, wake_at, "
    "input, output, error, detail"
)


def clone_sleepers(url: str, template: str, count: int, due: float) -> None:
    """``count`` copies of instance ``template`` (asleep), all due at ``due``, in one load."""
    sqlite = url.startswith("sqlite")
    if sqlite:
        import sqlite3

        connection: Any = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60)
        mark = "?"
    else:
        import psycopg

        connection = psycopg.connect(url, autocommit=True)  # transaction() commits
        mark = "%s"
    (instance,) = connection.execute(
        f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = {mark}", [template]
    ).fetchall()
    steps = connection.execute(
        f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_id = {mark}", [template]
    ).fetchall()
    instances: list[Any] = []
    journal: list[Any] = []
    for n in range(count):
        new_id = f"sleeper-{n:06d}"
        instances.append((new_id, *instance[1:11], due, None, None, *instance[14:]))
        journal.extend((new_id, *s[1:9], due, *s[10:]) for s in steps)
    if sqlite:
        with connection:
            connection.executemany(
                f"INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES ({','.join('?' * 17)})",
                instances,
            )
            connection.executemany(
                f"INSERT INTO steps ({STEP_COLUMNS}) VALUES ({','.join('?' * 14)})", journal
            )
    else:
        with connection.transaction(), connection.cursor() as cur:
            with cur.copy(f"COPY instances ({INSTANCE_COLUMNS}) FROM STDIN") as copy:
                for row in instances:
                    copy.write_row(row)
            with cur.copy(f"COPY steps ({STEP_COLUMNS}) FROM STDIN") as copy:
                for row in journal:
                    copy.write_row(row)
        connection.execute("ANALYZE instances")
    connection.close()


def storm_end(url: str) -> tuple[int, float | None]:
    """How many sleepers ended, and when the last one did."""
    sql = "SELECT count(*), max(updated_at) FROM instances WHERE id LIKE 'sleeper-%' AND status = 'complete'"
    if url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as c:
            row = c.execute(sql).fetchone()
    else:
        import psycopg

        with psycopg.connect(url) as c:
            row = c.execute(sql).fetchone()
    assert row is not None
    return int(row[0]), row[1]


async def naps(app: Any, until: Callable[[], bool]) -> list[float]:
    """Lateness of 50 ms sleeps run one after another: the sleep step's finish past its due."""
    nap = app.handle("nap")
    late: list[float] = []
    while not until() or not late:
        instance = await nap.create(None)
        await instance.result(timeout=300)
        (step,) = await instance.steps()
        assert step.finished_at is not None and step.wake_at is not None
        late.append((step.finished_at - step.wake_at).total_seconds())
    return late


async def create_at_once(app: Any, count: int) -> float:
    """Instances/s of ``count`` 3-step instances created at once (the reference)."""
    three = app.handle("three")
    await (await three.create(None)).result(timeout=30)
    began = time.perf_counter()
    created = await asyncio.gather(*(three.create(None) for _ in range(count)))
    await asyncio.gather(*(i.result(timeout=300) for i in created))
    return count / (time.perf_counter() - began)


async def storm(root: Path, url: str, count: int) -> dict[str, float]:
    from framework import Worker
    from framework.runtime.app import App

    app = App.for_root(root)
    async with Worker(app) as worker:
        template = await app.handle("storm").create(None)
        await worker.idle()
        deadline = time.perf_counter() + 3
        idle_naps = await naps(app, lambda: time.perf_counter() > deadline)
        reference = await create_at_once(app, 1_000)
    due = time.time() + 2 + count / 20_000  # the load, then the worker starting
    await asyncio.to_thread(clone_sleepers, url, template.id, count, due)
    async with Worker(app):
        due = max(due, time.time())  # the clock starts when the worker can start
        await asyncio.sleep(due - time.time())
        done = False

        async def watch() -> None:
            # In a thread: the count reads up to N rows (and, on PostgreSQL, connects),
            # which on the worker's event loop stalled it for 10-30 ms four times a second.
            nonlocal done
            while (await asyncio.to_thread(storm_end, url))[0] < count:
                await asyncio.sleep(0.25)
            done = True

        watcher = asyncio.create_task(watch())
        storm_naps = await naps(app, lambda: done)
        await watcher
    await app.close()
    ended, last = storm_end(url)
    assert ended == count and last is not None
    return {
        "reference": reference,
        "instances/s": count / (last - due),
        "seconds": last - due,
        "naps": len(storm_naps),
        "idle p50": statistics.median(idle_naps),
        "idle p99": quantile(idle_naps, 0.99),
        "storm p50": statistics.median(storm_naps),
        "storm p99": quantile(storm_naps, 0.99),
        "storm max": max(storm_naps),
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_storm(label: str, url: str, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fw-timer-storm-") as scratch:
        root = make_app(Path(scratch), url)
        sys.path.insert(0, scratch)
        found = asyncio.run(storm(root, url, count))
        sys.path.remove(scratch)
        for key in [k for k in sys.modules if k.startswith("timerbench")]:
            del sys.modules[key]
    print(
        f"{label}: {count:,} timers due at once resumed and ended in {found['seconds']:.1f} s "
        f"({found['instances/s']:,.0f} instances/s; 1,000 3-step instances created at once: "
        f"{found['reference']:,.0f}/s); 50 ms sleeps late by p50 "
        f"{found['storm p50'] * 1000:.1f} / p99 {found['storm p99'] * 1000:.1f} / max "
        f"{found['storm max'] * 1000:.1f} ms during it ({found['naps']:.0f} sleeps), "
        f"p50 {found['idle p50'] * 1000:.1f} / p99 {found['idle p99'] * 1000:.1f} ms idle",
        flush=True,
    )


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database", default=os.environ.get("FW_TEST_DATABASE_URL"))
    parser.add_argument("--storm", type=int, default=0, help="timers due at once (0: none)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    options = parser.parse_args()
    if options.storm:
        for count in (1_000, options.storm):
            if options.store != "postgres":
                with tempfile.TemporaryDirectory(prefix="fw-timer-db-") as folder:
                    run_storm("SQLite", f"sqlite:///{folder}/storm.db", count)
            if options.store != "sqlite" and options.database:
                with Scratch(options.database, "storm") as database:
                    run_storm("PostgreSQL", database.url, count)
        return
    with tempfile.TemporaryDirectory(prefix="fw-timer-db-") as folder:
        run("SQLite", f"sqlite:///{folder}/timers.db", options.rounds)
    if options.database:
        with Scratch(options.database, "timers") as database:
            run("PostgreSQL", database.url, options.rounds)
    else:
        print("PostgreSQL skipped: set FW_TEST_DATABASE_URL or pass --database")


if __name__ == "__main__":
    main()
