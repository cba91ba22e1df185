"""Retry policies: how many times a failed step runs again, and how long it waits before."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
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
            ``exponential`` (delay * factor ** (n - 1)), for the n-th retry.
        max_delay: a cap on any single wait (jitter included).
        factor: the multiplier of ``exponential`` backoff (default 2, at least 1).
        jitter: a fraction from 0 to 1: each wait is multiplied by a random number between
            ``1 - jitter`` and ``1 + jitter`` (default 0, no randomness).
    """

    limit: int | None = None
    delay: Duration | None = None
    backoff: Backoff | None = None
    max_delay: Duration | None = None
    factor: float | None = None
    jitter: float | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"Retries(limit={self.limit}): the limit cannot be negative")
        if self.factor is not None and not self.factor >= 1:
            raise ValueError(f"Retries(factor={self.factor}): the factor must be at least 1")
        if self.jitter is not None and not 0 <= self.jitter <= 1:
            raise ValueError(f"Retries(jitter={self.jitter}): the jitter must be from 0 to 1")
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
    factor: float = 2.0
    jitter: float = 0.0

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
            factor=default.factor if retries.factor is None else retries.factor,
            jitter=default.jitter if retries.jitter is None else retries.jitter,
        )

    def delay_before_retry(
        self, retry: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry); the jitter
        draws its multiplier from ``uniform(1 - jitter, 1 + jitter)``."""
        if self.backoff == "constant":
            wait = self.delay
        elif self.backoff == "linear":
            wait = self.delay * retry
        else:
            try:
                wait = self.delay * self.factor ** (retry - 1)
            except OverflowError:  # a long run of retries: the cap, if any, applies
                wait = math.inf if self.delay else 0.0
        if self.jitter:
            wait *= uniform(1 - self.jitter, 1 + self.jitter)
        return min(wait, self.max_delay) if self.max_delay is not None else wait
