"""The step waterfall of Studio's instance page: where each step starts and how long it
lasts, relative to the instance's life so far."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from framework.runtime.records import InstanceStatus, StepRecord

KIND_LABELS = {
    "do": "step",
    "sleep": "sleep",
    "event": "wait",
    "child": "child",
    "rollback": "rollback",
    "patch": "patch",
}


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


@dataclass(frozen=True)
class Timeline:
    """The waterfall: its rows and the time it spans."""

    rows: list[TimelineRow]
    span: str


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
    rows = [_row(step, start, span, end, child_status, status.terminal) for step in steps]
    return Timeline(rows, short_duration(span))


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
    left = min(max(offset / span * 100, 0.0), 99.5)
    width = min(max(length / span * 100, 0.5), 100.0 - left)
    return TimelineRow(
        step=step,
        label=label,
        kind_label=KIND_LABELS.get(step.kind, step.kind),
        offset=f"+{short_duration(max(offset, 0.0))}",
        duration=short_duration(length) if step.started_at else "",
        left=round(left, 2),
        width=round(width, 2),
        open_ended=open_ended,
        status="stopped" if ended and step.status == "waiting" else step.status,
        child_status=child_status.get(step.child_id) if step.child_id else None,
    )


def short_duration(seconds: float) -> str:
    """A compact duration: ``250 ms``, ``4.2 s``, ``3m 05s``, ``2h 10m``, ``7d 0h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"
