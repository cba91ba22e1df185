"""fw with a long history: the same figures on an empty store and with 10k, 100k, 1M ended
instances (and their steps) stored, on each store.

    .venv/bin/python -m bench.history_bench                          # both stores, 10k..1M
    .venv/bin/python -m bench.history_bench --store sqlite --sizes 10000,100000
    .venv/bin/python -m bench.history_bench --prune                  # then time `fw prune`

History is bulk-loaded, not run: realistic rows (``complete`` 90 %, ``errored`` 7 %,
``terminated`` 3 %, over three workflows, three journal entries each, created over the last
30 days) go in with one ``executemany`` per 10,000 rows on SQLite (through fw's triggers:
counts, id index) and ``COPY`` per 50,000 on PostgreSQL, while an in-process ``Worker`` is
running. Then, at each size, with the worker still running:

- create → first step: one instance at a time, from ``create`` to its first step's body (p50);
- per step: a 50-step workflow run alone (ms per step);
- the first page of ``list`` (50 rows), unfiltered, by workflow, by status, by both;
- the Studio instances page (``GET /studio/instances``) and workflows page (``GET /studio``,
  which counts instances by status), through the ASGI app in process;
- an id search (Studio's ``q``: ids containing a piece of one old id), and ``find_instance``
  by the first 10 characters of an old id (what the CLI does with a typed prefix);
- ``count_by_status``.

Each figure is the median of ``--samples`` runs, taken alternately on the loaded store and on
an "empty" one in the same process (400 ended instances: two full pages of every list
measured, filtered or not), and shown as the ratio to the empty store's (the target: within
1.5x).

With ``--prune``, what ``fw prune --older-than '1 day'`` does runs in a separate process
(``--prune-app``: fw's prune, each batch printed with its instances, how long it held the
write lock or its transaction, and how long the call took with any wait for the lock) and
deletes the history (stopped after ``--prune-seconds``) while the worker runs 200-step
instances one after another: the gaps between consecutive steps (each holds a step's
commit: the longest is the longest a worker's commit waited) are compared with as long a
run without prune just after.

PostgreSQL uses a scratch database on ``--database`` (default ``FW_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import itertools
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.postgres_bench import Scratch

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
    "fifty_workflow.py": """
        from framework import workflow, WorkflowContext

        async def add(x: int) -> int:
            return x + 1

        @workflow
        async def fifty(ctx: WorkflowContext[None]) -> int:
            x = 0
            for _ in range(50):
                x = await ctx.step.do("add", add, x)
            return x
    """,
    "ticker_workflow.py": """
        import time
        from framework import workflow, WorkflowContext

        TICKS: list[tuple[str, float]] = []

        async def tick(instance_id: str) -> None:
            TICKS.append((instance_id, time.perf_counter()))

        @workflow
        async def ticker(ctx: WorkflowContext[None]) -> None:
            for _ in range(200):
                await ctx.step.do("tick", tick, ctx.instance_id)
    """,
    "report_workflow.py": """
        from framework import workflow, WorkflowContext

        async def add(x: int) -> int:
            return x + 1

        @workflow
        async def report(ctx: WorkflowContext[int]) -> int:
            return await ctx.step.do("add", add, ctx.params)
    """,
}
HISTORY_WORKFLOWS = ("three", "three", "report", "report", "fifty")
ERROR = (
    '{"name":"ConnectionError","message":"the payment service did not answer",'
    '"step":"charge","retryable":true}'
)
CHUNK = 50_000
PAGE = 50
LISTED_WORKFLOW = "report"
LISTED_STATUS = "errored"
LISTED_BOTH = ("fifty", "terminated")


def make_app(parent: Path, package: str, url: str) -> Path:
    from framework.codegen import run_codegen

    root = parent / package
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "fw.toml").write_text(
        f'[app]\nname = "{package}"\n[runtime]\ndatabase = "{url}"\nconcurrency = 50\n'
    )
    for name, source in WORKFLOWS.items():
        (root / "workflows" / name).write_text(textwrap.dedent(source))
    assert run_codegen(root).ok
    return root


# Bulk loading.


def history_rows(
    start: int, stop: int, now: float, workflow: str | None = None, status: str | None = None
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Instances number ``start`` to ``stop`` of the history, oldest first, with their steps
    (all of ``workflow`` and in ``status`` if given)."""
    only_workflow, only_status = workflow, status
    rng = random.Random(start)
    span = 30 * 86400.0
    for n in range(start, stop):
        created = now - span - 86400 + n * 0.1  # older than a day, in creation order
        roll = rng.random()
        status = "complete" if roll < 0.90 else "errored" if roll < 0.97 else "terminated"
        status = only_status or status
        instance_id = uuid.UUID(int=rng.getrandbits(128)).hex
        workflow = only_workflow or HISTORY_WORKFLOWS[n % len(HISTORY_WORKFLOWS)]
        output = '{"total":12.5,"items":3}' if status == "complete" else None
        error = ERROR if status != "complete" else None
        params = f'{{"order":{n},"customer":"c-{n % 9973:05d}","express":false}}'
        instance = (
            instance_id, workflow, status, params, output, error, "v1", None, 0,
            created, created + 0.012, None, None, None, 0, None, None,
        )  # fmt: skip
        steps = [
            (
                instance_id, name, 1, seq, "do", "complete" if seq < 2 or status == "complete"
                else "errored", 1, created + 0.002 * seq, created + 0.002 * seq + 0.001, None,
                f'{{"x":{seq}}}', str(seq + 1) if seq < 2 or status == "complete" else None,
                ERROR if seq == 2 and status != "complete" else None, None,
            )
            for seq, name in enumerate(("one", "two", "three"))
        ]  # fmt: skip
        yield instance, steps


