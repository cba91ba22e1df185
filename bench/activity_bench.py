"""Studio's activity chart on a big store: the time of its store queries (``count_ended``,
one per chart) beside the query every Studio page already runs (``count_by_status``).

    .venv/bin/python -m bench.activity_bench                 # SQLite, and PostgreSQL when reachable
    .venv/bin/python -m bench.activity_bench --instances 200000 --rounds 15

The worst case for the day chart: ``--instances`` instances of one workflow (``busy``) that
all ended within the last day, beside 20,000 of four other workflows that ended over the last
week and 5,000 still going. Rows are inserted in bulk (the schema is the store's own,
migrated by ``open()``). Each round times, one after another, the hour chart's query, the day
chart's query, the whole ``workflow_activity`` (both queries and the drawing) and
``count_by_status``; medians over the rounds, and their ratio to ``count_by_status``.
PostgreSQL uses a scratch database on ``--database`` (default ``FW_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.postgres_bench import Scratch
from framework.http.activity import WINDOWS, ActivityCache, window_start, workflow_activity
from framework.store import open_store
from framework.store.base import Store

COLUMNS = "id, workflow, status, params, created_at, updated_at, wake_at"


def rows(instances: int, now: float) -> list[tuple[Any, ...]]:
    rng = random.Random(1)
    found: list[tuple[Any, ...]] = []
    for i in range(instances):
        ended = now - rng.uniform(0, 86_000)
        status = "errored" if rng.random() < 0.05 else "complete"
        found.append(
            (f"busy-{i}", "busy", status, "{}", ended - rng.lognormvariate(0, 1.5), ended, None)
        )
    for i in range(20_000):
        ended = now - rng.uniform(0, 7 * 86_400)
        found.append((f"other-{i}", f"other-{i % 4}", "complete", "{}", ended - 2.0, ended, None))
    for i in range(5_000):
        found.append((f"going-{i}", "busy", "waiting", "{}", now - 10.0, now - 5.0, now + 3600))
    return found


async def seed(store: Store, url: str, data: list[tuple[Any, ...]]) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as c:
            c.executemany(f"INSERT INTO instances ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", data)
            c.execute("ANALYZE")
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        async with c.cursor().copy(f"COPY instances ({COLUMNS}) FROM STDIN") as copy:
            for row in data:
                await copy.write_row(row)
        await c.execute("ANALYZE instances")


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await work()
    return (time.perf_counter() - began) * 1000


async def bench(url: str, label: str, instances: int, rounds: int) -> None:
    store = open_store(url)
    await store.open()
    now = time.time()
    try:
        began = time.perf_counter()
        await seed(store, url, rows(instances, now))
        print(
            f"{label}: seeded {instances + 25_000:,} instances in {time.perf_counter() - began:.1f} s"
        )
        hour, day = WINDOWS
        since_hour, since_day = window_start(hour, now), window_start(day, now)
        times: dict[str, list[float]] = {"hour": [], "day": [], "page": [], "count_by_status": []}
        ended = sum(
            c.count for c in await store.count_ended("busy", since_day, day.width, day.buckets)
        )
        for _ in range(rounds):
            times["hour"].append(
                await timed(lambda: store.count_ended("busy", since_hour, hour.width, hour.buckets))
            )
            times["day"].append(
                await timed(lambda: store.count_ended("busy", since_day, day.width, day.buckets))
            )
            times["page"].append(
                await timed(lambda: workflow_activity(ActivityCache(), store, "busy", now))
            )
            times["count_by_status"].append(await timed(store.count_by_status))
        base = statistics.median(times["count_by_status"])
        print(f"{label}: the day chart counts {ended:,} ended instances of 'busy'")
        for name, values in times.items():
            median = statistics.median(values)
            print(
                f"{label}: {name:16s} median {median:7.1f} ms  ({median / base:.2f} x count_by_status)"
            )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--database", default=os.environ.get("FW_TEST_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        asyncio.run(bench(url, "sqlite", args.instances, args.rounds))
    if args.database:
        with Scratch(args.database, "activity") as scratch:
            asyncio.run(bench(scratch.url, "postgres", args.instances, args.rounds))
    else:
        print("postgres skipped: pass --database or set FW_TEST_DATABASE_URL")


if __name__ == "__main__":
    main()
