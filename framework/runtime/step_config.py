"""A step's durability policy as users pass it and as its handler sees it: ``StepConfig``
(retries and timeout) and ``StepInfo`` (which step, which occurrence)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from framework.runtime.durations import Duration, parse_duration
from framework.runtime.retries import Retries, RetryPolicy


class StepConfig(BaseModel):
    """A step's retries and timeout.

    Passed to ``ctx.run_step(step, args, config=StepConfig(...))`` it overrides, for that one
    call, the policy given to ``define_step``, field by field: what it leaves ``None`` (in
    ``retries`` too) keeps the step's own, and where the step sets none, the workflow's and
    the app's defaults. A handler reads the
    effective policy as ``ctx.config``: every field set, ``timeout`` in seconds.

    Attributes:
        retries: the retry policy (``Retries``; unset fields come from the defaults).
        timeout: the limit of one attempt (a duration; seconds once resolved).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    retries: Retries | None = None
    timeout: Duration | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _parse_timeout(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    def over(
        self, retries: Retries | None, timeout: Duration | None
    ) -> tuple[Retries | None, Duration | None]:
        """``retries`` and ``timeout`` with what this config sets laid over them, field by
        field (``Retries(limit=0)`` over a step's retries keeps its delay)."""
        if self.retries is not None:
            if retries is None:
                retries = self.retries
            else:
                changes = {
                    f.name: getattr(self.retries, f.name)
                    for f in fields(self.retries)
                    if getattr(self.retries, f.name) is not None
                }
                retries = replace(retries, **changes)
        return retries, timeout if self.timeout is None else self.timeout

    @classmethod
    def effective(cls, policy: RetryPolicy, timeout: float) -> StepConfig:
        """The fully resolved config of a step that runs with ``policy`` and ``timeout``."""
        retries = Retries(
            limit=policy.limit,
            delay=policy.delay,
            backoff=policy.backoff,
            max_delay=policy.max_delay,
            factor=policy.factor,
            jitter=policy.jitter,
        )
        return cls(retries=retries, timeout=timeout)


@dataclass(frozen=True)
class StepInfo:
    """Which step a handler runs as: its journal ``name`` and ``count`` (the occurrence of that
    name in this instance, 1 the first time, 2 the next time, in a loop)."""

    name: str
    count: int


def checked_idempotency_key(value: object, step: str) -> str | None:
    """A caller's idempotency key for step ``step``, refused when it is not a non-empty str
    (a key computed as None by mistake would silently fall back to the derived one)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"step {step!r}: idempotency_key must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"step {step!r}: idempotency_key is empty; pass a key or leave it out")
    return value