INSTANCE_COLUMNS = (
    "id, workflow, status, params, output, error, version, parent_id, generation, created_at, "
    "updated_at, wake_at, lease_owner, lease_token, crash_count, crashes, control"
)
STEP_COLUMNS = (
    "instance_id, name, count, seq, kind, status, attempts, started_at, finished_at, wake_at, "
    "input, output, error, detail"
)


def chunks(
    start: int, stop: int, now: float, *only: str | None, size: int = CHUNK
) -> Iterator[tuple[list[Any], list[Any]]]:
    for low in range(start, stop, size):
        instances: list[Any] = []
        steps: list[Any] = []
        for instance, its_steps in history_rows(low, min(stop, low + size), now, *only):
            instances.append(instance)
            steps.extend(its_steps)
        yield instances, steps


def load_sqlite(path: str, start: int, stop: int, now: float, *only: str | None) -> None:
    c = sqlite3.connect(path, isolation_level=None, timeout=60)
    c.execute("PRAGMA synchronous=OFF")
    c.execute("PRAGMA cache_size=-1000000")
    # Smaller transactions than on PostgreSQL: each holds the only write lock.
    for instances, steps in chunks(start, stop, now, *only, size=CHUNK // 5):
        c.execute("BEGIN IMMEDIATE")
        c.executemany(
            f"INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES ({','.join('?' * 17)})", instances
        )
        c.executemany(f"INSERT INTO steps ({STEP_COLUMNS}) VALUES ({','.join('?' * 14)})", steps)
        c.execute("COMMIT")
    c.close()


def load_postgres(url: str, start: int, stop: int, now: float, *only: str | None) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        for instances, steps in chunks(start, stop, now, *only):
            with c.transaction(), c.cursor() as cur:
                with cur.copy(f"COPY instances ({INSTANCE_COLUMNS}) FROM STDIN") as copy:
                    for row in instances:
                        copy.write_row(row)
                with cur.copy(f"COPY steps ({STEP_COLUMNS}) FROM STDIN") as copy:
                    for row in steps:
                        copy.write_row(row)
        c.execute("ANALYZE instances")  # as autovacuum would after a load this size
        c.execute("ANALYZE steps")


def load_into(url: str, start: int, stop: int, now: float, *only: str | None) -> None:
    """History rows ``start`` to ``stop`` (all of workflow ``only[0]`` and in status
    ``only[1]`` if given)."""
    if url.startswith("sqlite"):
        load_sqlite(url.removeprefix("sqlite:///"), start, stop, now, *only)
    else:
        load_postgres(url, start, stop, now, *only)


def load_full_pages(url: str, now: float) -> None:
    """The "empty" store: two pages of history, and two pages of each filter measured, so
    every list reads a full page there too (an unfiltered history of 100 instances holds
    7 errored ones and 1 terminated "fifty": a page of 7 rows or 1 would be cheaper than a
    full page for its size alone, not for the size of the history)."""
    load_into(url, 0, 2 * PAGE, now)
    for n, only in enumerate(((LISTED_WORKFLOW, None), (None, LISTED_STATUS), LISTED_BOTH)):
        load_into(url, 1000 * (n + 1), 1000 * (n + 1) + 2 * PAGE, now, *only)


def store_size(url: str) -> str:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return f"{total / 2**20:.0f} MB"
    import psycopg

    with psycopg.connect(url) as c:
        row = c.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        assert row is not None
        return str(row[0])


# Measuring.


def figures(bench: Bench) -> dict[str, Callable[[], Awaitable[float]]]:
    """Every figure on one store: a function taking one sample (ms)."""
    from framework.runtime.instance_ids import find_instance

    app, client, probe = bench.app, bench.client, bench.probe
    module = importlib.import_module(f"{bench.package}.workflows.three_workflow")

    async def first_step() -> float:
        began = time.perf_counter()
        instance = await app.handle("three").create()
        await instance.result(timeout=30)
        return (module.FIRST_STEP[instance.id] - began) * 1000

    async def per_step() -> float:
        began = time.perf_counter()
        await (await app.handle("fifty").create()).result(timeout=60)
        return (time.perf_counter() - began) * 1000 / 50

    def timed(fn: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[float]]:
        async def sample() -> float:
            began = time.perf_counter()
            await fn()
            return (time.perf_counter() - began) * 1000

        return sample

    async def page(**filters: str) -> object:
        return await (await app.store()).list_instances(limit=PAGE, **filters)

    async def get(path: str) -> object:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response

    async def count() -> object:
        return await (await app.store()).count_by_status()

    async def find() -> object:
        return await find_instance(await app.store(), probe[:10])

    return {
        "create → first step": first_step,
        "per step (50-step workflow)": per_step,
        "list, first page": timed(page),
        "list by workflow": timed(lambda: page(workflow=LISTED_WORKFLOW)),
        "list by status": timed(lambda: page(status=LISTED_STATUS)),
        "list by workflow + status": timed(
            lambda: page(workflow=LISTED_BOTH[0], status=LISTED_BOTH[1])
        ),
        "Studio instances page": timed(lambda: get("/studio/instances")),
        "Studio workflows page": timed(lambda: get("/studio")),
        "id search (Studio q)": timed(lambda: get(f"/studio/instances?q={probe[4:16]}")),
        "find_instance by prefix": timed(find),
        "count_by_status": timed(count),
    }


async def commit_gaps(
    app: Any, module: Any, until: Callable[[], bool], least: float
) -> list[float]:
    """The gaps between one step's body and the next of 200-step instances run one after
    another (ms): each holds the commit of a step, so the longest is the longest a worker's
    commit waited."""
    ticker = app.handle("ticker")
    began = time.perf_counter()
    gaps: list[float] = []
    while not until() or time.perf_counter() - began < least:
        instance = await ticker.create()
        await instance.result(timeout=600)
        times = [t for i, t in module.TICKS if i == instance.id]
        module.TICKS.clear()
        gaps.extend((b - a) * 1000 for a, b in itertools.pairwise(times))
    return gaps


async def measure_prune(app: Any, package: str, root: Path, seconds: float) -> dict[str, Any]:
    """``fw prune`` of the history (stopped after ``seconds``) while a worker runs 200-step
    instances one after another: the gaps between their steps, against as long a run without
    prune just before."""
    module = importlib.import_module(f"{package}.workflows.ticker_workflow")
    store = await app.store()
    before_counts = await store.count_by_status()
    command = [sys.executable, "-m", "bench.history_bench", "--prune-app", str(root)]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)

    def ended() -> bool:
        if process.poll() is None and time.perf_counter() - began > seconds:
            process.send_signal(signal.SIGTERM)  # between batches or in one: both are safe
            process.wait()
        return process.poll() is not None

    with worker_commits() as commits:
        during = await commit_gaps(app, module, ended, 0)
    took = time.perf_counter() - began
    batches = [line.split() for line in process.communicate()[0].splitlines()]
    held = [float(b[2]) for b in batches if b and b[0] == "batch"]
    calls = [float(b[3]) for b in batches if b and b[0] == "batch"]
    sizes = [int(b[1]) for b in batches if b and b[0] == "batch"]
    statements = [float(b[4]) for b in batches if b and b[0] == "batch"]
    after_counts = await store.count_by_status()
    with worker_commits() as alone:
        before = await commit_gaps(app, module, lambda: True, min(took, 60))

    def total(counts: dict[str, dict[str, int]]) -> int:
        return sum(
            n for w, by_status in counts.items() if w != "ticker" for n in by_status.values()
        )

    def shown(gaps: list[float]) -> str:
        over = sum(1 for g in gaps if g > 100)
        return (
            f"p50 {statistics.median(gaps):.2f} p99 {statistics.quantiles(gaps, n=100)[98]:.1f} "
            f"max {max(gaps):.1f} ms, {over} of {len(gaps)} over 100 ms"
        )

    def slow(commits: list[tuple[float, float, float]]) -> str:
        over = [c for c in commits if sum(c) > 50]
        worst = sorted(over, key=sum, reverse=True)[:12]
        return f"{len(over)} of {len(commits)}, the longest " + (
            ", ".join(f"{w:.0f}/{s:.0f}/{c:.0f}" for w, s, c in worst) or "none"
        )

    pruned = total(before_counts) - total(after_counts)
    return {
        "prune seconds": round(took, 1),
        "instances pruned": pruned,
        "rows pruned (instances and steps)": pruned * 4,
        "pruned instances per second": round(pruned / took),
        "prune batches": f"{len(held)}, instances each p50 {statistics.median(sizes)}",
        "batch from its first statement to its commit (SQLite: with any WAL checkpoint run after it)": (
            f"p50 {statistics.median(held):.1f} max {max(held):.1f} ms"
        ),
        "batch statements (before the commit)": (
            f"p50 {statistics.median(statements):.1f} max {max(statements):.1f} ms"
        ),
        "batch call, with waiting for the lock": (
            f"p50 {statistics.median(calls):.1f} max {max(calls):.1f} ms"
        ),
        "step gaps during prune": shown(during),
        "the worker's commits over 50 ms during prune: lock wait / statements / commit": (
            slow(commits)
        ),
        "step gaps without prune": shown(before),
        "the worker's commits over 50 ms without prune": slow(alone),
    }


