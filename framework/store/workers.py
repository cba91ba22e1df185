"""The worker registry, and liveness held by the operating system rather than by a clock.

Each worker registers a row (id, host, pid, versions, concurrency, start, heartbeat) when it
starts and deletes it when it stops cleanly. While it runs it also holds a lock that the
operating system lets go of the instant its process dies, SIGKILL included, and never while
the process lives, however starved of CPU or stopped (SIGSTOP) it is:

- SQLite: an exclusive ``flock`` on ``<database>.workers/<id>.lock`` (the kernel drops it
  when the last descriptor of the process closes);
- PostgreSQL: a session advisory lock ``(LIVENESS_LOCKS, lock_key)`` taken on a connection of
  the worker's own (the server drops it when that connection closes, as it does when the
  process dies).

So a registered worker whose lock is free is dead, and another worker may take its instances
over at once instead of waiting for their leases to expire (``Store.reclaim_dead_workers``).
Lease expiry stays as the fallback for what the lock cannot see (a machine cut off from a
PostgreSQL server keeps its connection open on the server until TCP gives up).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import sqlite3

Liveness = Literal["alive", "dead", "unknown"]
"""What the lock says: held (``alive``), free (``dead``), or cannot be told (``unknown``:
an SQLite worker of another machine, or a lock file that is gone)."""
WorkerState = Literal["alive", "stale", "dead"]
"""How a worker is shown: ``alive``; ``stale``: its lock is held (or cannot be read) but its
heartbeat is late (stopped, starved or cut off); ``dead``: its process is gone."""

LIVENESS_LOCKS = 0x66770002
"""The first key of every worker's PostgreSQL advisory lock (the second is its lock_key)."""
FORGET_DEAD_AFTER = 3600.0
"""Seconds a dead worker's row stays in the registry (shown as dead) before it is pruned."""

WORKER_COLUMNS = (
    "id, host, pid, fw_version, code_version, concurrency, started_at, heartbeat_at, running, "
    "lock_key, dead_at"
)


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself when it registers."""

    id: str
    host: str
    pid: int
    fw_version: str
    code_version: str
    """A hash of the app's workflow files as this worker loaded them."""
    concurrency: int
    started_at: float


@dataclass(frozen=True)
class WorkerRow:
    """A registered worker as stored, with what its lock says now and the instances whose
    lease it holds (``held``: their ids, from the instances' lease owner)."""

    id: str
    host: str
    pid: int
    fw_version: str
    code_version: str
    concurrency: int
    started_at: float
    heartbeat_at: float
    running: int
    lock_key: int
    dead_at: float | None
    liveness: Liveness = "unknown"
    held: tuple[str, ...] = ()

    def with_probe(self, liveness: Liveness, held: tuple[str, ...]) -> WorkerRow:
        return replace(self, liveness=liveness, held=held)

    def state(self, now: float, stale_after: float) -> WorkerState:
        """``dead`` once found dead or its lock is free; ``stale`` when its heartbeat is more
        than ``stale_after`` seconds old; else ``alive``."""
        if self.dead_at is not None or self.liveness == "dead":
            return "dead"
        if now - self.heartbeat_at > stale_after:
            return "stale"
        return "alive"


def worker_row(values: tuple[object, ...] | list[object]) -> WorkerRow:
    """A ``WorkerRow`` from the ``WORKER_COLUMNS`` of a row."""
    (id_, host, pid, fw_version, code_version, concurrency, started_at, heartbeat_at, running,
     lock_key, dead_at) = values  # fmt: skip
    return WorkerRow(
        id=str(id_),
        host=str(host),
        pid=int(pid),  # type: ignore[call-overload]
        fw_version=str(fw_version),
        code_version=str(code_version),
        concurrency=int(concurrency),  # type: ignore[call-overload]
        started_at=float(started_at),  # type: ignore[arg-type]
        heartbeat_at=float(heartbeat_at),  # type: ignore[arg-type]
        running=int(running),  # type: ignore[call-overload]
        lock_key=int(lock_key),  # type: ignore[call-overload]
        dead_at=None if dead_at is None else float(dead_at),  # type: ignore[arg-type]
    )


