"""One instance end to end, beside the commits it needs, measured in one run.

    .venv/bin/python -m bench.latency_bench                      # SQLite and PostgreSQL
    .venv/bin/python -m bench.latency_bench --store sqlite --rounds 5 --samples 100

A 3-step workflow is created and its result awaited, one instance after another, three ways,
in alternating rounds (the machine is shared: each figure is the median over every round):

- floor: the five commits the work needs (the instance, three journal entries, the
  completion), each its own transaction with fw's durability settings (SQLite: WAL,
  ``synchronous=FULL``; PostgreSQL: one statement per transaction on one connection), and
  nothing else;
- in-process: ``create`` then ``result()`` with a ``Worker`` in the same process;
- across processes: a ``fw worker`` subprocess runs the instances this process creates.

Reported: end-to-end p50 (and its ratio to the floor) and ``create`` to the first step's
start, p50 and p99 (in-process: ``time.perf_counter`` in the step; across processes: the
instance's ``created_at`` and the step's ``started_at`` as stored, both from the wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.runtime_bench import make_app

REPO = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("FW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Floor:
    """The five commits of one instance, on a store of the same kind."""

    def __init__(self, store: str, folder: Path, server: str) -> None:
        self.store = store
        self._n = 0
        if store == "sqlite":
            self._sqlite = sqlite3.connect(folder / "floor.db", isolation_level=None)
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=FULL")
            self._sqlite.executescript(FLOOR_SCHEMA)
        else:
            self._pg = psycopg.connect(server, autocommit=True)
            self._pg.execute(FLOOR_SCHEMA.replace("WITHOUT ROWID", ""))

    def once(self) -> float:
        self._n += 1
        i = f"{self._n}-{uuid.uuid4().hex[:6]}"
        statements = [
            ("INSERT INTO f_instances VALUES (?, 'three', 'queued', NULL)", (i,)),
            *[("INSERT INTO f_steps VALUES (?, ?, '1')", (i, name)) for name in "abc"],
            ("UPDATE f_instances SET status = 'complete', output = '3' WHERE id = ?", (i,)),
        ]
        start = time.perf_counter()
        if self.store == "sqlite":
            for sql, args in statements:
                self._sqlite.execute("BEGIN IMMEDIATE")
                self._sqlite.execute(sql, args)
                self._sqlite.execute("COMMIT")
        else:
            for sql, args in statements:
                self._pg.execute(sql.replace("?", "%s"), args)  # type: ignore[call-overload]
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        if self.store == "sqlite":
            self._sqlite.close()
        else:
            self._pg.execute("DROP TABLE f_steps; DROP TABLE f_instances")
            self._pg.close()


FLOOR_SCHEMA = """
DROP TABLE IF EXISTS f_steps;
DROP TABLE IF EXISTS f_instances;
CREATE TABLE f_instances (id TEXT PRIMARY KEY, workflow TEXT, status TEXT, output TEXT);
CREATE TABLE f_steps (instance_id TEXT, name TEXT, output TEXT,
                      PRIMARY KEY (instance_id, name)) WITHOUT ROWID;
"""


def scratch_url(store: str, folder: Path, label: str, server: str) -> str:
    if store == "sqlite":
        return f"sqlite:///{folder / f'{label}.db'}"
    name = f"fw_latency_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return f"{server.rpartition('/')[0]}/{name}"


def drop(url: str, server: str) -> None:
    if url.startswith("postgresql"):
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')  # type: ignore[arg-type]


async def run_store(store: str, args: argparse.Namespace) -> dict[str, float]:
    from framework import Worker
    from framework.runtime.app import App

    folder = Path(tempfile.mkdtemp(prefix=f"fw-latency-{store}-"))
    root = make_app(folder)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("benchapp.workflows.three_workflow")
    here_url = scratch_url(store, folder, "here", args.database)
    there_url = scratch_url(store, folder, "there", args.database)
    floor = Floor(store, folder, args.database)
    here, there = App(root, database=here_url), App(root, database=there_url)
    await there.store()  # migrated before the worker starts
    env = {
        **os.environ,
        "FW_DATABASE_URL": there_url,
        "PYTHONPATH": f"{folder}{os.pathsep}{REPO}",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "framework", "worker", "--app", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    for line in worker.stdout:
        if "started on" in line:
            break
    floors: list[float] = []
    fw_here: list[float] = []
    first_here: list[float] = []
    fw_there: list[float] = []
    first_there: list[float] = []
    try:
        async with Worker(here):
            three_here, three_there = here.handle("three"), there.handle("three")
            for _ in range(20):  # warm up: imports, caches, prepared statements
                await (await three_here.create()).result()
                await (await three_there.create()).result()
                floor.once()
            for _ in range(args.rounds):
                floors.extend(floor.once() for _ in range(args.samples))
                for _ in range(args.samples):
                    began = time.perf_counter()
                    instance = await three_here.create()
                    await instance.result()
                    fw_here.append((time.perf_counter() - began) * 1000)
                    started: float = module.FIRST_STEP[instance.id]
                    first_here.append((started - began) * 1000)
                ids: list[str] = []
                for _ in range(args.samples):
                    began = time.perf_counter()
                    instance = await three_there.create()
                    await instance.result()
                    fw_there.append((time.perf_counter() - began) * 1000)
                    ids.append(instance.id)
                first_there.extend(await _first_step_delays(there_url, ids))
        await here.close()
        await there.close()
    finally:
        worker.terminate()
        worker.wait(60)
        floor.close()
        drop(here_url, args.database)
        drop(there_url, args.database)
    return {
        "floor_ms": statistics.median(floors),
        "in_process_ms": statistics.median(fw_here),
        "in_process_first_step_p50_ms": statistics.median(first_here),
        "in_process_first_step_p99_ms": _p99(first_here),
        "across_ms": statistics.median(fw_there),
        "across_first_step_p50_ms": statistics.median(first_there),
        "across_first_step_p99_ms": _p99(first_there),
    }


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def _first_step_delays(url: str, ids: list[str]) -> list[float]:
    query = (
        "SELECT s.started_at - i.created_at FROM steps s JOIN instances i "
        "ON i.id = s.instance_id WHERE s.name = 'one' AND i.id IN ({})"
    )
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as c:
            rows: list[Any] = c.execute(query.format(",".join("?" * len(ids))), ids).fetchall()
    else:
        with psycopg.connect(url) as c:
            rows = c.execute(query.format(",".join(["%s"] * len(ids))), ids).fetchall()  # type: ignore[arg-type]
    return [float(row[0]) * 1000 for row in rows]


def report(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| store | floor: 5 commits | in-process | / floor | create → step 1 p50 / p99 | "
        "across processes | / floor | create → step 1 p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store, r in results.items():
        lines.append(
            f"| {store} | {r['floor_ms']:.2f} ms | {r['in_process_ms']:.2f} ms | "
            f"{r['in_process_ms'] / r['floor_ms']:.2f}x | "
            f"{r['in_process_first_step_p50_ms']:.2f} / {r['in_process_first_step_p99_ms']:.2f} ms | "
            f"{r['across_ms']:.2f} ms | {r['across_ms'] / r['floor_ms']:.2f}x | "
            f"{r['across_first_step_p50_ms']:.2f} / {r['across_first_step_p99_ms']:.2f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--database", default=SERVER)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {store: asyncio.run(run_store(store, args)) for store in stores}
    print(f"{args.rounds} rounds of {args.samples} instances per way; medians over all rounds")
    print(report(results))


if __name__ == "__main__":
    main()
