"""Time as the runtime sees it, so tests can skip ahead instead of waiting."""

from __future__ import annotations

import time
from collections.abc import Generator
from contextlib import contextmanager


class Clock:
    """The wall clock: seconds since the epoch."""

    def now(self) -> float:
        """The current time."""
        return time.time()

    def may_skip(self) -> bool:
        """Whether an idle worker may jump this clock to the next due time."""
        return False

    def skip_to(self, when: float) -> None:
        """Move time forward to ``when`` (only a skipping clock can)."""
        raise RuntimeError("the system clock cannot skip ahead")

    @contextmanager
    def awaiting(self) -> Generator[None]:
        """Mark a caller waiting for an instance to end (``result()``)."""
        yield


class SkippingClock(Clock):
    """A test clock that runs at wall speed and jumps ahead while a test awaits a result and
    the worker has nothing to run, so a ``sleep("cool-off", "7 days")`` completes at once.

    Time never skips while nobody awaits a result, so a test can send an event to a waiting
    instance without racing its timeout. ``advance`` moves time by hand.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self._awaiting = 0

    def now(self) -> float:
        return time.time() + self.offset

    def may_skip(self) -> bool:
        return self._awaiting > 0

    def skip_to(self, when: float) -> None:
        ahead = when - self.now()
        if ahead > 0:
            self.offset += ahead

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.offset += seconds

    @contextmanager
    def awaiting(self) -> Generator[None]:
        self._awaiting += 1
        try:
            yield
        finally:
            self._awaiting -= 1
