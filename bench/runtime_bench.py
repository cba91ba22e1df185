"""The runtime beside the physical floor and DBOS, measured in one run.

    .venv/bin/python -m bench.runtime_bench            # SQLite (needs `pip install dbos`)
    .venv/bin/python -m bench.runtime_bench --store postgres   # the same on PostgreSQL
    .venv/bin/python -m bench.runtime_bench --quick    # fewer instances

Each contender runs in its own process on a fresh database (SQLite: a file in WAL mode;
PostgreSQL: a scratch database on ``--database``, default ``FW_TEST_DATABASE_URL``):

- floor: a loop doing one INSERT + COMMIT per step, with fw's journal settings
  (SQLite: WAL, synchronous=FULL; PostgreSQL: one statement per transaction over one
  connection): the cost of making one step durable, and nothing else; on SQLite also the
  same commits handed one at a time from an asyncio loop to a writer thread, which is what
  any program that must not block its event loop pays;
- fw: the workflows through ``create`` and an in-process ``Worker``;
- DBOS: the same workflows with ``@DBOS.workflow`` / ``@DBOS.step`` on the same database,
  through its async API (``DBOS.start_workflow_async``, async steps) and through its sync API
  (``DBOS.start_workflow``, plain functions), each in its own process; fw is compared with
  the faster of the two.

Workloads: a workflow of 3 trivial steps started 1,000 times at once (instances/s and ms
per step), a workflow of 100 steps run one instance at a time (ms per step), and the
latency from ``create`` to the first step starting (p50, p99, one at a time). fw alone also
reports commits per step, the resident memory of a worker process holding 10,000 sleeping
and waiting instances, and the time of ``import framework``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

WORKFLOWS = {
    "three_workflow.py": """
        import time
        from framework import workflow, WorkflowContext

        FIRST_STEP: dict[str, float] = {}

        async def first(instance_id: str) -> int:
            FIRST_STEP[instance_id] = time.perf_counter()
            return 1

        async def add(x: int) -> int:
            return x + 1

        @workflow
        async def three(ctx: WorkflowContext[None]) -> int:
            x = await ctx.step.do("one", first, ctx.instance_id)
            x = await ctx.step.do("two", add, x)
            return await ctx.step.do("three", add, x)
    """,
    "hundred_workflow.py": """
        from framework import workflow, WorkflowContext

        async def add(x: int) -> int:
            return x + 1

        @workflow
        async def hundred(ctx: WorkflowContext[None]) -> int:
            x = 0
            for _ in range(100):
                x = await ctx.step.do("add", add, x)
            return x
    """,
    "sleeper_workflow.py": """
        from framework import workflow, WorkflowContext

        @workflow
        async def sleeper(ctx: WorkflowContext[int]) -> None:
            await ctx.step.do("start", lambda: ctx.params)
            if ctx.params % 2:
                await ctx.step.wait_for_event("approval", type="approval", timeout="30 days")
            else:
                await ctx.step.sleep("nap", "30 days")
    """,
}


def make_app(parent: Path) -> Path:
    """A throwaway app holding the benchmark workflows, generated."""
    from framework.codegen import run_codegen

    root = parent / "benchapp"
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "fw.toml").write_text('[app]\nname = "benchapp"\n[runtime]\nconcurrency = 200\n')
    for name, source in WORKFLOWS.items():
        (root / "workflows" / name).write_text(textwrap.dedent(source))
    assert run_codegen(root).ok
    return root


# The floor.


def run_floor(folder: Path, instances: int, long_steps: int) -> dict[str, float]:
    connection = sqlite3.connect(folder / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE steps (instance_id TEXT, name TEXT, count INTEGER, output TEXT, "
        "PRIMARY KEY (instance_id, name, count)) WITHOUT ROWID"
    )
    steps = instances * 3
    start = time.perf_counter()
    for n in range(steps):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO steps VALUES (?, ?, 1, ?)", (f"i-{n // 3}", f"s{n % 3}", "1")
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    for n in range(long_steps):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO steps VALUES ('long', 'add', ?, '1')", (n,))
        connection.execute("COMMIT")
    long_elapsed = time.perf_counter() - start
    connection.close()
    return {
        "three_instances_per_s": instances / elapsed,
        "three_ms_per_step": elapsed / steps * 1000,
        "hundred_ms_per_step": long_elapsed / long_steps * 1000,
    }


def run_floor_postgres(url: str, instances: int, long_steps: int) -> dict[str, float]:
    """The floor on PostgreSQL: one INSERT committed per step over one connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE steps (instance_id TEXT, name TEXT, count INTEGER, output TEXT, "
            "PRIMARY KEY (instance_id, name, count))"
        )
        insert = "INSERT INTO steps VALUES (%s, %s, %s, %s)"
        for n in range(10):  # warm up (the statement is prepared from its fifth use on)
            connection.execute(insert, ("warm", "s", n, "1"))
        steps = instances * 3
        start = time.perf_counter()
        for n in range(steps):
            connection.execute(insert, (f"i-{n // 3}", f"s{n % 3}", 1, "1"))
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        for n in range(long_steps):
            connection.execute(insert, ("long", "add", n, "1"))
        long_elapsed = time.perf_counter() - start
    return {
        "three_instances_per_s": instances / elapsed,
        "three_ms_per_step": elapsed / steps * 1000,
        "hundred_ms_per_step": long_elapsed / long_steps * 1000,
    }


