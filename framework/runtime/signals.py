"""In-process notices that an instance changed, so ``result()`` wakes at once when a worker in
the same process ends the instance, instead of at its next poll."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Generator
from contextlib import contextmanager


class InstanceSignals:
    """Waiters per instance id, across threads and event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextmanager
    def watching(self, instance_id: str) -> Generator[asyncio.Event]:
        """An event set whenever ``changed(instance_id)`` is called while the block runs."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
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

    def changed(self, instance_id: str) -> None:
        """Wake whoever watches ``instance_id``."""
        with self._lock:
            waiters = list(self._waiters.get(instance_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(event.set)
