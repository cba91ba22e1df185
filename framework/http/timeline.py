"""The step waterfall of Studio's instance page: where each step starts and how long it
lasts, relative to the instance's life so far."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from framework.runtime.durations import format_duration
from framework.runtime.records import AttemptRecord, InstanceStatus, StepRecord

KIND_LABELS = {
    "do": "step",
    "sleep": "sleep",
    "event": "wait",
    "child": "child",
    "rollback": "rollback",
    "patch": "patch",
}


@dataclass(frozen=True)
class AttemptRow:
    """One attempt of a step, under its step's row; placed as a ``TimelineRow`` is."""

    attempt: AttemptRecord
    offset: str
    duration: str
    left: float
    width: float


@dataclass(frozen=True)
class TimelineRow:
    """One step of the waterfall; ``left`` and ``width`` are percentages of the span."""

    step: StepRecord
    label: str
    kind_label: str
    offset: str
    duration: str
    left: float
    width: float
    open_ended: bool
    status: str
    """The step's status as shown: ``stopped`` for a wait the instance ended during."""
    child_status: str | None
    attempts: list[AttemptRow]
    """A row per attempt when the step took more than one (empty otherwise)."""


MAX_ROWS = 500
"""The most steps the waterfall shows (the latest ones): an instance of 20,000 steps made a
14 MB page that refreshed itself while the instance ran."""


@dataclass(frozen=True)
class Timeline:
    """The waterfall: its rows (the latest ``MAX_ROWS``) and the time it spans."""

    rows: list[TimelineRow]
    span: str
    hidden: int = 0
    """How many earlier steps are not shown."""


def build_timeline(
    status: InstanceStatus[object],
    steps: list[StepRecord],
    child_status: dict[str, str],
    now: datetime,
) -> Timeline:
    """The waterfall of ``steps`` from the instance's creation to its end (or ``now``)."""
    start = status.created_at
    end = _end_of(status, steps, now)
    span = max((end - start).total_seconds(), 0.001)
    shown = steps[-MAX_ROWS:]
    rows = [_row(step, start, span, end, child_status, status.terminal) for step in shown]
    return Timeline(rows, format_duration(span), hidden=len(steps) - len(shown))


def _end_of(status: InstanceStatus[object], steps: list[StepRecord], now: datetime) -> datetime:
    ends = [status.created_at]
    ends += [s.finished_at for s in steps if s.finished_at is not None]
    ends += [s.started_at for s in steps if s.started_at is not None]
    if not status.terminal:
        ends.append(now)
    else:
        ends.append(status.updated_at)
    return max(ends)


def _row(
    step: StepRecord,
    start: datetime,
    span: float,
    end: datetime,
    child_status: dict[str, str],
    ended: bool,
) -> TimelineRow:
    label = step.name if step.count == 1 else f"{step.name} #{step.count}"
    began = step.started_at or start
    open_ended = step.finished_at is None and not ended
    finished = step.finished_at or max(end, began)
    offset = (began - start).total_seconds()
    length = max((finished - began).total_seconds(), 0.0)
    left, width = _place(offset, length, span)
    return TimelineRow(
        step=step,
        label=label,
        kind_label=KIND_LABELS.get(step.kind, step.kind),
        offset=f"+{format_duration(max(offset, 0.0))}",
        duration=format_duration(length) if step.started_at else "",
        left=round(left, 2),
        width=round(width, 2),
        open_ended=open_ended,
        status="stopped" if ended and step.status == "waiting" else step.status,
        child_status=child_status.get(step.child_id) if step.child_id else None,
        attempts=_attempt_rows(step, start, span) if step.attempts > 1 else [],
    )


def _place(offset: float, length: float, span: float) -> tuple[float, float]:
    """Where a bar starts and how wide it is, as percentages of the span."""
    left = min(max(offset / span * 100, 0.0), 99.5)
    return left, min(max(length / span * 100, 0.5), 100.0 - left)


def _attempt_rows(step: StepRecord, start: datetime, span: float) -> list[AttemptRow]:
    rows: list[AttemptRow] = []
    for attempt in step.attempt_history:
        began = attempt.started_at or start
        offset = (began - start).total_seconds()
        length = attempt.duration or 0.0
        left, width = _place(offset, length, span)
        rows.append(
            AttemptRow(
                attempt=attempt,
                offset=f"+{format_duration(max(offset, 0.0))}",
                duration=format_duration(length) if attempt.duration is not None else "",
                left=round(left, 2),
                width=round(width, 2),
            )
        )
    return rows
