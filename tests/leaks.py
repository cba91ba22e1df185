"""Connections a test leaves open, found on every supported Python.

Python 3.13's sqlite3 warns (``ResourceWarning: unclosed database``) when a connection that was
never closed is garbage collected: some time later, often in another test, and not at all on
3.11 and 3.12. So every test records the SQLite connections opened while it runs (in any
thread) and fails at teardown if one is still open, naming where it was opened. For
PostgreSQL, the scratch database of a test must have no backend left once the test is done.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

BACKENDS_GONE_WITHIN = 5.0
"""Seconds a closed client's backend may take to leave ``pg_stat_activity``."""


class OpenedConnections:
    """Every SQLite connection made through ``sqlite3.connect`` while recording."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened: list[tuple[sqlite3.Connection, str, list[str]]] = []

    def record(self, connection: sqlite3.Connection) -> None:
        stack = traceback.format_stack(limit=12)[:-2]
        where = [line for line in stack if "/site-packages/" not in line]
        with self._lock:
            self._opened.append((connection, threading.current_thread().name, where))

    def open_now(self) -> list[str]:
        """Where each connection still open was opened."""
        with self._lock:
            opened = list(self._opened)
        return [f"opened in thread {t!r} at:\n{''.join(w)}" for c, t, w in opened if is_open(c)]

    def still_open(self) -> list[str]:
        """Where each connection still open was opened (and closes it, so it is said once)."""
        with self._lock:
            opened, self._opened = self._opened, []
        leaks: list[str] = []
        for connection, thread, where in opened:
            if is_open(connection):
                leaks.append(f"opened in thread {thread!r} at:\n{''.join(where)}")
                connection.close()
        return leaks


def is_open(connection: sqlite3.Connection) -> bool:
    try:
        connection.total_changes  # noqa: B018 (any use of a closed connection raises)
    except sqlite3.ProgrammingError:
        return False
    return True


@contextmanager
def recording_sqlite_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenedConnections]:
    """Record the connections opened inside the block (in every thread)."""
    opened = OpenedConnections()
    connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        opened.record(connection)
        return connection

    monkeypatch.setattr(sqlite3, "connect", recording_connect)
    yield opened


def fail_on_open_sqlite_connections(opened: OpenedConnections) -> None:
    leaks = opened.still_open()
    if leaks:
        pytest.fail(
            f"{len(leaks)} SQLite connection(s) left open by this test:\n\n" + "\n".join(leaks),
            pytrace=False,
        )


def backends_of(server_url: str, database: str) -> list[str]:
    """The sessions connected to ``database``, each as ``application state: query``."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT application_name, state, query FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        ).fetchall()
    return [f"{name or '-'} {state or '-'}: {query}" for name, state, query in rows]


def backends_left(server_url: str, database: str) -> list[str]:
    """The sessions still connected to ``database`` once closed ones had time to exit."""
    deadline = time.monotonic() + BACKENDS_GONE_WITHIN
    while (backends := backends_of(server_url, database)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return backends


def fail_on_open_backends(server_url: str, database: str) -> None:
    """Fail unless ``database`` has no connected session (allowing a closed one to exit)."""
    if backends := backends_left(server_url, database):
        pytest.fail(
            f"{len(backends)} PostgreSQL connection(s) to {database} left open by this "
            "test:\n" + "\n".join(backends),
            pytrace=False,
        )


def dialect_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def connections_left(url: str, sqlite_connections: OpenedConnections) -> list[str]:
    """The connections to a test's database still open (closed ones given time to go):
    SQLite connections this test opened, or sessions connected to its PostgreSQL database."""
    if dialect_of(url) == "sqlite":
        return sqlite_connections.open_now()
    server = os.environ.get("FW_TEST_DATABASE_URL")
    assert server, "a PostgreSQL test without FW_TEST_DATABASE_URL"
    return backends_left(server, url.rpartition("/")[2])
