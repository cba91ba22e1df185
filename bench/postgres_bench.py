"""fw on PostgreSQL beside DBOS on the same server, measured in one run.

    .venv/bin/python -m bench.postgres_bench                 # 1, 2 and 4 worker processes
    .venv/bin/python -m bench.postgres_bench --quick         # fewer instances and samples
    .venv/bin/python -m bench.postgres_bench --database postgresql://user@host/db

The server is ``--database`` (default ``FW_TEST_DATABASE_URL``, else the local test server);
each configuration gets a fresh scratch database on it, dropped afterwards.

Both systems run the same workflow of three trivial steps in separate worker processes
(``fw worker``; DBOS processes dequeuing from one DBOS queue):

- throughput: a backlog of N instances is created (fw: ``create_batch`` of 100; DBOS:
  ``DBOSClient.enqueue`` from 4 threads), then the worker processes start together; the clock
  runs from the first step's start to the last completion, as the database records them;
- wake-up latency: with the workers running and idle, one instance at a time, from its
  creation to the start of its first step, both as recorded in the database (fw:
  ``instances.created_at`` and the step's ``started_at``; DBOS: ``workflow_status.created_at``
  and the step's ``started_at_epoch_ms``).

fw wakes workers with LISTEN/NOTIFY; DBOS queues poll, every ``--dbos-poll`` seconds (0.05 by
default; DBOS's own default, 1 s, caps a worker at ``worker_concurrency`` dequeues a second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 50
THREE = """
    from framework import workflow, WorkflowContext

    async def add(x: int) -> int:
        return x + 1

    @workflow
    async def three(ctx: WorkflowContext[None]) -> int:
        x = await ctx.step.do("one", add, 0)
        x = await ctx.step.do("two", add, x)
        return await ctx.step.do("three", add, x)
"""
DBOS_MIGRATE = """
import sys
from dbos import DBOS

DBOS(config={"name": "fwbench", "system_database_url": sys.argv[1], "log_level": "WARNING"})
DBOS.launch()
DBOS.destroy()
"""
DBOS_WORKER = """
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
from dbos import DBOS

DBOS(config={"name": "fwbench", "system_database_url": sys.argv[1], "executor_id": sys.argv[2],
             "log_level": "WARNING"})

@DBOS.step()
async def add(x: int) -> int:
    return x + 1

@DBOS.workflow()
async def three() -> int:
    x = await add(0)
    x = await add(x)
    return await add(x)

