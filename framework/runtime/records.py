"""The public records of instances and steps, as handles, the CLI and the HTTP API return them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, field_validator

from framework.store.base import Status as Status
from framework.store.base import StepKind, StepStatus

O = TypeVar("O")

MESSAGE_LIMIT = 4_000
"""The most characters of an error message fw stores, shows or logs; the rest is cut, saying so."""
TRACEBACK_LIMIT = 8_000
"""The most characters of a stored traceback; its start is cut, saying so."""


def cut_text(text: str, limit: int = MESSAGE_LIMIT, keep: Literal["start", "end"] = "start") -> str:
    """``text`` if it has at most ``limit`` characters; else its first (or last) characters
    and a note of how many were cut (``… [cut: 49,996,035 more characters]``), ``limit`` in all."""
    if len(text) <= limit:
        return text
    kept = limit
    while True:
        cut = len(text) - kept
        note = (
            f"… [cut: {cut:,} more characters]"
            if keep == "start"
            else f"[cut: {cut:,} earlier characters] …"
        )
        if kept + len(note) <= limit:
            break
        kept = limit - len(note)
    return text[:kept] + note if keep == "start" else note + text[len(text) - kept :]


class ErrorInfo(BaseModel):
    """An error as stored: the exception's class name, its message and the failing step.

    The message is cut to ``MESSAGE_LIMIT`` characters and the traceback to its last
    ``TRACEBACK_LIMIT``, each saying how much was cut (also when read from older rows).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    message: str
    step: str | None = None
    attempts: int | None = None
    traceback: str | None = None
    details: dict[str, Any] = {}

    @field_validator("name", "message")
    @classmethod
    def _cut_message(cls, text: str) -> str:
        return cut_text(text)

    @field_validator("traceback")
    @classmethod
    def _cut_traceback(cls, text: str | None) -> str | None:
        return None if text is None else cut_text(text, TRACEBACK_LIMIT, keep="end")

    def __str__(self) -> str:
        where = f" in step {self.step!r}" if self.step else ""
        return f"{self.name}{where}: {self.message}"


class InstanceStatus(BaseModel, Generic[O]):
    """An instance's state: ``status``, ``output`` (typed), ``error`` and timestamps."""

    id: str
    workflow: str
    status: Status
    output: O | None = None
    error: ErrorInfo | None = None
    params: Any = None
    created_at: datetime
    updated_at: datetime
    version: str | None = None
    parent_id: str | None = None
    unreadable: dict[str, str] = {}
    """Stored values that could not be read (``"output"``, ``"params"``) and why; they
    show as None (rows written by older code, or whose type changed since)."""

    @property
    def terminal(self) -> bool:
        """Whether the instance has ended (``complete``, ``errored`` or ``terminated``)."""
        return self.status in ("complete", "errored", "terminated")


class StepRecord(BaseModel):
    """One entry of an instance's step timeline."""

    name: str
    count: int
    kind: StepKind
    status: StepStatus
    attempts: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    wake_at: datetime | None = None
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    event_type: str | None = None
    child_id: str | None = None
    child_workflow: str | None = None
    unreadable: dict[str, str] = {}
    """Stored values that could not be read (``"input"``, ``"output"``) and why."""

    @property
    def duration(self) -> float | None:
        """Seconds from the first attempt's start to the end, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class WaitingFor(BaseModel):
    """What a ``waiting`` instance waits for.

    ``kind`` is ``retry`` (the next attempt of step ``step`` at ``until``; ``error`` is the
    last attempt's), ``sleep`` (until ``until``), ``event`` (one of type ``event_type``;
    ``until`` is its timeout, None for none) or ``children`` (the ids in ``children``).
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["retry", "sleep", "event", "children"]
    step: str
    until: datetime | None = None
    event_type: str | None = None
    error: ErrorInfo | None = None
    children: list[str] = []


@overload
def timestamp(value: float) -> datetime: ...


@overload
def timestamp(value: float | None) -> datetime | None: ...


def timestamp(value: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)