@contextlib.contextmanager
def worker_commits() -> Generator[list[tuple[float, float, float]]]:
    """Every commit of this process's SQLite writers meanwhile, in ms: waiting for the write
    lock (``BEGIN IMMEDIATE``), its statements, its ``COMMIT`` (with the disk flush and any
    checkpoint it ran)."""
    from framework.store import sqlite_writer

    found: list[tuple[float, float, float]] = []
    original = sqlite_writer.SQLiteWriter._commit
    original_durability = sqlite_writer.SQLiteWriter._set_durability

    def set_durability(self: Any, connection: Any, durable: bool) -> None:
        original_durability(self, connection, durable)
        self._bench_begin = time.perf_counter()

    def commit(self: Any, connection: Any, group: Any) -> Any:
        marks: list[float] = []
        for item in group:
            fn = item.fn

            def timed(c: Any, fn: Any = fn) -> Any:
                marks.append(time.perf_counter())
                try:
                    return fn(c)
                finally:
                    marks.append(time.perf_counter())

            item.fn = timed
        outcomes = original(self, connection, group)
        if marks:
            ended = time.perf_counter()
            begun = getattr(self, "_bench_begin", marks[0])
            found.append(
                (
                    (marks[0] - begun) * 1000,
                    (marks[-1] - marks[0]) * 1000,
                    (ended - marks[-1]) * 1000,
                )
            )
        return outcomes

    sqlite_writer.SQLiteWriter._commit = commit  # type: ignore[method-assign]
    sqlite_writer.SQLiteWriter._set_durability = set_durability  # type: ignore[method-assign]
    try:
        yield found
    finally:
        sqlite_writer.SQLiteWriter._commit = original  # type: ignore[method-assign]
        sqlite_writer.SQLiteWriter._set_durability = original_durability  # type: ignore[method-assign]


