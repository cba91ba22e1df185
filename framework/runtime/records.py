"""The public records of instances and steps, as handles, the CLI and the HTTP API return them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, computed_field, field_validator

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

    ``retryable`` is False for an error fw never retries (``NonRetryableError``, an exception
    whose ``retryable`` attribute is ``False``, a serialization or payload error, a
    termination); a step's error with ``retryable`` True failed for good once its retries ran
    out. Errors stored before fw recorded it read as True.

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
    retryable: bool = True

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


class LogRecord(BaseModel):
    """One ``ctx.log`` line of an instance: when, its level, its message and fields, and the
    step it was logged in (None: the workflow body, between steps)."""

    at: datetime
    level: str
    message: str
    step: str | None = None
    step_count: int | None = None
    fields: dict[str, Any] = {}


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
    waiting_for: list[WaitingFor] = []
    """While ``waiting``: what for, in journal order (several when branches of the body
    wait at once; the children of one ``parallel`` are one entry). Empty otherwise."""
    runs: int = 0
    """How many times a worker started running it: its first run, each wake-up after a
    sleep, wait or retry, each recovery after a worker died, restarts included."""
    retention: float | None = None
    """Seconds it is kept once ended, as given to ``create`` (None: its workflow's or the
    app's retention)."""

    @property
    def terminal(self) -> bool:
        """Whether the instance has ended (``complete``, ``errored`` or ``terminated``)."""
        return self.status in ("complete", "errored", "terminated")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ended_at(self) -> datetime | None:
        """When it ended (its last change), None while it has not."""
        return self.updated_at if self.terminal else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration(self) -> float | None:
        """Seconds from its creation to its end, None while it has not ended."""
        if self.ended_at is None:
            return None
        return max((self.ended_at - self.created_at).total_seconds(), 0.0)


AnyInstanceStatus = InstanceStatus[Any]
"""``InstanceStatus[Any]``, held here: pydantic keeps a parametrized model only while something
refers to it, and rebuilds it (milliseconds) after each garbage collection that freed it."""


StepRecordStatus = StepStatus | Literal["stopped"]
"""A step's status as read: ``stopped`` is a wait (``waiting`` in the journal) of an
instance that has ended, so it waits for nothing any more."""


class AttemptRecord(BaseModel):
    """One attempt of a step: when it started and ended, and how it failed (None: it
    succeeded, or is the attempt a crashed worker left unfinished)."""

    number: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorInfo | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration(self) -> float | None:
        """Seconds the attempt ran, when both ends are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class StepRecord(BaseModel):
    """One entry of an instance's step timeline."""

    name: str
    count: int
    kind: StepKind
    status: StepRecordStatus
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
    attempt_history: list[AttemptRecord] = []
    """Each attempt of a ``do`` or ``rollback`` step, oldest first: the last 20 are kept
    (``attempts`` counts them all)."""
    idempotency_key_sha256: str | None = None
    """The SHA-256 (hex) of the idempotency key the caller gave the step, if any (the key
    itself is not stored)."""

    @property
    def duration(self) -> float | None:
        """Seconds from the first attempt's start to the end, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@overload
def timestamp(value: float) -> datetime: ...


@overload
def timestamp(value: float | None) -> datetime | None: ...


def timestamp(value: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime; a time no datetime reaches (an infinite wake
    time stored before fw refused such waits) reads as the first or last one."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        return _FIRST if value < 0 else _LAST


_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)
