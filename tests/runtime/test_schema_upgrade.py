"""A database written by the previous release (schema v1), with instances mid-run, is
migrated on start and its instances finish under the current fw.

The fixtures were made by ``tests/fixtures/schema_v1/make_fixtures.py`` at schema v1: one
instance waiting for an event, one sleeping with an event already buffered, one queued and
never started, one complete.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from framework.codegen import run_codegen
from framework.store.migrations import latest_version
from framework.testing import workflow_test_env

FIXTURES = Path(__file__).parents[1] / "fixtures" / "schema_v1"


@pytest.fixture
def upgrade_app(tmp_path: Path) -> Path:
    """The app the fixtures belong to (its package name is fixed: ``upgrade_app``)."""
    for module in [m for m in sys.modules if m == "upgrade_app" or m.startswith("upgrade_app.")]:
        del sys.modules[module]
    root = tmp_path / "upgrade_app"
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "fw.toml").write_text('[app]\nname = "upgrade_app"\n')
    shutil.copy(FIXTURES / "upgrade_workflow.py", root / "workflows" / "upgrade_workflow.py")
    assert run_codegen(root).ok
    return root


def restore_sqlite(path: Path) -> str:
    connection = sqlite3.connect(path)
    connection.executescript((FIXTURES / "sqlite.sql").read_text())
    assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
    connection.close()
    return f"sqlite:///{path}"


def restore_postgres(url: str) -> str:
    import psycopg

    dump = "\n".join(
        line
        for line in (FIXTURES / "postgres.sql").read_text().splitlines()
        if not line.startswith("\\")  # psql meta-commands (\restrict in newer pg_dump)
    )
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(dump.encode())
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def v1_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return restore_sqlite(tmp_path / "v1.db")
    return restore_postgres(str(request.getfixturevalue("postgres_url")))


async def test_instances_mid_run_in_a_v1_database_finish_after_the_upgrade(
    upgrade_app: Path, v1_database: str
) -> None:
    async with workflow_test_env(upgrade_app, database=v1_database) as env:
        handle = env.get("upgrade")
        waiting, sleeping, queued, done = [
            await handle.get(i) for i in ("waiting", "sleeping", "queued", "done")
        ]

        await waiting.send_event("go", "now")
        await queued.send_event("go", "later")

        assert await waiting.result(timeout=30) == ["waiting", "waiting-now"]
        assert await sleeping.result(timeout=30) == ["sleeping", "sleeping-buffered"]
        assert await queued.result(timeout=30) == ["queued", "queued-later"]
        assert await done.result(timeout=5) == ["done", "done-early"]
        assert [s.name for s in await waiting.steps()] == ["first", "nap", "go", "second"]
    dialect = "sqlite" if v1_database.startswith("sqlite") else "postgres"
    assert schema_version(v1_database) == latest_version(dialect) >= 2


def schema_version(url: str) -> int:
    """The schema version a database records, read without fw."""
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
    import psycopg

    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT max(version) FROM fw_schema").fetchone()
        assert row is not None
        return int(row[0])