@dataclass
class Bench:
    package: str
    url: str
    app: Any = None
    client: Any = None
    probe: str = ""
    """The id searched for: the oldest instance (searching it scans them all)."""


async def side_by_side(benches: list[Bench], samples: int) -> list[dict[str, float]]:
    """Every figure on each store, samples alternating between the stores; the medians."""
    found: list[dict[str, list[float]]] = [{} for _ in benches]
    sampled = [figures(bench) for bench in benches]
    for key in sampled[0]:
        # The reads take a millisecond or less: three times the samples, against the noise.
        runs = (
            samples // 5
            if key.startswith("per step")
            else samples
            if key.startswith("create")
            else 3 * samples
        )
        for fns in sampled:
            await fns[key]()  # warm
        for n in range(max(2, runs)):
            order = list(zip(sampled, found, strict=True))
            for fns, into in order if n % 2 else order[::-1]:
                into.setdefault(key, []).append(await fns[key]())
    return [{key: statistics.median(values) for key, values in f.items()} for f in found]


async def run_store(
    label: str,
    urls: tuple[str, str],
    sizes: list[int],
    samples: int,
    prune: bool,
    prune_seconds: float,
) -> None:
    import httpx

    from framework import Worker
    from framework.http import create_app
    from framework.runtime.app import App

    with tempfile.TemporaryDirectory(prefix="fw-history-bench-") as scratch:
        sys.path.insert(0, scratch)
        benches = [Bench("hb_empty", urls[0]), Bench("hb_full", urls[1])]
        async with contextlib.AsyncExitStack() as stack:
            for bench in benches:
                root = make_app(Path(scratch), bench.package, bench.url)
                bench.app = App.for_root(root)
                await stack.enter_async_context(Worker(bench.app, concurrency=50))
                transport = httpx.ASGITransport(app=create_app(bench.app, token=""))
                bench.client = await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://bench")
                )
                if bench.package == "hb_empty":  # full pages on both stores
                    await asyncio.to_thread(load_full_pages, bench.url, time.time())
                first = await bench.app.handle("three").create()
                await first.result(timeout=30)
                bench.probe = first.id
            now = time.time()
            benches[1].probe = next(history_rows(0, 1, now))[0][0]
            loaded = 0
            table: dict[str, dict[str, float]] = {}
            for size in sizes:
                began = time.perf_counter()
                await asyncio.to_thread(load_into, urls[1], loaded, size, now)
                took = time.perf_counter() - began
                loaded = size
                empty, full = await side_by_side(benches, samples)
                name = f"{size:,}"
                table[f"empty (beside {name})"] = empty
                table[name] = full
                print(f"{label} {name}: loaded in {took:.0f} s, {store_size(urls[1])}", flush=True)
                print(report(label, table), flush=True)
            if prune:
                root = Path(scratch) / benches[1].package
                found = await measure_prune(benches[1].app, benches[1].package, root, prune_seconds)
                print(f"{label} prune: {found}", flush=True)
        for bench in benches:  # once their workers stopped (closing it first stops them blind)
            await bench.app.close()
        sys.path.remove(scratch)