def run_floor_threaded(folder: Path, long_steps: int) -> dict[str, float]:
    """The floor as an asyncio program must pay it: each commit handed to a writer thread
    and awaited, one after another (no workflow logic at all)."""
    from concurrent.futures import ThreadPoolExecutor

    connection = sqlite3.connect(
        folder / "threaded.db", isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE steps (n INTEGER PRIMARY KEY, output TEXT)")

    def commit(n: int) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO steps VALUES (?, '1')", (n,))
        connection.execute("COMMIT")

    async def loop() -> float:
        running = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as writer:
            start = time.perf_counter()
            for n in range(long_steps):
                await running.run_in_executor(writer, commit, n)
            return time.perf_counter() - start

    try:
        return {"hundred_ms_per_step": asyncio.run(loop()) / long_steps * 1000}
    finally:
        connection.close()


# fw.


async def run_fw(
    folder: Path, instances: int, long_runs: int, samples: int, database: str | None = None
) -> dict[str, float]:
    import importlib

    from framework import Worker
    from framework.runtime.app import App

    root = make_app(folder)
    sys.path.insert(0, str(folder))
    app = App(root, database=database) if database else App.for_root(root)
    app.install()
    module = importlib.import_module("benchapp.workflows.three_workflow")
    async with Worker(app, concurrency=200):
        store: Any = await app.store()
        three, hundred = app.handle("three"), app.handle("hundred")
        await (await three.create()).result()  # warm up: imports, schema, caches

        commits = getattr(store, "commits", 0)  # SQLite counts its transactions
        start = time.perf_counter()
        created = await asyncio.gather(*(three.create() for _ in range(instances)))
        await asyncio.gather(*(i.result() for i in created))
        elapsed = time.perf_counter() - start
        three_commits = getattr(store, "commits", 0) - commits

        start = time.perf_counter()
        for _ in range(long_runs):
            await (await hundred.create()).result()
        long_elapsed = time.perf_counter() - start

        latencies = []
        for _ in range(samples):
            began = time.perf_counter()
            instance = await three.create()
            await instance.result()
            latencies.append((module.FIRST_STEP[instance.id] - began) * 1000)
    return {
        "three_instances_per_s": instances / elapsed,
        "three_ms_per_step": elapsed / (instances * 3) * 1000,
        **({"three_commits_per_step": three_commits / (instances * 3)} if commits else {}),
        "hundred_ms_per_step": long_elapsed / (long_runs * 100) * 1000,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": statistics.quantiles(latencies, n=100)[98],
    }


async def run_fw_memory(folder: Path, count: int) -> dict[str, float]:
    """RSS of a worker process before and after it parks ``count`` instances."""
    from framework.runtime.app import App

    root = make_app(folder)
    sys.path.insert(0, str(folder))
    env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{REPO}"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "framework", "worker", "--app", str(root), "--concurrency", "200"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = App.for_root(root)
        handle = app.handle("sleeper")
        await _until_parked(app, handle, 1)
        base = _rss_mb(worker.pid)
        for first in range(0, count, 1000):
            await handle.create_batch(
                [{"params": n} for n in range(first, min(count, first + 1000))]
            )
        await _until_parked(app, handle, count + 1, already=1)
        parked = _rss_mb(worker.pid)
        await app.close()
    finally:
        worker.terminate()
        worker.wait(60)
    return {"worker_rss_idle_mb": base, "worker_rss_10k_parked_mb": parked, "parked": float(count)}


async def _until_parked(app: Any, handle: Any, count: int, already: int = 0) -> None:
    if not already:
        await handle.create(0)
    store = await app.store()
    while (await store.count_by_status()).get("sleeper", {}).get("waiting", 0) < count:
        await asyncio.sleep(0.2)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure_import() -> dict[str, float]:
    code = "import time; t = time.perf_counter(); import framework; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(7)
    ]
    return {"import_framework_ms": statistics.median(runs) * 1000}


# DBOS.


