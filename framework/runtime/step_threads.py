"""The threads that run synchronous step functions.

A sync step runs in a thread, so that it never blocks the event loop. Steps used to share
asyncio's default executor (``min(32, CPUs + 4)`` threads: six on two cores) with everything
else the process hands to threads (psycopg resolving a host name to reconnect, say): steps
stuck in a call that never returns, or running on past their timeout (a thread cannot be
stopped), held every thread, so other instances' sync steps waited (and timed out unrun) and
a reconnect waited with them; and the end of ``asyncio.run``, then the interpreter's exit,
joined those threads, so a SIGTERM left the process up until the calls returned, or for ever.

Steps now get threads of their own: a thread per step running at once (up to
``MOST_THREADS``; past that, steps queue), started when needed, ended after ``IDLE`` seconds
unused, and daemon threads that nothing joins, so a process stops whatever its steps do.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")
MOST_THREADS = 512
IDLE = 30.0
"""Seconds a thread waits for another step before it ends."""

_Work = tuple[Future[Any], Callable[[], Any]]


class StepThreads(Executor):
    """An executor of daemon threads, one per call running at once (see the module)."""

    def __init__(self, most: int = MOST_THREADS, idle: float = IDLE) -> None:
        self._most = most
        self._idle_for = idle
        self._queue: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._queue.put((future, lambda: fn(*args, **kwargs)))
            if self._idle == 0 and self._threads < self._most:
                self._threads += 1
                start = True
            else:
                if self._idle:
                    self._idle -= 1  # this call takes an idle thread
                start = False
        if start:
            threading.Thread(target=self._serve, name="fw-step", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            try:
                future, call = self._queue.get(timeout=self._idle_for)
            except queue.Empty:
                with self._lock:
                    if not self._queue.empty():  # a call came as the wait ended
                        continue
                    self._threads -= 1
                    self._idle -= 1
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:  # handed to the step, whatever it is
                    future.set_exception(exc)
            del future, call
            with self._lock:
                self._idle += 1


_shared: StepThreads | None = None
_shared_lock = threading.Lock()


def step_threads() -> StepThreads:
    """The process's step threads."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = StepThreads()
        return _shared
