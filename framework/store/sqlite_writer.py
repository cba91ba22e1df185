"""One writer thread per SQLite store, committing queued writes in groups.

Every write is a function of the connection. The thread takes all writes queued while the
previous commit ran and applies them in one transaction; if one of them fails, the
transaction is rolled back and the group applied again, each write inside its own savepoint
(the one that fails is rolled back alone and its caller gets the error). Under load many
instances' journal entries share one fsync; alone, each write still commits at once.

Another process's write lock is waited for here, not by SQLite's busy handler (the
connection's is off): the handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50 ms... between
tries, so a commit behind a 100 ms lock held elsewhere waited until the try at 128 ms; the
writer tries again every ``LOCK_RETRY`` instead.

The thread opens the connection and is the only one to close it: when it stops, or at once
if opening fails. Each write's caller awaits an asyncio future of its own loop; once a group
has committed, the thread settles all of a loop's futures in one callback on that loop (one
wake-up of the loop per group, not one per write). A caller that gives up (a cancelled task)
never breaks it: a write whose future is cancelled before its group starts is dropped, and
the outcome of one cancelled later is left unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from framework.errors import StoreClosedError

T = TypeVar("T")
MAX_GROUP = 256
LOCK_RETRY = 0.001
"""Seconds between two tries at the write lock while another process holds it."""


@dataclass
class WriteResult(Generic[T]):
    """What a write function returns: its value, and whether workers should be woken."""

    value: T
    wake_workers: bool = False


@dataclass(frozen=True)
class LookFirst(Generic[T]):
    """A read run before a write that is alone in its group, outside any transaction: when
    ``needed`` says no, the write returns ``otherwise`` without taking the write lock."""

    needed: Callable[[sqlite3.Connection], bool]
    otherwise: T


@dataclass
class _Write(Generic[T]):
    fn: Callable[[sqlite3.Connection], WriteResult[T]]
    durable: bool = True
    look_first: LookFirst[T] | None = None
    future: asyncio.Future[T] | None = None
    """What the caller awaits (None: committed inline, on the caller's thread)."""


_Outcome = tuple[_Write[Any], Any, BaseException | None]
"""A write, its value and its error (None: it succeeded)."""


class SQLiteWriter:
    """The thread that owns the store's write connection."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_commit_wake: Callable[[], None],
        translate_error: Callable[[BaseException], BaseException],
        name: str = "the SQLite store",
        lock_wait: float = 15.0,
    ) -> None:
        """``connect`` opens the connection with its busy handler off (``busy_timeout``
        0); ``lock_wait`` is how long a write waits for another process's lock."""
        self._connect = connect
        self._lock_wait = lock_wait
        self._name = name
        self._on_commit_wake = on_commit_wake
        self._translate_error = translate_error
        self._queue: queue.SimpleQueue[_Write[Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="fw-sqlite-writer", daemon=True)
        self._ready: Future[None] = Future()
        self.commits = 0
        """Transactions committed so far (benchmarks report commits per step)."""
        self.inline = False
        """Commit on the caller's thread when the writer is idle (see ``write``)."""
        self._durable = True  # the connection starts with synchronous=FULL
        self._busy = threading.Lock()  # held by whichever thread uses the connection
        self._connection: sqlite3.Connection | None = None
        self._accepting = False  # the thread is connected and not told to stop
        self._accepting_lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether ``start`` was called (a writer starts once)."""
        return self._thread.ident is not None

    def start(self) -> Future[None]:
        """Start the thread; the future completes once its connection is open, or fails
        with the reason it could not be opened (the thread has then ended)."""
        self._thread.start()
        return self._ready

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], WriteResult[T]],
        durable: bool = True,
        look_first: LookFirst[T] | None = None,
        may_inline: bool = False,
    ) -> T:
        """Run ``fn`` in the next group commit and return its value once committed.

        ``durable=False`` (claims, lease extensions) lets a group made only of such writes
        commit without waiting for the disk (``synchronous=NORMAL``): it survives a crash of
        the process, and a power loss can only undo it, which leaves the instance claimable.
        The next durable commit flushes it anyway.

        ``look_first``, when given, is a read run first, outside any transaction, when the
        write is alone in its group: if it says the write is not needed, its ``otherwise`` is
        returned without taking the write lock (an idle worker looking for work never blocks
        other writers).

        A write that ``may_inline`` (a worker's own: claims, journal entries), with
        ``inline`` set (one instance runs in this process, so nothing would share the
        commit) and the writer idle, commits on the calling thread: two thread hand-offs
        fewer per step for a workflow running alone. Other writes (bursts of creates from
        an API) always go to the writer thread, where they share commits.
        """
        item = _Write(fn, durable, look_first)
        if may_inline and self.inline and (outcome := self._commit_inline(item)) is not None:
            _, value, error = outcome
            if error is not None:
                raise error
            return value  # type: ignore[no-any-return]
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        item.future = future
        with self._accepting_lock:
            if not self._accepting:
                raise StoreClosedError(f"{self._name} is not open")
            self._queue.put(item)
        return await future

    def read_inline(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[bool, T | None]:
        """Run the read ``fn`` on the calling thread, on the write connection, when
        ``inline`` is set and the writer is idle: ``(True, value)``; else ``(False, None)``
        (read in the reader thread then). A point read there costs less than the two thread
        hand-offs of the reader thread, which a lone instance's ``result()`` would pay."""
        if not self.inline or not self._queue.empty() or not self._busy.acquire(blocking=False):
            return False, None
        try:
            connection = self._connection
            if connection is None or not self._accepting:
                return False, None
            return True, fn(connection)
        except sqlite3.Error as exc:
            if is_busy(exc):  # a WAL being recovered: the reader thread's connection waits
                return False, None
            raise
        finally:
            self._busy.release()

    def stop(self) -> None:
        """Finish queued writes, close the connection and join the thread (which may still
        be opening the connection: it closes it, or gives up, first)."""
        with self._accepting_lock:
            self._accepting = False
            self._queue.put(None)
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        # Marked running first, the open's future can no longer be cancelled by its caller
        # giving up, so settling it below is safe; if it already gave up, connect nothing.
        if not self._ready.set_running_or_notify_cancel():
            return
        try:
            connection = self._connect()
        except BaseException as exc:
            self._ready.set_exception(self._translate_error(exc))
            return
        self._connection = connection
        with self._accepting_lock:
            self._accepting = self._queue.empty()  # not when stop() came during the connect
        self._ready.set_result(None)
        try:
            while (group := self._next_group()) is not None:
                # A write whose caller was cancelled before it started is dropped.
                live = [item for item in group if item.future and not item.future.cancelled()]
                if live:
                    with self._busy:
                        outcomes = self._commit(connection, live)
                    _settle_all(outcomes)
        finally:
            with self._busy:
                self._connection = None
                connection.close()

    def _commit_inline(self, item: _Write[Any]) -> _Outcome | None:
        """Commit ``item`` on this thread if the writer is idle: its outcome (None: the
        writer was busy, closed or not open yet)."""
        if not self._queue.empty() or not self._busy.acquire(blocking=False):
            return None
        try:
            connection = self._connection
            if connection is None or not self._accepting:  # not open yet, or closing
                return None
            return self._commit(connection, [item])[0]
        finally:
            self._busy.release()

    def _next_group(self) -> list[_Write[Any]] | None:
        first = self._queue.get()
        if first is None:
            return None
        group = [first]
        while len(group) < MAX_GROUP:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            group.append(item)
        return group

    def _commit(self, connection: sqlite3.Connection, group: list[_Write[Any]]) -> list[_Outcome]:
        """Apply and commit ``group``; each write's outcome."""
        if len(group) == 1 and (skipped := self._unneeded(connection, group[0])) is not None:
            return [skipped]
        results: list[tuple[_Write[Any], WriteResult[Any] | None, BaseException | None]] = []
        try:
            self._set_durability(connection, any(item.durable for item in group))
            self._begin(connection)
            if len(group) == 1:  # alone, its failure is the transaction's: no savepoint needed
                results.append((group[0], group[0].fn(connection), None))
            elif (applied := self._apply_all(connection, group)) is not None:
                results.extend(applied)
            else:  # one write failed: again, each in a savepoint, so it fails alone
                self._begin(connection)
                results.extend(self._apply_one(connection, item) for item in group)
            connection.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            failure = self._translate_error(exc)
            return [(item, None, failure) for item in group]
        if any(result is not None and result.wake_workers for _, result, _ in results):
            self._on_commit_wake()
        return [
            (item, None if result is None else result.value, error)
            for item, result, error in results
        ]

    def _begin(self, connection: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, tried every ``LOCK_RETRY`` while another process holds the
        write lock, for up to ``lock_wait`` seconds (then its "database is locked" error)."""
        deadline: float | None = None
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as exc:
                if not is_busy(exc):
                    raise
                now = time.monotonic()
                deadline = deadline or now + self._lock_wait
                if now >= deadline:
                    raise
            time.sleep(LOCK_RETRY)

    def _unneeded(self, connection: sqlite3.Connection, item: _Write[Any]) -> _Outcome | None:
        """Run the write's look-first read: the write's outcome if it is not needed (or the
        read failed), else None."""
        look = item.look_first
        if look is None:
            return None
        try:
            if look.needed(connection):
                return None
        except sqlite3.Error as exc:
            if is_busy(exc):  # a WAL being recovered: the write waits for its lock
                return None
            return item, None, self._translate_error(exc)
        return item, look.otherwise, None

    def _set_durability(self, connection: sqlite3.Connection, durable: bool) -> None:
        if durable != self._durable:
            connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    def _apply_all(
        self, connection: sqlite3.Connection, group: list[_Write[Any]]
    ) -> list[tuple[_Write[Any], WriteResult[Any], None]] | None:
        """Apply the group's writes in turn, without savepoints (two statements fewer per
        write); None, the transaction rolled back, when one of them raised."""
        applied: list[tuple[_Write[Any], WriteResult[Any], None]] = []
        for item in group:
            try:
                applied.append((item, item.fn(connection), None))
            except sqlite3.OperationalError:
                raise  # the database itself failed: the whole group fails
            except Exception:
                connection.execute("ROLLBACK")
                return None
        return applied

    def _apply_one(
        self, connection: sqlite3.Connection, item: _Write[Any]
    ) -> tuple[_Write[Any], WriteResult[Any] | None, BaseException | None]:
        connection.execute("SAVEPOINT write")
        try:
            result = item.fn(connection)
        except sqlite3.OperationalError:
            raise  # the database itself failed: the whole group fails
        except Exception as exc:
            connection.execute("ROLLBACK TO write")
            connection.execute("RELEASE write")
            return item, None, self._translate_error(exc)
        connection.execute("RELEASE write")
        return item, result, None


def _settle_all(outcomes: list[_Outcome]) -> None:
    """Hand the outcomes to their callers: one callback per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        future = outcome[0].future
        assert future is not None
        by_loop.setdefault(future.get_loop(), []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: its callers are gone
            loop.call_soon_threadsafe(_settle, settled)


def _settle(outcomes: list[_Outcome]) -> None:
    for item, value, error in outcomes:
        future = item.future
        assert future is not None
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def is_busy(exc: BaseException) -> bool:
    """Whether SQLite refused for a lock another connection holds (SQLITE_BUSY, or
    SQLITE_LOCKED for a shared-cache table)."""
    code = getattr(exc, "sqlite_errorcode", None)  # set on the errors SQLite raised
    return isinstance(code, int) and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