DBOS.launch()
DBOS.register_queue("bench", worker_concurrency=int(sys.argv[3]), polling_interval_sec=float(sys.argv[4]))
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
DBOS.destroy()
"""


class Scratch:
    """A scratch database on the server, dropped on exit."""

    def __init__(self, server: str, label: str) -> None:
        self.server = server
        self.name = f"fw_bench_{label}_{uuid.uuid4().hex[:8]}"
        self.url = f"{server.rpartition('/')[0]}/{self.name}"

    def __enter__(self) -> Scratch:
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *_: object) -> None:
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def start_processes(
    commands: list[list[str]], ready: str, env: dict[str, str]
) -> list[subprocess.Popen[str]]:
    processes = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for c in commands
    ]
    for process in processes:
        assert process.stdout is not None
        for line in process.stdout:
            if ready in line:
                break
        else:
            raise RuntimeError(f"a worker exited before it was ready (code {process.wait()})")
        # Keep draining its output so it never blocks on a full pipe.
        threading.Thread(target=lambda s=process.stdout: [None for _ in s], daemon=True).start()
    return processes


def stop_processes(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_count(url: str, query: str, target: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as c:
        while True:
            row = c.execute(query).fetchone()
            if row is not None and row[0] >= target:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out: {query} reached {row} of {target}")
            time.sleep(0.01)


def percentiles(latencies: list[float]) -> dict[str, float]:
    return {
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": statistics.quantiles(latencies, n=100)[98],
    }


# fw.


def make_app(parent: Path) -> Path:
    from framework.codegen import run_codegen

    root = parent / "pgbenchapp"
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "fw.toml").write_text(
        f'[app]\nname = "pgbenchapp"\n[runtime]\nconcurrency = {CONCURRENCY}\n'
    )
    (root / "workflows" / "three_workflow.py").write_text(textwrap.dedent(THREE))
    assert run_codegen(root).ok
    return root


def run_fw(server: str, root: Path, workers: int, instances: int, samples: int) -> dict[str, float]:
    with Scratch(server, "fw") as db:
        env = {
            **os.environ,
            "FW_DATABASE_URL": db.url,
            "PYTHONPATH": f"{root.parent}{os.pathsep}{REPO}",
        }
        created = asyncio.run(_fw_backlog(root, db.url, instances))
        command = [sys.executable, "-m", "framework", "worker", "--app", str(root)]
        processes = start_processes([command] * workers, "started on", env)
        try:
            wait_count(
                db.url, "SELECT count(*) FROM instances WHERE status = 'complete'", instances
            )
            with psycopg.connect(db.url) as c:
                row = c.execute(
                    "SELECT (SELECT max(updated_at) FROM instances) - min(started_at) FROM steps"
                ).fetchone()
            assert row is not None
            latencies = asyncio.run(_fw_latencies(root, db.url, samples))
        finally:
            stop_processes(processes)
    return {"instances_per_s": instances / float(row[0]), "create_s": created, **latencies}


async def _fw_backlog(root: Path, url: str, instances: int) -> float:
    """Create the backlog (migrating the scratch database first); return how long it took."""
    from framework.runtime.app import App

    sys.path.insert(0, str(root.parent))
    app = App(root, database=url)
    previous = app.install()
    handle = app.handle("three")
    await app.store()
    started = time.perf_counter()
    for first in range(0, instances, 100):
        await handle.create_batch(
            [{"params": None, "id": f"b{n}"} for n in range(first, min(instances, first + 100))]
        )
    elapsed = time.perf_counter() - started
    await app.close()
    app.uninstall(previous)
    return elapsed


async def _fw_latencies(root: Path, url: str, samples: int) -> dict[str, float]:
    from framework.runtime.app import App

    app = App(root, database=url)
    previous = app.install()
    handle = app.handle("three")
    latencies = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        for n in range(samples):
            instance = await handle.create(id=f"l{n}")
            await instance.result()
            cur = await c.execute(
                "SELECT s.started_at - i.created_at FROM steps s JOIN instances i "
                "ON i.id = s.instance_id WHERE s.instance_id = %s AND s.name = 'one'",
                [instance.id],
            )
            row = await cur.fetchone()
            assert row is not None
            latencies.append(float(row[0]) * 1000)
    await app.close()
    app.uninstall(previous)
    return percentiles(latencies)


# DBOS.


def run_dbos(
    server: str, workers: int, instances: int, samples: int, poll: float
) -> dict[str, float]:
    from dbos import DBOSClient

    with Scratch(server, "dbos") as db:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-c", DBOS_MIGRATE, db.url], env=env, check=True)
        client = DBOSClient(system_database_url=db.url)
        try:

            def enqueue(prefix: str, n: int) -> None:
                client.enqueue(
                    {"queue_name": "bench", "workflow_name": "three", "workflow_id": f"{prefix}{n}"}
                )

            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda n: enqueue("b", n), range(instances)))
            created = time.perf_counter() - started
            commands = [
                [sys.executable, "-c", DBOS_WORKER, db.url, f"w{n}", str(CONCURRENCY), str(poll)]
                for n in range(workers)
            ]
            processes = start_processes(commands, "ready", env)
            try:
                wait_count(db.url, DBOS_DONE.format("b"), instances)
                with psycopg.connect(db.url) as c:
                    row = c.execute(
                        "SELECT (SELECT max(updated_at) FROM dbos.workflow_status) "
                        "- min(started_at_epoch_ms) FROM dbos.operation_outputs"
                    ).fetchone()
                assert row is not None
                latencies = _dbos_latencies(enqueue, db.url, samples)
            finally:
                stop_processes(processes)
        finally:
            client.destroy()
    return {"instances_per_s": instances / (float(row[0]) / 1000), "create_s": created, **latencies}


DBOS_DONE = (
    "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS' "
    "AND workflow_uuid LIKE '{}%'"
)


def _dbos_latencies(enqueue: Any, url: str, samples: int) -> dict[str, float]:
    latencies = []
    with psycopg.connect(url, autocommit=True) as c:
        for n in range(samples):
            enqueue("l", n)
            wait_count(url, DBOS_DONE.format(f"l{n}"), 1)
            row = c.execute(
                "SELECT o.started_at_epoch_ms - w.created_at FROM dbos.operation_outputs o "
                "JOIN dbos.workflow_status w ON w.workflow_uuid = o.workflow_uuid "
                "WHERE o.workflow_uuid = %s AND o.function_id = 1",
                [f"l{n}"],
            ).fetchone()
            assert row is not None
            latencies.append(float(row[0]))
    return percentiles(latencies)


# The store alone: the same journal writes without any workflow code, for the ceiling.

STORE_LOOP = """
import asyncio, sys, time
from framework.store.postgres import PostgresStore
from framework.store.base import StepRow, Transition

async def main() -> None:
    store = PostgresStore(sys.argv[1])
    await store.open()
    owner, start_at, mode = sys.argv[2], float(sys.argv[3]), sys.argv[4]
    while time.time() < start_at:
        await asyncio.sleep(0.001)

    async def run(claim) -> None:
        i, now = claim.instance.id, time.time()
        if mode == "claims":  # claim one, end it: the cost of a claim and a release
            await store.apply(Transition(i, claim.token, status="complete"), now)
            return
        for n, name in enumerate(("one", "two", "three")):
            row = StepRow(i, name, 1, n, "do", "complete", 1, now, now, output=str(n + 1))
            await store.apply(Transition(i, claim.token, steps=[row]), now)
        await store.apply(Transition(i, claim.token, status="complete", output="3"), time.time())

    async def loop() -> None:
        idle = 0
        while idle < 3:
            now = time.time()
            claims = await store.claim(owner, 1 if mode == "claims" else 5, now, now + 30)
            idle = 0 if claims else idle + 1
            await asyncio.gather(*(run(c) for c in claims))

    await asyncio.gather(*(loop() for _ in range(10)))
    await store.close()

