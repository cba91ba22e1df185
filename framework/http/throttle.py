"""Failed login and bearer-token attempts, limited per client address.

A client may get the token wrong ``burst`` times in a row; after that it earns one more
attempt every ``refill_seconds`` (a token bucket). Meanwhile every request from it that
carries a token (a bearer header or Studio's login form) answers 429 with ``Retry-After``,
without its token being checked, so guessing costs time whatever the guesses. Requests with no
token at all are never limited. The count lives in each server process's memory: N processes
behind a balancer allow N times the attempts, still far too few to guess a 32-character token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request


@dataclass
class _Bucket:
    attempts: float
    updated: float


class AttemptLimiter:
    """Failed attempts per client: ``burst`` at once, then one per ``refill_seconds``."""

    def __init__(
        self,
        burst: int = 10,
        refill_seconds: float = 6.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try a token again (None: it may now)."""
        bucket = self._refilled(client)
        if bucket is None or bucket.attempts >= 1:
            return None
        return max(1, math.ceil((1 - bucket.attempts) * self.refill_seconds))

    def record_failure(self, client: str) -> None:
        """Count a wrong token from ``client``."""
        bucket = self._refilled(client) or _Bucket(float(self.burst), self.clock())
        bucket.attempts = max(0.0, bucket.attempts - 1)
        self._buckets.pop(client, None)
        self._buckets[client] = bucket  # the most recent last, so the oldest go first
        while len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]

    def _refilled(self, client: str) -> _Bucket | None:
        bucket = self._buckets.get(client)
        if bucket is None:
            return None
        now = self.clock()
        earned = (now - bucket.updated) / self.refill_seconds
        bucket.attempts = min(float(self.burst), bucket.attempts + earned)
        bucket.updated = now
        if bucket.attempts >= self.burst:
            del self._buckets[client]  # back to a clean slate
            return None
        return bucket


def client_address(request: Request) -> str:
    """The address attempts are counted under: the connection's, or, from a trusted proxy
    (``proxies``), the client's it names in ``X-Forwarded-For``."""
    return request.client.host if request.client else "unknown"
