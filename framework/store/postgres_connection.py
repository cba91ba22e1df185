"""Connections to PostgreSQL: the URL, the pool, retries across dropped connections, errors.

Every store operation runs through ``Database.run``. A connection the server closed while it
sat idle in the pool (a restart, ``pg_terminate_backend``, an idle timeout) is noticed before
anything is sent on it, thrown away and replaced, so that costs no error at all. A connection
lost *during* an operation is retried, with backoff, when running it twice is harmless
(``replay_safe``). An operation that is not replay-safe runs in one transaction that ``run``
commits itself: lost before the commit was sent, it was rolled back and is retried; lost
while committing, its outcome is unknown and the caller gets a ``StoreError`` that says so.
A deadlock or serialization failure rolled the transaction back, so any operation is
retried after one.

One connection of the ``pool_size`` is kept apart as the *hot* connection: an operation takes
it when it is free, and the pool's only when another operation holds it. One instance running
alone (or a script's creates and reads, one after another) so sends every statement over one
connection, to one server process, without a pool checkout; the pool hands out its
connections in turn. It is connected in the background when first wanted, and dropped (to be
connected again) when it is lost, broken, or left inside a transaction or a query, as the pool
drops such connections. With ``pool_size=1`` there is none.

The pool lives exactly as long as a task that holds it open: ``close()`` ends that task, and
so does the end of the event loop (``asyncio.run`` cancels every task before it returns), in
either case closing the pool. That matters: psycopg_pool's maintenance workers swallow the
cancellation that reaches them while they connect, so a pool left open when a short-lived
program's ``asyncio.run`` ends kept that worker alive and the program hung at exit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import select
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from framework.errors import ConfigError, StoreClosedError, StoreError, StoreUnavailableError

T = TypeVar("T")
LOG = logging.getLogger("fw.store")


class Connection(psycopg.AsyncConnection[Any]):
    """psycopg's connection, with a cursor kept for the statements that run the most."""

    _kept: psycopg.AsyncCursor[Any] | None = None

    def kept_cursor(self) -> psycopg.AsyncCursor[Any]:
        """One cursor of this connection, the same each time: for a statement whose rows
        are read before the operation ends (a connection runs one operation at a time). A
        new cursor per statement costs about a tenth of a journal write's client time."""
        if self._kept is None or self._kept.closed:
            self._kept = self.cursor()
        return self._kept