asyncio.run(main())
"""


def run_store_ceiling(
    server: str, workers: int, instances: int, mode: str = "steps"
) -> dict[str, float]:
    """Instances per second the store sustains for this workflow's writes (claim, three
    journal writes, completion) with no workflow code: the database side of the ceiling.
    With ``mode="claims"``: each instance claimed alone and ended, i.e. claims per second."""
    from framework.store.base import NewInstance
    from framework.store.postgres import PostgresStore

    with Scratch(server, "store") as db:

        async def backlog() -> None:
            store = PostgresStore(db.url)
            await store.open()
            for first in range(0, instances, 1000):
                await store.create_instances(
                    [
                        NewInstance(f"b{n}", "three", "null", time.time())
                        for n in range(first, min(instances, first + 1000))
                    ]
                )
            await store.close()

        asyncio.run(backlog())
        start_at = time.time() + 3
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", STORE_LOOP, db.url, f"s{n}", str(start_at), mode], env=env
            )
            for n in range(workers)
        ]
        for process in processes:
            process.wait(timeout=600)
        with psycopg.connect(db.url) as c:
            row = c.execute(
                "SELECT count(*), max(updated_at) FROM instances WHERE status = 'complete'"
            ).fetchone()
        assert row is not None and row[0] == instances, row
        return {"instances_per_s": instances / (float(row[1]) - start_at)}


# Report.


def report(results: dict[str, dict[str, dict[str, float]]], workers: list[int]) -> str:
    lines = [
        "| worker processes | fw inst/s | DBOS inst/s | fw/DBOS | fw p50 / p99 wake-up | "
        "DBOS p50 / p99 wake-up | DBOS/fw p50 | DBOS/fw p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for count in workers:
        fw, dbos = results["fw"].get(str(count), {}), results["dbos"].get(str(count), {})

        def ratio(a: float | None, b: float | None) -> str:
            return f"{a / b:.2f}x" if a and b else "-"

        lines.append(
            f"| {count} | {fw.get('instances_per_s', 0):.0f} | {dbos.get('instances_per_s', 0):.0f} | "
            f"{ratio(fw.get('instances_per_s'), dbos.get('instances_per_s'))} | "
            f"{fw.get('latency_p50_ms', 0):.1f} / {fw.get('latency_p99_ms', 0):.1f} ms | "
            f"{dbos.get('latency_p50_ms', 0):.1f} / {dbos.get('latency_p99_ms', 0):.1f} ms | "
            f"{ratio(dbos.get('latency_p50_ms'), fw.get('latency_p50_ms'))} | "
            f"{ratio(dbos.get('latency_p99_ms'), fw.get('latency_p99_ms'))} |"
        )
    lines.append("")
    lines.append("Ratios above 1x: fw is ahead (more instances per second, or a shorter wake-up).")
    if results.get("store"):
        ceiling = "; ".join(
            f"{count} processes: {results['store'][str(count)]['instances_per_s']:.0f} inst/s, "
            f"{results['store'][str(count)]['claims_per_s']:.0f} claims/s"
            for count in workers
            if str(count) in results["store"]
        )
        lines.append(
            "The store alone, the same writes without workflow code, and single claims each "
            f"ended at once ({ceiling})."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("FW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--dbos-poll", type=float, default=0.05)
    parser.add_argument("--skip-dbos", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer instances and samples")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.samples = 500, 50
    counts = [int(n) for n in args.workers.split(",")]
    results: dict[str, dict[str, dict[str, float]]] = {"fw": {}, "dbos": {}, "store": {}}
    with tempfile.TemporaryDirectory(prefix="fw-pgbench-") as scratch:
        root = make_app(Path(scratch))
        for count in counts:
            results["fw"][str(count)] = run_fw(
                args.database, root, count, args.instances, args.samples
            )
            print(f"fw, {count} workers: {results['fw'][str(count)]}", file=sys.stderr)
            results["store"][str(count)] = {
                **run_store_ceiling(args.database, count, args.instances),
                "claims_per_s": run_store_ceiling(args.database, count, args.instances, "claims")[
                    "instances_per_s"
                ],
            }
            print(
                f"store alone, {count} processes: {results['store'][str(count)]}", file=sys.stderr
            )
            if not args.skip_dbos:
                results["dbos"][str(count)] = run_dbos(
                    args.database, count, args.instances, args.samples, args.dbos_poll
                )
                print(f"DBOS, {count} workers: {results['dbos'][str(count)]}", file=sys.stderr)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "postgres.json").write_text(json.dumps({"args": vars(args), **results}, indent=2))
    print(
        f"{args.instances} instances of a 3-step workflow; {args.samples} wake-up samples; "
        f"worker concurrency {CONCURRENCY}; DBOS queue polling every {args.dbos_poll} s; "
        f"{os.cpu_count()} CPUs shared by PostgreSQL, the workers and the client"
    )
    print(report(results, counts))


if __name__ == "__main__":
    main()
