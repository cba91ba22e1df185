"""Shared fixtures: scratch databases on both stores.

PostgreSQL tests read ``FW_TEST_DATABASE_URL`` (a server URL whose user may create
databases); each test gets its own scratch database, dropped afterwards. Without the
variable those tests skip, saying why.

No test may leave a connection open (``tests/leaks.py``): every SQLite connection opened
during a test must be closed by its end, and a scratch PostgreSQL database must have no
session left when it is dropped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.leaks import (
    OpenedConnections,
    fail_on_open_backends,
    fail_on_open_sqlite_connections,
    recording_sqlite_connections,
)

PG_ENV = "FW_TEST_DATABASE_URL"
PG_SKIP_REASON = f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)"


def postgres_server_url() -> str | None:
    """The PostgreSQL URL tests may use, or None."""
    return os.environ.get(PG_ENV) or None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    server = postgres_server_url()
    if server is None:
        pytest.skip(PG_SKIP_REASON)
    import psycopg

    name = f"fw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"
        fail_on_open_backends(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def sqlite_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenedConnections]:
    """The SQLite connections this test opened; it fails if one is left open at its end."""
    with recording_sqlite_connections(monkeypatch) as opened:
        yield opened
    fail_on_open_sqlite_connections(opened)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'fw.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store in turn: the test runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))