class LockFiles:
    """The SQLite liveness locks: one ``flock``-ed file per worker in ``folder``.

    ``flock`` locks belong to an open file description, so two workers of one process (tests,
    scripts) exclude each other as two processes do; the descriptors are not inherited by
    child processes, which would otherwise keep a dead worker's lock.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held: dict[str, int] = {}

    def path(self, worker_id: str) -> Path:
        return self.folder / f"{re.sub(r'[^A-Za-z0-9_.:-]', '_', worker_id)}.lock"

    def hold(self, worker_id: str) -> None:
        """Create the worker's lock file and lock it until ``release`` or the process ends."""
        if worker_id in self._held:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(worker_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self._held[worker_id] = fd

    def release(self, worker_id: str, remove: bool = True) -> None:
        """Unlock the worker's lock file, and remove it (a clean stop, its row deleted)."""
        fd = self._held.pop(worker_id, None)
        if fd is None:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(worker_id))
        os.close(fd)

    def release_all(self) -> None:
        """Unlock every lock this store holds, keeping the files: a worker whose store closed
        under it (its row still there) then reads as dead, as it is."""
        for worker_id in list(self._held):
            self.release(worker_id, remove=False)

    def probe(self, worker_id: str) -> Liveness:
        """Whether the worker's process still holds its lock (taking it for an instant when
        it is free: a dead worker's lock file is then removed)."""
        if worker_id in self._held:
            return "alive"
        path = self.path(worker_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return "unknown"
        except OSError:
            return "unknown"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "alive"
        except OSError:
            return "unknown"
        finally:
            os.close(fd)  # also drops the lock just taken
        return "dead"

    def forget(self, worker_id: str) -> None:
        """Remove a dead worker's lock file."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(worker_id))


def lock_folder(database: Path) -> Path:
    """The folder of the SQLite liveness lock files of ``database``."""
    return database.parent / f"{database.name}.workers"


HELD_QUERY = (
    "SELECT lease_owner, id FROM instances WHERE lease_owner IS NOT NULL ORDER BY lease_owner, id"
)
SQLITE_LIST = f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY started_at, id"
POSTGRES_LIST = (
    f"SELECT {', '.join('w.' + c.strip() for c in WORKER_COLUMNS.split(','))}, "
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    f"AND l.classid = {LIVENESS_LOCKS}::oid AND l.objid = w.lock_key::oid AND l.objsubid = 2) "
    "FROM workers w ORDER BY w.started_at, w.id"
)
SQLITE_REGISTER = (
    f"INSERT INTO workers ({WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL) "
    "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, dead_at = NULL, "
    "lock_key = excluded.lock_key, code_version = excluded.code_version"
)
POSTGRES_REGISTER = SQLITE_REGISTER.replace("?", "%s")
EXPIRE_LEASES = (
    "UPDATE instances SET wake_at = {mark} WHERE lease_owner = {mark} AND status = 'running'"
)
"""Make the running instances of a dead worker due now: the next claim takes them over
(counting the crash, as when their lease expires)."""


def held_by_owner(rows: list[tuple[object, ...]] | list[tuple[str, str]]) -> dict[str, list[str]]:
    """lease owner -> ids of the instances it holds, from the rows of ``HELD_QUERY``."""
    held: dict[str, list[str]] = {}
    for owner, instance_id in rows:
        held.setdefault(str(owner), []).append(str(instance_id))
    return held


def register_values(worker: WorkerInfo, lock_key: int) -> tuple[object, ...]:
    """The parameters of ``SQLITE_REGISTER`` / ``POSTGRES_REGISTER``."""
    return (
        worker.id, worker.host, worker.pid, worker.fw_version, worker.code_version,
        worker.concurrency, worker.started_at, worker.started_at, lock_key,
    )  # fmt: skip


async def postgres_workers(connection: Any, with_held: bool = True) -> list[WorkerRow]:
    """The registry as ``list_workers`` returns it, read on a psycopg async connection."""
    cur = await connection.execute(POSTGRES_LIST)
    rows = await cur.fetchall()
    held: dict[str, list[str]] = {}
    if with_held:
        cur = await connection.execute(HELD_QUERY)
        held = held_by_owner(await cur.fetchall())
    return [
        worker_row(row[:-1]).with_probe(
            "alive" if row[-1] else "dead", tuple(held.get(str(row[0]), ()))
        )
        for row in rows
    ]


def sqlite_workers(
    connection: sqlite3.Connection, locks: LockFiles, host: str, with_held: bool = True
) -> list[WorkerRow]:
    """The registry as ``list_workers`` returns it, read on an SQLite connection; the lock
    files are probed for the workers of this machine (``host``)."""
    rows = [worker_row(r) for r in connection.execute(SQLITE_LIST).fetchall()]
    held = held_by_owner(connection.execute(HELD_QUERY).fetchall()) if with_held else {}
    return [
        row.with_probe(
            locks.probe(row.id) if row.host == host else "unknown",
            tuple(held.get(row.id, ())),
        )
        for row in rows
    ]
