"""Shared fixtures: scratch databases on both stores.

PostgreSQL tests read ``FW_TEST_DATABASE_URL`` (a server URL whose user may create
databases); each test gets its own scratch database, dropped afterwards. Without the
variable those tests skip, saying why, and the run ends with a banner counting them.

No test may leave a connection open (``tests/leaks.py``): every SQLite connection opened
during a test must be closed by its end, and a scratch PostgreSQL database must have no
session left when it is dropped.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.leaks import (
    OpenedConnections,
    fail_on_open_backends,
    fail_on_open_sqlite_connections,
    recording_sqlite_connections,
)

# A suite started in the background of a script (`bash .ci/run &`) inherits SIGINT ignored, and
# so would every process it starts, which then never see the Ctrl-C the tests send them: give
# this process Python's own handler, so that its children start with the default one.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

PG_ENV = "FW_TEST_DATABASE_URL"
PG_SKIP_REASON = f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)"


def postgres_server_url() -> str | None:
    """The PostgreSQL URL tests may use, or None."""
    return os.environ.get(PG_ENV) or None


_skipped_for_postgres: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the tests skipped for want of PostgreSQL."""
    if report.skipped and PG_SKIP_REASON in str(report.longrepr):
        _skipped_for_postgres.add(report.nodeid)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Say loudly, as the very last lines, that the PostgreSQL half did not run (after the
    summary line, where a quick look lands); say nothing when it ran."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if not _skipped_for_postgres or reporter is None:
        return
    count = len(_skipped_for_postgres)
    tests = "test" if count == 1 else "tests"
    reporter.write_sep("!", "PostgreSQL NOT TESTED", red=True, bold=True)
    reporter.write_line(
        f"{count} {tests} skipped because {PG_ENV} is not set: only the SQLite half ran.",
        red=True,
        bold=True,
    )
    reporter.write_line(
        f"Run both stores with {PG_ENV}=postgresql://postgres@127.0.0.1:5432/test "
        "(a server whose user may create databases).",
        bold=True,
    )
    reporter.write_sep("!", red=True, bold=True)


class ScratchDatabases:
    """Scratch PostgreSQL databases made and dropped off the tests' path: threads make the
    next tests' databases while one runs, and drop each after its test. One CREATE or DROP
    DATABASE at a time costs up to a second, most of it waiting for the server's checkpoint;
    concurrent ones share it."""

    AHEAD = 2
    """Databases made ahead of the tests that will take them."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fw-test-databases")
        self._ready: deque[Future[str]] = deque()
        self._drops: list[Future[None]] = []

    def take(self) -> str:
        """The name of a new, empty database."""
        while len(self._ready) <= self.AHEAD:
            self._ready.append(self._threads.submit(self._create))
        return self._ready.popleft().result()

    def drop(self, name: str) -> None:
        """Drop ``name`` in the background (``close`` reports a failure)."""
        self._drops.append(self._threads.submit(self._drop, name))

    def close(self) -> None:
        """Drop the databases made ahead, wait for every drop and fail if one failed."""
        for ready in self._ready:
            if ready.exception() is None:
                self.drop(ready.result())
        self._threads.shutdown(wait=True)
        failed = [str(drop.exception()) for drop in self._drops if drop.exception() is not None]
        assert not failed, f"scratch databases left on {self.server}: {failed}"

    def _create(self) -> str:
        import psycopg

        name = f"fw_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def _drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def scratch_databases() -> Iterator[ScratchDatabases | None]:
    """The session's scratch databases, or None without a PostgreSQL server."""
    server = postgres_server_url()
    if server is None:
        yield None
        return
    databases = ScratchDatabases(server)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def postgres_url(scratch_databases: ScratchDatabases | None) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if scratch_databases is None:
        pytest.skip(PG_SKIP_REASON)
    name = scratch_databases.take()
    base, _, _ = scratch_databases.server.rpartition("/")
    try:
        yield f"{base}/{name}"
        fail_on_open_backends(scratch_databases.server, name)
    finally:
        scratch_databases.drop(name)


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