def prune_app(root: Path) -> None:
    """``fw prune --older-than '1 day'`` on the app at ``root``, printing each batch: the
    instances it deleted, how long it held the write lock (SQLite: from its first statement
    to its commit; PostgreSQL: its transaction) and how long the call took (with any wait for
    the lock), in ms. Ends on SIGTERM."""
    from framework.runtime.app import App
    from framework.runtime.retention import Retention, prune
    from framework.store import sqlite as sqlite_store
    from framework.store import sqlite_writer

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    began: list[float] = []
    held: list[float] = []
    delete = sqlite_store._prune
    commit = sqlite_writer.SQLiteWriter._commit

    deleting: list[float] = []

    def timed_delete(*args: Any) -> Any:
        began.append(time.perf_counter())
        try:
            return delete(*args)
        finally:
            deleting.append((time.perf_counter() - began[-1]) * 1000)

    def timed_commit(self: Any, connection: Any, group: Any) -> Any:
        outcomes = commit(self, connection, group)
        if began:
            held.append((time.perf_counter() - began.pop()) * 1000)
        return outcomes

    sqlite_store._prune = timed_delete  # type: ignore[assignment]
    sqlite_writer.SQLiteWriter._commit = timed_commit  # type: ignore[method-assign]

    async def main() -> None:
        app = App.for_root(root)
        store = await app.store()
        original = store.prune

        async def timed_prune(*args: Any, **kwargs: Any) -> int:
            start = time.perf_counter()
            deleted = await original(*args, **kwargs)
            call = (time.perf_counter() - start) * 1000
            lock = held.pop() if held else call
            statements = deleting.pop() if deleting else call
            print(f"batch {deleted} {lock:.2f} {call:.2f} {statements:.2f}", flush=True)
            return deleted

        store.prune = timed_prune  # type: ignore[method-assign]
        await prune(app, Retention(success=86400.0, error=86400.0))
        await app.close()

    asyncio.run(main())


