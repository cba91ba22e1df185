"""Statements per instance on PostgreSQL, and the time of one instance in-process.

    .venv/bin/python -m bench.round_trips                     # 20 instances, 150 timed
    .venv/bin/python -m bench.round_trips --counted 20 --timed 150 --store sqlite

A 3-step workflow (``bench.runtime_bench``'s ``three``) is created and its result awaited,
one instance after another, with a ``Worker`` in the same process. On PostgreSQL the
statements each instance sends are counted by wrapping psycopg's ``execute`` and
``transaction`` (a transaction costs two round trips more: BEGIN and COMMIT), per statement
kind; then ``--timed`` instances are timed (median ms of ``create`` + ``result()``). Run it
in two checkouts, alternating, to compare them: the machine is shared, so only ratios of one
session mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench.runtime_bench import make_app

SERVER = os.environ.get("FW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
COUNTS: Counter[str] = Counter()
COUNTING = False


def count_statements() -> None:
    """Wrap psycopg so that, while ``COUNTING``, each statement and transaction is counted."""
    execute = psycopg.AsyncCursor.execute  # what the connection's execute calls too
    transaction = psycopg.AsyncConnection.transaction

    async def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if COUNTING:
            COUNTS[" ".join(str(query).split())[:70]] += 1
        return await execute(self, query, *args, **kwargs)

    def counted_transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        if COUNTING:
            COUNTS["BEGIN + COMMIT (a transaction)"] += 2
        return transaction(self, *args, **kwargs)

    psycopg.AsyncCursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.AsyncConnection.transaction = counted_transaction  # type: ignore[method-assign]


async def measure(store: str, counted: int, timed: int) -> None:
    global COUNTING
    from framework import Worker
    from framework.runtime.app import App

    folder = Path(tempfile.mkdtemp())
    root = make_app(folder)
    sys.path.insert(0, str(folder))
    name = f"fw_round_trips_{uuid.uuid4().hex[:8]}"
    if store == "sqlite":
        url = f"sqlite:///{folder / 'fw.db'}"
    else:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{SERVER.rpartition('/')[0]}/{name}"
    app = App(root, database=url)
    times: list[float] = []
    try:
        await app.store()
        async with Worker(app):
            three = app.handle("three")
            for _ in range(10):  # warm-up
                await (await three.create()).result()
            COUNTING = True
            for _ in range(counted):
                await (await three.create()).result()
            COUNTING = False
            for _ in range(timed):
                started = time.perf_counter()
                await (await three.create()).result()
                times.append(time.perf_counter() - started)
    finally:
        await app.close()
        if store != "sqlite":
            with psycopg.connect(SERVER, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    if store != "sqlite":
        print(f"statements per instance ({counted} instances):")
        for statement, number in COUNTS.most_common():
            print(f"  {number / counted:5.2f}  {statement}")
        print(f"  {sum(COUNTS.values()) / counted:5.2f}  in all")
    print(f"create + result(), median of {timed}: {statistics.median(times) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--counted", type=int, default=20)
    parser.add_argument("--timed", type=int, default=150)
    args = parser.parse_args()
    count_statements()
    asyncio.run(measure(args.store, args.counted, max(1, args.timed)))


if __name__ == "__main__":
    main()