def run_dbos_sync(url: str, instances: int, long_runs: int, samples: int) -> dict[str, float]:
    """DBOS through its sync API: plain functions, ``DBOS.start_workflow`` (its thread pool)."""
    import logging

    from dbos import DBOS, DBOSConfig

    logging.getLogger("dbos").setLevel(logging.WARNING)
    config: DBOSConfig = {"name": "fwbench", "system_database_url": url}
    DBOS(config=config)
    first_step: dict[int, float] = {}

    @DBOS.step()
    def first(key: int) -> int:
        first_step[key] = time.perf_counter()
        return 1

    @DBOS.step()
    def add(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    def three(key: int) -> int:
        x = first(key)
        x = add(x)
        return add(x)

    @DBOS.workflow()
    def hundred() -> int:
        x = 0
        for _ in range(100):
            x = add(x)
        return x

    DBOS.launch()
    try:
        DBOS.start_workflow(three, -1).get_result()
        start = time.perf_counter()
        handles = [DBOS.start_workflow(three, n) for n in range(instances)]
        for handle in handles:
            handle.get_result()
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(long_runs):
            DBOS.start_workflow(hundred).get_result()
        long_elapsed = time.perf_counter() - start
        latencies = []
        for n in range(samples):
            key = 10_000_000 + n
            began = time.perf_counter()
            DBOS.start_workflow(three, key).get_result()
            latencies.append((first_step[key] - began) * 1000)
    finally:
        DBOS.destroy()
    return {
        "three_instances_per_s": instances / elapsed,
        "three_ms_per_step": elapsed / (instances * 3) * 1000,
        "hundred_ms_per_step": long_elapsed / (long_runs * 100) * 1000,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": statistics.quantiles(latencies, n=100)[98],
    }


async def run_dbos(url: str, instances: int, long_runs: int, samples: int) -> dict[str, float]:
    import logging

    from dbos import DBOS, DBOSConfig

    logging.getLogger("dbos").setLevel(logging.WARNING)
    config: DBOSConfig = {"name": "fwbench", "system_database_url": url}
    DBOS(config=config)
    first_step: dict[int, float] = {}

    @DBOS.step()
    async def first(key: int) -> int:
        first_step[key] = time.perf_counter()
        return 1

    @DBOS.step()
    async def add(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    async def three(key: int) -> int:
        x = await first(key)
        x = await add(x)
        return await add(x)

    @DBOS.workflow()
    async def hundred() -> int:
        x = 0
        for _ in range(100):
            x = await add(x)
        return x

    DBOS.launch()
    try:
        await (await DBOS.start_workflow_async(three, -1)).get_result()
        start = time.perf_counter()
        handles = await asyncio.gather(
            *(DBOS.start_workflow_async(three, n) for n in range(instances))
        )
        await asyncio.gather(*(h.get_result() for h in handles))
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(long_runs):
            await (await DBOS.start_workflow_async(hundred)).get_result()
        long_elapsed = time.perf_counter() - start
        latencies = []
        for n in range(samples):
            key = 10_000_000 + n
            began = time.perf_counter()
            await (await DBOS.start_workflow_async(three, key)).get_result()
            latencies.append((first_step[key] - began) * 1000)
    finally:
        DBOS.destroy()
    return {
        "three_instances_per_s": instances / elapsed,
        "three_ms_per_step": elapsed / (instances * 3) * 1000,
        "hundred_ms_per_step": long_elapsed / (long_runs * 100) * 1000,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": statistics.quantiles(latencies, n=100)[98],
    }


# Orchestration.


def contender(name: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one contender in a fresh process and return its figures."""
    command = [
        sys.executable,
        "-m",
        "bench.runtime_bench",
        "--only",
        name,
        "--instances",
        str(args.instances),
        "--long-runs",
        str(args.long_runs),
        "--samples",
        str(args.samples),
        "--parked",
        str(args.parked),
        "--store",
        args.store,
        "--database",
        args.database,
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}  # type: ignore[dict-item]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_one(name: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"fw-bench-{name}-") as scratch:
        folder = Path(scratch)
        if args.store == "postgres":
            with Scratch(args.database, name.replace("-", "_")) as url:
                return _run_one(name, args, folder, url)
        return _run_one(name, args, folder, None)


def _run_one(
    name: str, args: argparse.Namespace, folder: Path, url: str | None
) -> dict[str, float]:
    if name == "floor":
        if url is not None:
            return run_floor_postgres(url, args.instances, args.long_runs * 100)
        return {
            **run_floor(folder, args.instances, args.long_runs * 100),
            "threaded": run_floor_threaded(folder, args.long_runs * 100)["hundred_ms_per_step"],
        }
    if name == "fw":
        return {
            **asyncio.run(run_fw(folder, args.instances, args.long_runs, args.samples, url)),
            **measure_import(),
        }
    if name == "fw-memory":
        return asyncio.run(run_fw_memory(folder, args.parked))
    dbos_url = url or f"sqlite:///{folder / 'dbos.sqlite'}"
    if name == "dbos":
        return asyncio.run(run_dbos(dbos_url, args.instances, args.long_runs, args.samples))
    if name == "dbos-sync":
        return run_dbos_sync(dbos_url, args.instances, args.long_runs, args.samples)
    raise ValueError(name)


class Scratch:
    """A scratch PostgreSQL database on ``server``, dropped on exit."""

    def __init__(self, server: str, label: str) -> None:
        self.server = server
        self.name = f"fw_rt_{label}_{os.getpid()}"
        self.url = f"{server.rpartition('/')[0]}/{self.name}"

    def __enter__(self) -> str:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')  # type: ignore[arg-type]
        return self.url

    def __exit__(self, *_: object) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')  # type: ignore[arg-type]


CONTENDERS = ["floor", "fw", "dbos", "dbos-sync", "fw-memory"]


def _medians(figures: list[dict[str, float]]) -> dict[str, float]:
    """Per figure, the median over the rounds that produced it."""
    keys = {key for one in figures for key, value in one.items() if isinstance(value, float)}
    return {
        key: statistics.median(one[key] for one in figures if isinstance(one.get(key), float))
        for key in keys
    }


def report(results: dict[str, dict[str, float]]) -> str:
    fw, floor = results["fw"], results["floor"]
    dbos, dbos_sync = results.get("dbos", {}), results.get("dbos-sync", {})
    lines = [
        "| measure | fw | floor | DBOS async | DBOS sync | fw vs floor | fw vs faster DBOS |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label: str, key: str, unit: str, higher_is_better: bool) -> None:
        ours, base = fw.get(key), floor.get(key)
        peers = [v for v in (dbos.get(key), dbos_sync.get(key)) if isinstance(v, float)]
        peer = (max(peers) if higher_is_better else min(peers)) if peers else None

        def ratio(other: float | None) -> str:
            if ours is None or not isinstance(other, float):
                return "-"
            return f"{(ours / other if higher_is_better else other / ours):.2f}x"

        def shown(value: float | None) -> str:
            return f"{value:.3g} {unit}" if isinstance(value, float) else "-"

        lines.append(
            f"| {label} | {shown(ours)} | {shown(base)} | {shown(dbos.get(key))} | "
            f"{shown(dbos_sync.get(key))} | {ratio(base)} | {ratio(peer)} |"
        )

    row("3-step workflow x N: throughput", "three_instances_per_s", "inst/s", True)
    row("3-step workflow x N: time per step", "three_ms_per_step", "ms", False)
    row("100-step workflow: time per step", "hundred_ms_per_step", "ms", False)
    row("create -> first step, p50", "latency_p50_ms", "ms", False)
    row("create -> first step, p99", "latency_p99_ms", "ms", False)
    lines.append("")
    lines.append("Ratios: how many times better fw is (above 1x: fw is faster).")
    threaded = floor.get("threaded")
    if isinstance(threaded, float):
        lines.append(
            f"Floor of an asyncio program (each commit awaited from a writer thread, one at a "
            f"time): {threaded:.3g} ms per step; fw's 100-step workflow is "
            f"{threaded / fw['hundred_ms_per_step']:.2f}x of it."
        )
    lines.append(
        f"fw commits per step (3-step workload): {fw.get('three_commits_per_step', float('nan')):.2f}"
    )
    memory = results.get("fw-memory", {})
    if "worker_rss_10k_parked_mb" in memory:
        lines.append(
            f"fw worker RSS: {memory['worker_rss_idle_mb']:.0f} MB idle, "
            f"{memory['worker_rss_10k_parked_mb']:.0f} MB with {memory['parked']:,.0f} instances sleeping or waiting"
        )
    lines.append(f"import framework: {fw.get('import_framework_ms', float('nan')):.1f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=CONTENDERS)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database",
        default=os.environ.get("FW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="the PostgreSQL server for --store postgres (scratch databases are made on it)",
    )
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--long-runs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--parked", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (medians)")
    parser.add_argument("--skip", default="", help="contenders to leave out, comma-separated")
    parser.add_argument("--quick", action="store_true", help="fewer instances and samples")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.long_runs, args.samples, args.parked = 200, 2, 50, 2000
    if args.only:
        print(json.dumps(run_one(args.only, args)))
        return
    skipped = set(args.skip.split(",")) | ({"fw-memory"} if args.store == "postgres" else set())
    names = [name for name in CONTENDERS if name not in skipped]
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            rounds[name].append(contender(name, args))
            print(f"{name}: {rounds[name][-1]}", file=sys.stderr)
    results = {name: _medians(figures) for name, figures in rounds.items()}
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"runtime-{args.store}.json").write_text(json.dumps(results, indent=2))
    print(
        f"{args.store}: instances: {args.instances}, 100-step runs: {args.long_runs}, "
        f"latency samples: {args.samples}, rounds: {args.rounds} (medians)"
    )
    print(report(results))


if __name__ == "__main__":
    main()
