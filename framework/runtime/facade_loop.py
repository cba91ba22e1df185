"""The private event loop of the synchronous facades (``.sync`` handles, the remote
client's blocking calls), run in a background thread, so blocking calls may come from any
thread, including inside a running event loop's thread pool.

At exit it runs the closers registered with ``close_at_exit`` (the app module registers the
closing of the stores opened on this loop), then stops the loop and its thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

Closer = Callable[[], Coroutine[Any, Any, None]]

CLOSE_TIMEOUT = 10.0
"""Seconds the facade's loop gets at exit for each closer, then to stop."""


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[Closer] = []

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        loop = self._ensure()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="fw-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self._close)
            return self._loop

    def close_at_exit(self, closer: Closer) -> None:
        self._closers.append(closer)

    def _close(self) -> None:
        """At exit: run the closers on the loop, then stop it and its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        for closer in self._closers:
            closing = asyncio.run_coroutine_threadsafe(closer(), loop)
            with contextlib.suppress(Exception):  # exiting anyway: a store that fails to close
                closing.result(timeout=CLOSE_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT)


_runner = _LoopThread()


def facade_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop the synchronous facade runs its calls on (None until first used)."""
    return _runner._loop


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the facade's loop and wait for its result."""
    return _runner.run(coroutine)


def close_at_exit(closer: Closer) -> None:
    """Run ``closer()`` on the facade's loop when the process exits, if the loop ever ran."""
    _runner.close_at_exit(closer)
