"""Saying so when a user's code blocks the event loop.

A worker runs every instance's async code (async steps, handlers, rollbacks, the body) on one
event loop. Blocking code there (``time.sleep``, a sync HTTP client, a long computation in an
``async def``) stops all of it at once: the other instances, the lease heartbeats, the API and
Studio served by the same process; and the step's timeout cannot fire until it returns. fw
cannot preempt it, but it can say where it is: a watchdog thread asks the loop to answer every
``STALL_WARNING`` seconds, and when it does not while the loop's thread is in a user's code,
logs one warning naming that code (``file:line in function``) and, once the loop answers
again, how long it was blocked.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from types import FrameType

from framework.runtime.failures import is_user_file

LOG = logging.getLogger("fw.worker")

STALL_WARNING = 1.0
"""Seconds the event loop may go without answering before a blocking user's call is named."""


class LoopWatchdog:
    """A daemon thread that names user code blocking ``loop`` (started and stopped on it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float = STALL_WARNING) -> None:
        self._loop = loop
        self._threshold = threshold
        self._loop_thread = threading.get_ident()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fw-loop-watchdog", daemon=True)

    def start(self) -> None:
        """Start watching (call on the loop's thread)."""
        self._loop_thread = threading.get_ident()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the thread ends within one threshold."""
        self._stopped.set()

    def _watch(self) -> None:
        half = self._threshold / 2
        while not self._stopped.is_set():
            answered = threading.Event()
            asked_at = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:  # the loop is closed
                return
            if answered.wait(half) or self._stopped.is_set():
                self._stopped.wait(self._threshold)
                continue
            first = self._blocking_user_frame()
            if answered.wait(half) or self._stopped.is_set():
                continue
            second = self._blocking_user_frame()
            # The same call of a user's function both times: blocked in it, not merely busy
            # (or starved of CPU) across many callbacks.
            if first is None or second is None or first is not second:
                continue
            where = _describe(second)
            del first, second
            LOG.warning(
                "the event loop has not answered for %.1f s: blocked at %s; an async step, "
                "handler or body must not block (use a sync function, which fw runs in a "
                "thread, or await asyncio.to_thread(...)); every instance of this worker, its "
                "heartbeats and the step's timeout wait meanwhile",
                time.monotonic() - asked_at,
                where,
            )
            while not answered.wait(self._threshold) and not self._stopped.is_set():
                pass
            LOG.warning(
                "the event loop answered again after %.1f s blocked at %s",
                time.monotonic() - asked_at,
                where,
            )

    def _blocking_user_frame(self) -> FrameType | None:
        """The innermost user's frame in the callback the loop is running (a library's only
        when no frame of the app's is there), or None."""
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        inner: list[FrameType] = []  # innermost first, up to the callback asyncio runs
        while frame is not None and not _is_callback_frame(frame):
            inner.append(frame)
            frame = frame.f_back
        if frame is None:  # not running a callback (or not an asyncio loop): nothing to name
            return None
        users = [f for f in inner if is_user_file(f.f_code.co_filename)]
        apps = [f for f in users if _LIBRARIES not in f.f_code.co_filename]
        found = apps or users
        return found[0] if found else None


_LIBRARIES = "-packages"  # site-packages, dist-packages


def _is_callback_frame(frame: FrameType) -> bool:
    """Whether a frame is asyncio running one callback (a task's step among them)."""
    code = frame.f_code
    return code.co_name == "_run" and code.co_filename.endswith("asyncio/events.py")


def _describe(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
