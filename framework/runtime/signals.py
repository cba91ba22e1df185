"""In-process notices that an instance changed, so ``result()`` wakes at once when a worker in
the same process ends the instance, instead of at its next poll.

A worker that ends an instance by its own commit also says how (``Ended``: the status, output
and error it just committed), so the waiter needs no second read of the row to learn it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass

from framework.store.base import Status


@dataclass(frozen=True)
class Ended:
    """How a worker of this process ended an instance: the fields its commit stored."""

    status: Status
    output: str | None
    error: str | None


class Watch:
    """One waiter's view of an instance: ``event`` is set on every change; ``ended`` holds
    how it ended, when a worker of this process ended it by its own commit."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.ended: Ended | None = None

    def deliver(self, ended: Ended | None) -> None:
        """Tell the waiter of a change (run on its event loop)."""
        if ended is not None:
            self.ended = ended
        self.event.set()


class InstanceSignals:
    """Waiters per instance id, across threads and event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, Watch]]] = {}

    @contextmanager
    def watching(self, instance_id: str) -> Generator[Watch]:
        """A watch told of every ``changed(instance_id)`` called while the block runs."""
        waiter = (asyncio.get_running_loop(), Watch())
        with self._lock:
            self._waiters.setdefault(instance_id, set()).add(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(instance_id, set())
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(instance_id, None)

    def changed(self, instance_id: str, ended: Ended | None = None) -> None:
        """Wake whoever watches ``instance_id``, telling them how it ended if ``ended``.

        A waiter on the caller's own event loop is told at once: its wake-up is then queued
        before whatever the caller's task does next (a worker's next claim, say), and no
        byte goes through the loop's self-pipe."""
        with self._lock:
            waiters = list(self._waiters.get(instance_id, ()))
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, watch in waiters:
            if loop is here:
                watch.deliver(ended)
                continue
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(watch.deliver, ended)
