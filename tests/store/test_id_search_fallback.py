"""Id searches where the store cannot index ids by trigram: a SQLite without FTS5's trigram
tokenizer, a PostgreSQL role that may not create pg_trgm. The search reads the instances as
before, with the same answers, and the index is built once the store is opened where it can
be."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from framework.store import open_store
from framework.store import sqlite as sqlite_store
from framework.store.base import Store
from tests.cli.test_ops_commands import doctor_json
from tests.store.conformance.helpers import new
from tests.store.conformance.test_schema_versions import has_table

IDS = ["order-1", "ORDER-2", "refund-1"]


async def searched(store: Store, text: str) -> list[str]:
    return [r.id for r in (await store.list_instances(search=text)).instances]


async def test_sqlite_without_the_trigram_tokenizer_searches_by_reading_the_instances(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process's SQLite has the tokenizer: its probe answers as an older SQLite's would.
    monkeypatch.setattr(sqlite_store, "_has_fts5_trigram", lambda: False)
    store = open_store(sqlite_url)
    await store.open()
    try:
        await store.create_instances([new(i) for i in IDS])
        assert not await has_table(sqlite_url, "instance_search")
        assert await searched(store, "order-") == ["ORDER-2", "order-1"]
        assert await searched(store, "-1") == ["refund-1", "order-1"]
    finally:
        await store.close()

    monkeypatch.undo()  # the same file opened by a SQLite with the tokenizer: indexed then
    store = open_store(sqlite_url)
    await store.open()
    try:
        assert await has_table(sqlite_url, "instance_search")
        await store.create_instances([new("order-3")])
        assert await searched(store, "order-") == ["order-3", "ORDER-2", "order-1"]
    finally:
        await store.close()


@pytest.fixture
def unprivileged_url(postgres_url: str) -> Iterator[str]:
    """The test database for a role that owns its tables but may not create extensions
    (no CREATE on the database): as on a managed server that does not offer pg_trgm."""
    role = f"fw_plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    base, _, database = postgres_url.rpartition("/")
    scheme, _, host = base.partition("://")
    try:
        yield f"{scheme}://{role}@{host.partition('@')[2]}/{database}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")  # its tables, in this database only
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.slow  # runs fw doctor
async def test_postgres_without_pg_trgm_searches_by_reading_the_instances(
    postgres_url: str, unprivileged_url: str, tmp_path: Path
) -> None:
    store = open_store(unprivileged_url)
    await store.open()  # migration 12 warns and leaves ids unindexed
    try:
        await store.create_instances([new(i) for i in IDS])
        assert not await has_table(postgres_url, "instance_search")
        assert await searched(store, "order-") == ["ORDER-2", "order-1"]
        assert await searched(store, "-1") == ["refund-1", "order-1"]
    finally:
        await store.close()
    code, report = doctor_json(cwd=tmp_path, env={"FW_DATABASE_URL": unprivileged_url})
    assert code == 0 and report["ids_indexed"] is False
    assert any("CREATE EXTENSION pg_trgm" in w for w in report["warnings"]), report

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION pg_trgm")  # what an administrator would do
    store = open_store(unprivileged_url)
    await store.open()  # indexes the ids now
    try:
        assert await has_table(postgres_url, "instance_search")
        await store.create_instances([new("order-3")])
        assert await searched(store, "order-") == ["order-3", "ORDER-2", "order-1"]
    finally:
        await store.close()
    code, report = doctor_json(cwd=tmp_path, env={"FW_DATABASE_URL": unprivileged_url})
    assert code == 0 and report["ids_indexed"] is True, report
    assert not any("pg_trgm" in w for w in report["warnings"]), report
