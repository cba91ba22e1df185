"""Retry policies: how many times a failed step runs again, and how long it waits before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from framework.runtime.durations import Duration, parse_duration

Backoff = Literal["constant", "linear", "exponential"]


@dataclass(frozen=True)
class Retries:
    """A step's retry policy; a field left ``None`` takes ``fw.toml [defaults.retries]``.

    Attributes:
        limit: retries after the first attempt (``0``: never retry).
        delay: the wait before the first retry.
        backoff: how the wait grows: ``constant`` (delay), ``linear`` (delay * n) or
            ``exponential`` (delay * 2 ** (n - 1)), for the n-th retry.
        max_delay: a cap on any single wait.
    """

    limit: int | None = None
    delay: Duration | None = None
    backoff: Backoff | None = None
    max_delay: Duration | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"Retries(limit={self.limit}): the limit cannot be negative")
        for value in (self.delay, self.max_delay):
            if value is not None:
                parse_duration(value)


@dataclass(frozen=True)
class RetryPolicy:
    """A fully resolved policy, in seconds."""

    limit: int
    delay: float
    backoff: Backoff
    max_delay: float | None

    @classmethod
    def resolve(cls, retries: Retries | None, default: RetryPolicy) -> RetryPolicy:
        """Fill the fields ``retries`` leaves unset from ``default``."""
        if retries is None:
            return default
        return cls(
            limit=default.limit if retries.limit is None else retries.limit,
            delay=default.delay if retries.delay is None else parse_duration(retries.delay),
            backoff=retries.backoff or default.backoff,
            max_delay=(
                default.max_delay
                if retries.max_delay is None
                else parse_duration(retries.max_delay)
            ),
        )

    def delay_before_retry(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if self.backoff == "constant":
            wait = self.delay
        elif self.backoff == "linear":
            wait = self.delay * retry
        else:
            wait = self.delay * 2 ** (retry - 1)
        return min(wait, self.max_delay) if self.max_delay is not None else wait
