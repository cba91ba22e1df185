"""Schema changes on PostgreSQL and rolling deploys: after a newer worker migrated the
database, workers of the previous release keep working until they are replaced."""

from __future__ import annotations

import time

import psycopg
import pytest

from framework.errors import StoreError
from framework.store.postgres import PostgresStore
from tests.runtime.test_schema_upgrade import restore_postgres

V1_STEP_ARRAYS = [
    "{s}",
    "{1}",
    "{0}",
    "{do}",
    "{complete}",
    "{1}",
    None,
    None,
    None,
    None,
    '{"\\"x\\""}',
    None,
    None,
]


async def test_a_previous_release_worker_keeps_working_on_a_migrated_database(
    postgres_url: str,
) -> None:
    restore_postgres(postgres_url)  # a v1 database with a queued instance
    store = PostgresStore(postgres_url)
    await store.open()  # a worker of this release arrives and migrates
    assert await store.schema_version() >= 2
    await store.close()

    now = time.time()
    with psycopg.connect(postgres_url, autocommit=True) as old_worker:
        # The previous release's claim: the same 19 columns as before the migration.
        claimed = old_worker.execute(
            "SELECT * FROM fw_claim('old-worker', 10, %s, %s, 'batch')", [now, now + 30]
        ).fetchall()
        assert claimed and all(len(row) == 19 for row in claimed)
        queued = next(row for row in claimed if row[1] == "queued")
        token = queued[16]
        # The previous release's journal write, with its 30 array arguments.
        status = old_worker.execute(
            "SELECT fw_apply(%s, %s, %s, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL, "
            "%s::text[], %s::int[], %s::int[], %s::text[], %s::text[], %s::int[], "
            "%s::float8[], %s::float8[], %s::float8[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], NULL, NULL, NULL, NULL, NULL, NULL)",
            ["queued", token, now, *V1_STEP_ARRAYS],
        ).fetchone()
        assert status == ("running",)
        steps = old_worker.execute(
            "SELECT name, output FROM steps WHERE instance_id = 'queued'"
        ).fetchall()
        assert steps == [("s", '"x"')]


async def test_an_older_release_refuses_a_newer_schema_at_start(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    await store.close()
    with psycopg.connect(postgres_url, autocommit=True) as c:
        c.execute("INSERT INTO fw_schema (version, name) VALUES (99, 'from_the_future')")
    later = PostgresStore(postgres_url)
    with pytest.raises(StoreError, match="schema version 99, newer than this fw knows"):
        await later.open()
