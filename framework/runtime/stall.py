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
import traceback
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
        while not self._stopped.is_set():
            answered = threading.Event()
            asked_at = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:  # the loop is closed
                return
            if answered.wait(self._threshold) or self._stopped.is_set():
                self._stopped.wait(self._threshold)
                continue
            where = self._blocking_user_code()
            if where is None:  # busy in fw or a library (or starved of CPU): not the user's
                continue
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

    def _blocking_user_code(self) -> str | None:
        """The innermost user's frame in the callback the loop is running, as ``file:line
        in function`` (a library's is taken only when no frame of the app's is there)."""
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return None
        stack = traceback.extract_stack(frame)
        callback = [i for i, f in enumerate(stack) if _is_callback_frame(f)]
        if not callback:  # not running a callback (or not an asyncio loop): nothing to name
            return None
        users = [f for f in stack[callback[-1] + 1 :] if is_user_file(f.filename)]
        apps = [f for f in users if _LIBRARIES not in f.filename]
        if not users:
            return None
        found = (apps or users)[-1]
        return f"{found.filename}:{found.lineno} in {found.name}"


_LIBRARIES = "-packages"  # site-packages, dist-packages


def _is_callback_frame(summary: traceback.FrameSummary) -> bool:
    """Whether a frame is asyncio running one callback (a task's step among them)."""
    return summary.name == "_run" and summary.filename.endswith("asyncio/events.py")
