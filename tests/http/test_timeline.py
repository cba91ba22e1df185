"""The step waterfall: offsets and widths on the instance's timeline, open and stopped steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from framework.http.timeline import build_timeline
from framework.runtime.records import InstanceStatus, StepRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def instance(status: str, updated: float) -> InstanceStatus[Any]:
    return InstanceStatus[Any](
        id="i", workflow="w", status=status, created_at=T0, updated_at=at(updated)
    )


def step(
    name: str, kind: str, status: str, start: float, end: float | None, **extra: Any
) -> StepRecord:
    return StepRecord(
        name=name,
        count=1,
        kind=kind,
        status=status,
        attempts=1,
        started_at=at(start),
        finished_at=None if end is None else at(end),
        **extra,
    )


def test_bars_sit_on_the_instance_timeline() -> None:
    steps = [
        step("load", "do", "complete", 0, 1),
        step("cool-off", "sleep", "complete", 1, 9),
        step("ship", "do", "complete", 9, 10),
    ]

    timeline = build_timeline(instance("complete", 10), steps, {}, now=at(500))

    bars = [(row.left, row.width) for row in timeline.rows]
    assert bars == [(0.0, 10.0), (10.0, 80.0), (90.0, 10.0)]
    assert [row.offset for row in timeline.rows] == ["+0 ms", "+1 s", "+9 s"]
    assert [row.duration for row in timeline.rows] == ["1 s", "8 s", "1 s"]
    assert timeline.span == "10 s"
    assert not any(row.open_ended for row in timeline.rows)


def test_a_live_wait_runs_to_now_and_a_stopped_one_to_the_end() -> None:
    waiting = [
        step("prepare", "do", "complete", 0, 1),
        step("approval", "event", "waiting", 1, None, event_type="approval"),
    ]

    live = build_timeline(instance("waiting", 1), waiting, {}, now=at(4))
    ended = build_timeline(instance("terminated", 2), waiting, {}, now=at(400))

    assert live.rows[1].open_ended and live.rows[1].status == "waiting"
    assert (live.rows[1].left, live.rows[1].width) == (25.0, 75.0)
    assert ended.rows[1].status == "stopped" and not ended.rows[1].open_ended
    assert ended.span == "2 s"


def test_children_carry_their_current_status() -> None:
    steps = [step("tag", "child", "waiting", 0, None, child_id="p:tag:1", child_workflow="tag")]

    timeline = build_timeline(instance("waiting", 0), steps, {"p:tag:1": "running"}, now=at(1))

    assert timeline.rows[0].child_status == "running"
    assert timeline.rows[0].kind_label == "child"
