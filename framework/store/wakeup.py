"""Wake-ups for the SQLite store, which has no LISTEN/NOTIFY of its own.

Each waiting worker binds a Unix datagram socket in a folder of the temporary directory named
after the database's path (short, as socket paths must be); a process
that commits runnable work sends one byte to every socket there (and sets the events of
waiters in its own process directly). A socket whose process died is removed by the first
sender that finds it dead. Workers still poll at ``[runtime] poll_interval``, so a lost
datagram only delays work, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
import threading
import uuid
from pathlib import Path


class _LocalWaiters:
    """asyncio events of the waiters in this process, per wake-up folder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[Path, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def add(self, folder: Path, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters.setdefault(folder, set()).add((loop, event))

    def discard(self, folder: Path, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters.get(folder, set()).discard((loop, event))

    def wake(self, folder: Path) -> None:
        with self._lock:
            waiters = list(self._waiters.get(folder, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(event.set)


_local = _LocalWaiters()


class WakeupChannel:
    """The wake-up folder of one database file."""

    def __init__(self, database: Path) -> None:
        digest = hashlib.sha1(str(database.resolve()).encode()).hexdigest()[:16]
        self.folder = Path(tempfile.gettempdir()) / f"fw-wake-{digest}"
        self._socket: socket.socket | None = None
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self) -> None:
        """Wake every waiter, in this process and in others. Called after a commit."""
        _local.wake(self.folder)
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        own = self._socket.getsockname() if self._socket else None
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for name in names:
                path = str(self.folder / name)
                if path == own:
                    continue
                try:
                    sender.sendto(b"!", path)
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                except (BlockingIOError, OSError):
                    pass  # its queue is full: it has a wake-up pending already

    async def wait(self, timeout: float) -> None:
        """Return at the next wake-up, or after ``timeout`` seconds."""
        event = self._listen()
        if not event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # Python 3.11's wait_for may swallow a cancel
                    await event.wait()
        event.clear()

    def close(self) -> None:
        """Stop listening and remove this process's socket."""
        if self._loop is not None and self._event is not None:
            _local.discard(self.folder, self._loop, self._event)
        if self._socket is not None:
            path = self._socket.getsockname()
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._socket.fileno())  # type: ignore[union-attr]
            self._socket.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._socket = None

    def _listen(self) -> asyncio.Event:
        if self._event is not None:
            return self._event
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        _local.add(self.folder, self._loop, self._event)
        self.folder.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        try:
            sock.bind(str(path))
        except OSError:
            sock.close()  # a path too long for AF_UNIX: in-process wake-ups and polling remain
            return self._event
        self._socket = sock
        self._loop.add_reader(sock.fileno(), self._drain)
        # Work committed between the caller's last look and this bind woke no one here: the
        # first wait returns at once so that its caller looks again (a worker just started
        # otherwise waited a poll interval for the instance created as it began to listen).
        self._event.set()
        return self._event

    def _drain(self) -> None:
        assert self._socket is not None and self._event is not None
        with contextlib.suppress(BlockingIOError):
            while self._socket.recv(64):
                pass
        self._event.set()
