"""PostgreSQL under concurrency: many claimers never share an instance; workers starting
together migrate once."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from framework.errors import LeaseLostError
from framework.store.base import NewInstance, Transition
from framework.store.migrations import latest_version
from framework.store.postgres import PostgresStore

REPO = Path(__file__).resolve().parents[2]
T0 = 1_000_000.0


async def test_concurrent_claimers_with_separate_pools_never_share_an_instance(
    postgres_url: str,
) -> None:
    instances, stores_count, loops_per_store = 1500, 6, 4
    seeder = PostgresStore(postgres_url)
    await seeder.open()
    for start in range(0, instances, 500):
        await seeder.create_instances(
            [NewInstance(f"i{n}", "wf", "{}", T0 + n * 1e-3) for n in range(start, start + 500)]
        )
    stores = [PostgresStore(f"{postgres_url}?pool_size=3") for _ in range(stores_count)]
    await asyncio.gather(*(s.open() for s in stores))
    claims: Counter[str] = Counter()
    requeued: Counter[str] = Counter()
    completed: list[str] = []
    lost: list[str] = []
    rng = random.Random(7)

    async def claimer(store: PostgresStore, owner: str) -> None:
        idle = 0
        while idle < 3:
            now = T0 + 10
            batch = await store.claim(owner, rng.randint(1, 8), now, now + 600)
            if not batch:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            for claim in batch:
                instance_id = claim.instance.id
                claims[instance_id] += 1
                again = requeued[instance_id] == 0 and rng.random() < 0.2
                transition = Transition(
                    instance_id,
                    claim.token,
                    status="queued" if again else "complete",
                    release=True,
                    wake_at=now,
                )
                try:
                    await store.apply(transition, now)
                except LeaseLostError:
                    lost.append(instance_id)
                    continue
                if again:
                    requeued[instance_id] += 1
                else:
                    completed.append(instance_id)

    try:
        await asyncio.gather(
            *(
                claimer(store, f"w{s}-{n}")
                for s, store in enumerate(stores)
                for n in range(loops_per_store)
            )
        )
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert lost == [], "a worker lost a lease it should have held alone"
    assert sorted(completed) == sorted(f"i{n}" for n in range(instances))
    for instance_id, count in claims.items():
        assert count == 1 + requeued[instance_id], instance_id
    assert sum(requeued.values()) > 50
    counts = await seeder.count_by_status()
    await seeder.close()
    assert counts == {"wf": {"complete": instances}}


OPEN_AT = """
import asyncio, sys, time
from framework.store.postgres import PostgresStore

async def main() -> None:
    store = PostgresStore(sys.argv[1])
    while time.time() < float(sys.argv[2]):
        time.sleep(0.001)
    await store.open()
    print(await store.schema_version())
    await store.close()

asyncio.run(main())
"""


def test_workers_starting_together_migrate_once(postgres_url: str) -> None:
    count = 6
    start_at = time.time() + 2.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, postgres_url, str(start_at)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = [p.communicate(timeout=60) for p in processes]
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert out.strip() == str(latest_version("postgres"))
    with psycopg.connect(postgres_url) as c:
        rows = c.execute("SELECT version, name FROM fw_schema ORDER BY version").fetchall()
        tables = c.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('instances', 'steps', 'events')"
        ).fetchone()
    assert [v for v, _ in rows] == list(range(1, latest_version("postgres") + 1))
    assert tables == (3,)


@pytest.mark.parametrize("concurrent_opens", [8])
async def test_stores_opened_at_once_in_one_process_agree(
    postgres_url: str, concurrent_opens: int
) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(concurrent_opens)]
    await asyncio.gather(*(s.open() for s in stores))
    versions = await asyncio.gather(*(s.schema_version() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    assert set(versions) == {latest_version("postgres")}