def report(label: str, table: dict[str, dict[str, float]]) -> str:
    """Each size beside the empty store measured in the same rounds."""
    sizes = [name for name in table if not name.startswith("empty")]
    lines = [
        f"\n{label}: median ms; in brackets, the ratio to an empty store measured in the same "
        "rounds",
        "| measure | empty | " + " | ".join(sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for key in table[sizes[0]]:
        empties = [table[f"empty (beside {s})"][key] for s in sizes]
        cells = [f"{statistics.median(empties):.2f}"] + [
            f"{table[s][key]:.2f} ({table[s][key] / table[f'empty (beside {s})'][key]:.2f}x)"
            for s in sizes
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--samples", type=int, default=30, help="per figure and store")
    parser.add_argument("--prune", action="store_true", help="then prune the history")
    parser.add_argument(
        "--prune-seconds", type=float, default=120, help="stop the prune after this long"
    )
    parser.add_argument("--database", default=os.environ.get("FW_TEST_DATABASE_URL"))
    parser.add_argument("--prune-app", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.prune_app:
        prune_app(options.prune_app)
        return
    sizes = [int(s) for s in options.sizes.split(",")]
    if options.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="fw-history-db-") as folder:
            urls = (f"sqlite:///{folder}/empty.db", f"sqlite:///{folder}/history.db")
            asyncio.run(
                run_store(
                    "SQLite", urls, sizes, options.samples, options.prune, options.prune_seconds
                )
            )
    if options.store in ("postgres", "both"):
        if not options.database:
            print("PostgreSQL skipped: set FW_TEST_DATABASE_URL or pass --database")
            return
        with (
            Scratch(options.database, "empty") as empty,
            Scratch(options.database, "history") as full,
        ):
            urls = (empty.url, full.url)
            asyncio.run(
                run_store(
                    "PostgreSQL", urls, sizes, options.samples, options.prune, options.prune_seconds
                )
            )


if __name__ == "__main__":
    main()