DEFAULT_POOL_SIZE = 10
CONNECTION_DEFAULTS = {
    "application_name": "fw",
    "connect_timeout": "10",
    # Notice a dead server or a cut network within about a minute, even on an idle socket.
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
if psycopg.pq.version() >= 120000:
    # Give up on a request the network stopped acknowledging (a partition) after 15 s,
    # rather than the kernel's retransmission timeout of many minutes; it is then retried.
    CONNECTION_DEFAULTS["tcp_user_timeout"] = "15000"
FW_PARAMETERS = ("pool_size", "pool_min_size", "retry_for")
IDLE_IN_TRANSACTION_TIMEOUT = 60.0
"""Seconds the server lets one of fw's sessions sit idle inside a transaction before it ends
the session (fw's own transactions never pause that long): a client cut off mid-transaction
(a partition, a machine lost) then holds its row locks a minute, not until the server's TCP
keepalives notice, two hours by default."""
ROLLED_BACK = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def _not_a_cancelled_connect(record: logging.LogRecord) -> bool:
    """Drop psycopg_pool's "error connecting" warning when the error is the cancellation of
    a pool shutting down with its event loop (see ``_hold_open``): nothing failed."""
    args = record.args if isinstance(record.args, tuple) else ()
    return not any(isinstance(arg, asyncio.CancelledError) for arg in args)


logging.getLogger("psycopg.pool").addFilter(_not_a_cancelled_connect)


@dataclass(frozen=True)
class PostgresSettings:
    """A PostgreSQL URL split into what psycopg gets and what fw keeps for itself.

    fw's own query parameters: ``pool_size`` (connections per store, default 10),
    ``pool_min_size`` (kept open when idle, default 1) and ``retry_for`` (seconds an
    operation keeps retrying while the server is unreachable, default 30).
    """

    conninfo: str
    display: str
    pool_size: int
    pool_min_size: int
    retry_for: float

    @classmethod
    def from_url(cls, url: str) -> PostgresSettings:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {k: v for k, v in query if k in FW_PARAMETERS}
        libpq_query = urlencode([(k, v) for k, v in query if k not in FW_PARAMETERS])
        stripped = urlunsplit(parts._replace(query=libpq_query))
        try:
            given = conninfo_to_dict(stripped)
            pool_size = int(own.get("pool_size", DEFAULT_POOL_SIZE))
            pool_min = int(own.get("pool_min_size", min(1, pool_size)))
            retry_for = float(own.get("retry_for", 30))
        except (psycopg.ProgrammingError, ValueError) as exc:
            raise ConfigError(f"invalid PostgreSQL URL {_redact(url)!r}: {exc}") from None
        if pool_size < 1 or not 0 <= pool_min <= pool_size:
            raise ConfigError(
                f"invalid PostgreSQL URL {_redact(url)!r}: need 1 <= pool_size and "
                "0 <= pool_min_size <= pool_size"
            )
        merged = {**CONNECTION_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
        display = _redact(urlunsplit(parts._replace(query="")))
        return cls(make_conninfo("", **merged), display, pool_size, pool_min, retry_for)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class Database:
    """A pool of connections to one PostgreSQL database and the retry policy around it."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._holder: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._purging: asyncio.Task[None] | None = None
        self._failing = False
        self._hot = HotConnection(settings.conninfo) if settings.pool_size > 1 else None
        self._set_up_sessions: weakref.WeakSet[Connection] = weakref.WeakSet()

    async def open(self) -> None:
        """Open the pool (the first connection is made by the caller, to report errors)."""
        size = self.settings.pool_size - (self._hot is not None)  # the hot one is one of them
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.settings.conninfo,
            connection_class=Connection,
            kwargs={"autocommit": True},
            min_size=min(self.settings.pool_min_size, size),
            max_size=size,
            open=False,
            name="fw",
            timeout=min(10.0, self.settings.retry_for),
        )
        await pool.open(wait=False)
        self._pool = pool
        self._closing = asyncio.Event()
        self._holder = asyncio.get_running_loop().create_task(
            _hold_open(pool, self._hot, self._closing), name="fw-postgres-pool"
        )
        await asyncio.sleep(0)  # let it enter its try block: from now on, cancelling it closes

    async def close(self) -> None:
        """Close the pool and wait until its connections and workers are gone."""
        if self._purging is not None:
            self._purging.cancel()
        self._closing.set()
        if self._holder is not None:
            await asyncio.wait([self._holder])

    async def connect(self, **kwargs: Any) -> Connection:
        """A new connection outside the pool (its session set up as the pool's are);
        connection failures become a clear StoreError."""
        try:
            conn = await Connection.connect(self.settings.conninfo, **kwargs)
        except psycopg.Error as exc:
            raise self.error(exc, "connecting") from None
        try:
            await configure_session(conn)
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, psycopg.Error):
                raise self.error(exc, "connecting") from None
            raise
        return conn

    async def run(
        self, what: str, fn: Callable[[Connection], Awaitable[T]], *, replay_safe: bool
    ) -> T:
        """Run ``fn`` on a pooled connection, retrying as the module docstring says."""
        if self._pool is None:
            raise StoreClosedError(f"the PostgreSQL store at {self.settings.display} is not open")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.retry_for
        delay = 0.05
        while True:
            attempt = _Attempt()
            try:
                hot = self._hot
                taken = await hot.take() if hot is not None else None
                if hot is not None and taken is not None:
                    try:
                        await self._set_up(taken)
                        result = await _apply(taken, fn, replay_safe, attempt)
                    finally:
                        await hot.give_back(taken)
                else:
                    async with self._pool.connection() as conn:
                        if _dead_while_idle(conn):
                            await conn.close()  # the pool discards it; no statement was sent
                            self._replace_dead_connections()
                            continue
                        await self._set_up(conn)
                        result = await _apply(conn, fn, replay_safe, attempt)
                if self._failing:
                    self._failing = False
                    LOG.warning("PostgreSQL at %s: connected again", self.settings.display)
                return result
            except ROLLED_BACK as exc:
                LOG.info("%s: %s; retrying", what, type(exc).__name__)
                retry = True
                error: BaseException = exc
            except PoolTimeout as exc:  # no connection could be had: nothing was sent
                retry, error = True, exc
            except PoolClosed:
                raise StoreClosedError(
                    f"the PostgreSQL store at {self.settings.display} is closed"
                ) from None
            except psycopg.Error as exc:
                if not _connection_lost(exc):
                    raise self.error(exc, what) from None
                self._replace_dead_connections()
                if attempt.committing:
                    raise StoreError(
                        f"the connection to PostgreSQL at {self.settings.display} was lost "
                        f"during {what} ({_first_line(exc)}); it may or may not have been "
                        "applied: check the instance before trying again"
                    ) from None
                retry, error = True, exc
            if not retry or loop.time() + delay > deadline:
                raise await self._unreachable(error, what)
            self._failing = True
            LOG.warning(
                "PostgreSQL at %s: %s failed (%s); retrying in %.2f s",
                self.settings.display, what, _first_line(error), delay,
            )
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

    async def _set_up(self, conn: Connection) -> None:
        """Set up the session of ``conn`` before its first operation (``configure_session``):
        there, not as it connects, so that a program ending meanwhile cancels an operation,
        which psycopg handles, not a connection being made in the background."""
        if conn not in self._set_up_sessions:
            await configure_session(conn)
            self._set_up_sessions.add(conn)

    async def _unreachable(self, exc: BaseException, what: str) -> StoreError:
        if isinstance(exc, PoolTimeout):
            try:  # find out why the pool has no connection, for the message
                probe = await psycopg.AsyncConnection.connect(self.settings.conninfo)
                await probe.close()
            except psycopg.Error as cause:
                return self.error(cause, what)
            return StoreError(
                f"no connection to PostgreSQL at {self.settings.display} was free for "
                f"{self.settings.retry_for:g} s during {what}: the pool (pool_size="
                f"{self.settings.pool_size}) is exhausted; raise pool_size in the URL or "
                "lower the worker's concurrency"
            )
        if isinstance(exc, psycopg.Error):
            return self.error(exc, what)
        return StoreError(f"PostgreSQL at {self.settings.display}: {what} failed: {exc}")

    def error(self, exc: psycopg.Error, what: str) -> StoreError:
        """A StoreError that says what failed and what to do about it."""
        text = _first_line(exc)
        lowered = text.lower()
        unavailable = False
        auth = pg_errors.InvalidPassword | pg_errors.InvalidAuthorizationSpecification
        if isinstance(exc, auth) or "password authentication failed" in lowered \
                or "no password supplied" in lowered:
            hint = "authentication failed: check the user and password in the URL (or ~/.pgpass)"
        elif isinstance(exc, pg_errors.InvalidCatalogName) or (
            "database" in lowered and "does not exist" in lowered
        ):
            hint = "the database does not exist: create it (createdb NAME) or fix the URL"
        elif "connection refused" in lowered or "could not translate host" in lowered \
                or "timeout expired" in lowered or "no route to host" in lowered:
            hint = "the server is unreachable: is it running and accepting TCP connections there?"
            unavailable = True
        elif "is starting up" in lowered or "is shutting down" in lowered:
            hint = "the server is starting up or shutting down"
            unavailable = True
        elif isinstance(exc, pg_errors.TooManyConnections) or "too many clients" in lowered:
            hint = ("too many connections: lower pool_size per worker or raise max_connections "
                    "(see connection budgeting in docs/postgres.md)")
        elif isinstance(exc, pg_errors.InsufficientPrivilege):
            hint = "permission denied: the user lacks a privilege fw needs"
        elif isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedFunction):
            hint = "the fw schema is missing or incomplete: run `fw migrate`"
        elif _connection_lost(exc):
            hint = "the connection was closed"
            unavailable = True
        else:
            hint = f"{what} failed"
        error = StoreUnavailableError if unavailable else StoreError
        return error(
            f"PostgreSQL at {self.settings.display}: {hint} "
            f"(while {what}: {type(exc).__name__}: {text})"
        )

    def _replace_dead_connections(self) -> None:
        """Say so once, and check the pool's idle connections in the background, dropping
        dead ones, so the next operations after a server restart do not each meet one."""
        if self._pool is None or (self._purging is not None and not self._purging.done()):
            return
        LOG.warning(
            "PostgreSQL at %s: pooled connections were lost (a server restart or failover, "
            "the network, or pg_terminate_backend); replacing them", self.settings.display,
        )
        self._purging = asyncio.get_running_loop().create_task(self._pool.check())


async def _hold_open(
    pool: AsyncConnectionPool[Connection], hot: HotConnection | None, closing: asyncio.Event
) -> None:
    """Keep ``pool`` (and ``hot``) open until ``closing`` is set (``Database.close``) or this
    task is cancelled (the event loop ends), then close them, stopping the pool's workers,
    even one whose cancellation was swallowed mid-connect."""
    try:
        await closing.wait()
    finally:
        if hot is not None:
            await hot.close()
        await pool.close()


SESSION_SETUP = (  # the server side of CONNECTION_DEFAULTS' keepalives, and the timeout
    "SELECT set_config('idle_in_transaction_session_timeout', %s, false), "
    "set_config('tcp_keepalives_idle', '30', false), "
    "set_config('tcp_keepalives_interval', '10', false), "
    "set_config('tcp_keepalives_count', '3', false), "
    "set_config('tcp_user_timeout', '15000', false)"
)


async def configure_session(conn: Connection) -> None:
    """Set up a new session of fw's: the server ends it after ``IDLE_IN_TRANSACTION_TIMEOUT``
    idle inside a transaction, and probes its client as the client probes the server
    (``CONNECTION_DEFAULTS``), so that a client that vanished (its machine lost, the network
    cut) is noticed in about a minute even while its session is busy or idle, and its locks
    (a worker's liveness lock among them) are let go."""
    await conn.execute(SESSION_SETUP, [str(int(IDLE_IN_TRANSACTION_TIMEOUT * 1000))])
    if not conn.autocommit:
        await conn.commit()


@dataclass
class _Attempt:
    """One try of ``Database.run``: whether its COMMIT was sent (its outcome is then unknown
    if the connection is lost)."""

    committing: bool = False


async def _apply(
    conn: Connection, fn: Callable[[Connection], Awaitable[T]], replay_safe: bool, attempt: _Attempt
) -> T:
    """``fn(conn)``, in a transaction of its own unless it is replay-safe."""
    if replay_safe:
        return await fn(conn)
    async with conn.transaction():
        result = await fn(conn)
        attempt.committing = True  # leaving the block sends the COMMIT
    return result


class HotConnection:
    """The connection operations take before the pool's, while it is free (see the module
    docstring): connected in the background when first wanted, dropped when it cannot be
    trusted, connected again after."""

    RECONNECT_AFTER = 1.0
    """Seconds between tries to connect it while the server refuses."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: Connection | None = None
        self._free = False
        self._connecting: asyncio.Task[None] | None = None
        self._next_try = 0.0
        self._closed = False

    async def take(self) -> Connection | None:
        """The connection, now held by the caller until ``give_back``; None when another
        holds it, it is not connected yet (it starts connecting), or it died while idle."""
        conn = self._conn
        if conn is None:
            self._connect_soon()
            return None
        if not self._free:
            return None
        if _dead_while_idle(conn):
            await self._drop()
            return None
        self._free = False
        return conn

    async def give_back(self, conn: Connection) -> None:
        """Free it for the next operation, or drop it if it is no longer fit: closed, broken,
        inside a transaction or a query (a cancelled operation)."""
        if conn is not self._conn:
            await conn.close()
            return
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if conn.closed or conn.broken or not idle:
            await self._drop()
        else:
            self._free = True

    async def close(self) -> None:
        """Close it for good (the store is closing)."""
        self._closed = True
        if self._connecting is not None:
            if not self._connecting.cancelling():  # the loop's end may have cancelled it
                self._connecting.cancel()
            await asyncio.wait([self._connecting])
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn, self._free = self._conn, None, False
        if conn is not None:
            await conn.close()

    def _connect_soon(self) -> None:
        loop = asyncio.get_running_loop()
        if self._closed or self._connecting is not None or loop.time() < self._next_try:
            return
        self._connecting = loop.create_task(self._connect(), name="fw-postgres-hot")

    async def _connect(self) -> None:
        try:
            conn = await Connection.connect(self._conninfo, autocommit=True)
        except (psycopg.Error, OSError) as exc:
            LOG.debug("PostgreSQL: the hot connection could not connect: %s", exc)
            self._next_try = asyncio.get_running_loop().time() + self.RECONNECT_AFTER
            return
        finally:
            self._connecting = None
        if self._closed:
            await conn.close()
            return
        self._conn, self._free = conn, True


def _dead_while_idle(conn: Connection) -> bool:
    """Whether the server closed (or is closing) this idle connection.

    An idle connection in the pool has nothing to read: no query runs and pool connections
    never LISTEN. Readable means the server sent its goodbye (an admin shutdown, a
    terminated backend) or the socket reached end of file.
    """
    if conn.closed or conn.broken:
        return True
    try:  # poll, not select: select fails for a file number of 1,024 or more
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _connection_lost(exc: psycopg.Error) -> bool:
    shutdown = pg_errors.AdminShutdown | pg_errors.CrashShutdown | pg_errors.CannotConnectNow
    if isinstance(exc, shutdown):
        return True
    sqlstate = exc.sqlstate or ""
    if sqlstate.startswith("08"):
        return True
    return isinstance(exc, psycopg.OperationalError) and not sqlstate


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
