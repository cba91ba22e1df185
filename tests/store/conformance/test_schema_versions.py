"""Store conformance: schema versions."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from framework.errors import StoreError
from framework.store import open_store
from tests.store.conformance.helpers import new


async def set_schema_version(url: str, version: int) -> None:
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as c:
            c.execute(f"PRAGMA user_version={version}")
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute(
            "INSERT INTO fw_schema (version, name) VALUES (%s, 'from_the_future')", [version]
        )


async def has_table(url: str, table: str) -> bool:
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as c:
            found = c.execute("SELECT 1 FROM sqlite_master WHERE name=?", (table,)).fetchone()
            return found is not None
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        cur = await c.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        found = await cur.fetchone()
        return bool(found and found[0])


async def test_a_newer_schema_than_known_is_a_clear_error(database_url: str) -> None:
    first = open_store(database_url)
    await first.open()
    await first.close()
    from framework.store.migrations import latest_version

    dialect = "sqlite" if database_url.startswith("sqlite") else "postgres"
    await set_schema_version(database_url, latest_version(dialect) + 1)
    newer = open_store(database_url)
    with pytest.raises(StoreError, match=r"newer than this fw knows.*upgrade fw"):
        await newer.open()
    await newer.close()


async def test_an_older_schema_is_migrated_on_open_keeping_the_data(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework.store import migrations

    old = open_store(database_url)
    await old.open()
    await old.create_instances([new("kept")])
    await old.close()

    dialect = "sqlite" if database_url.startswith("sqlite") else "postgres"
    schema = tmp_path / "schema"
    (schema / dialect).mkdir(parents=True)
    for path in (migrations.SCHEMA_DIR / dialect).glob("*.sql"):
        (schema / dialect / path.name).write_text(path.read_text())
    following = len(migrations.migrations(dialect)) + 1
    (schema / dialect / f"{following:04d}_add_notes.sql").write_text(
        "-- a later release's migration\nCREATE TABLE fw_notes (note text);\n"
    )
    monkeypatch.setattr(migrations, "SCHEMA_DIR", schema)

    assert not await has_table(database_url, "fw_notes")
    upgraded = open_store(database_url)
    await upgraded.open()
    try:
        assert await has_table(database_url, "fw_notes")
        assert await upgraded.get_instance("kept") is not None
        version = upgraded.schema_version()  # type: ignore[attr-defined]
        if asyncio.iscoroutine(version):
            version = await version
        assert version == following
    finally:
        await upgraded.close()
    # Opening again at the latest version changes nothing.
    again = open_store(database_url)
    await again.open()
    await again.close()


async def test_ids_stored_before_the_trigram_index_are_found_through_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework.store import migrations

    dialect = "sqlite" if database_url.startswith("sqlite") else "postgres"
    index_version = next(m.version for m in migrations.migrations(dialect) if m.name == "id_search")
    schema = tmp_path / "schema"
    (schema / dialect).mkdir(parents=True)
    for path in sorted((migrations.SCHEMA_DIR / dialect).glob("*.sql"))[: index_version - 1]:
        (schema / dialect / path.name).write_text(path.read_text())
    real = migrations.SCHEMA_DIR
    monkeypatch.setattr(migrations, "SCHEMA_DIR", schema)
    old = open_store(database_url)
    await old.open()
    await old.create_instances([new(f"before-{n}") for n in range(3)])
    await old.close()
    assert not await has_table(database_url, "instance_search")

    monkeypatch.setattr(migrations, "SCHEMA_DIR", real)
    upgraded = open_store(database_url)
    await upgraded.open()
    try:
        assert await has_table(database_url, "instance_search")
        await upgraded.create_instances([new("after-0")])
        found = await upgraded.list_instances(search="ore-")
        assert [r.id for r in found.instances] == ["before-2", "before-1", "before-0"]
        assert [r.id for r in (await upgraded.list_instances(search="-0")).instances] == [
            "after-0", "before-0"
        ]
        assert [r.id for r in (await upgraded.list_instances(search="TER-0")).instances] == [
            "after-0"
        ]
    finally:
        await upgraded.close()
