"""Why an instance has not ended yet, in words a user can act on.

``fw start --wait`` reports it while it waits, and ``result(timeout=)`` puts it in its
``ResultTimeoutError``: no worker has claimed the instance, a worker runs it, it is paused, or
it waits for an event, a timer, a retry or its children (read from its journal's waiting steps).
"""

from __future__ import annotations

from collections.abc import Sequence

from framework.runtime.durations import format_duration
from framework.runtime.journal import detail_of
from framework.runtime.records import ErrorInfo, WaitingFor, timestamp
from framework.store.base import InstanceRow, StepRow, Store

RUNS_A_WORKER = "is a worker running (`fw worker`, `fw dev` or `fw serve --worker`)?"
SHOWN_CHILDREN = 3
MESSAGE_LIMIT = 200
"""Characters of a failed attempt's message quoted in a reason."""


def waiting_for(steps: Sequence[StepRow]) -> list[WaitingFor]:
    """What the journal's waiting steps wait for, in journal order; children in one entry."""
    waits: list[WaitingFor] = []
    children: list[str] = []
    first_child: str | None = None
    for step in sorted(steps, key=lambda s: s.seq):
        if step.status != "waiting":
            continue
        detail = detail_of(step)
        until = timestamp(step.wake_at)
        if step.kind == "child":
            first_child = first_child or step.name
            children.append(str(detail.get("child_id", step.name)))
        elif step.kind == "event":
            event_type = str(detail.get("type", ""))
            waits.append(
                WaitingFor(kind="event", step=step.name, until=until, event_type=event_type)
            )
        elif step.kind == "sleep":
            waits.append(WaitingFor(kind="sleep", step=step.name, until=until))
        elif step.kind in ("do", "rollback"):
            error = _last_error(step)
            waits.append(WaitingFor(kind="retry", step=step.name, until=until, error=error))
    if first_child is not None:
        waits.append(WaitingFor(kind="children", step=first_child, children=children))
    return waits


async def waits_of(store: Store, rows: Sequence[InstanceRow]) -> dict[str, list[WaitingFor]]:
    """What each ``waiting`` instance of ``rows`` waits for (one read for them all)."""
    ids = [row.id for row in rows if row.status == "waiting"]
    steps: dict[str, list[StepRow]] = {}
    for step in await store.list_waiting_steps(ids) if ids else []:
        steps.setdefault(step.instance_id, []).append(step)
    return {instance_id: waiting_for(entries) for instance_id, entries in steps.items()}


def wait_label(wait: WaitingFor) -> str:
    """A short phrase for a list: ``retry of 'charge' at 2026-11-30 10:00:05 UTC``,
    ``event 'approval' until ...``, ``timer 'cool-off' until ...``, ``children 'a', 'b'``."""
    until = "" if wait.until is None else f" {_clock(wait.until.timestamp())}"
    if wait.kind == "retry":
        return f"retry of {wait.step!r} at{until or ' an unknown time'}"
    if wait.kind == "sleep":
        return f"timer {wait.step!r} until{until or ' an unknown time'}"
    if wait.kind == "event":
        return f"event {wait.event_type!r} " + (f"until{until}" if until else "(no timeout)")
    shown = ", ".join(repr(c) for c in wait.children[:SHOWN_CHILDREN])
    more = len(wait.children) - SHOWN_CHILDREN
    return f"children {shown}" + (f" and {more} more" if more > 0 else "")


def _last_error(step: StepRow) -> ErrorInfo | None:
    if not step.error:
        return None
    try:
        return ErrorInfo.model_validate_json(step.error)
    except ValueError:  # unreadable: the reason goes without it
        return None


def pending_reason(row: InstanceRow, steps: Sequence[StepRow], now: float) -> str:
    """Why instance ``row`` (with its journal ``steps``) has not ended at ``now``.

    A phrase to follow "instance 'o-1' is still waiting:", such as "it waits for an event of
    type 'approval' with no timeout; send one with `fw event send o-1 approval PAYLOAD`".
    """
    due = row.wake_at is None or row.wake_at <= now
    if row.status == "queued":
        if due:
            return (
                "no worker has claimed it yet: it was queued "
                f"{format_duration(now - row.updated_at)} ago ({_clock(row.updated_at)}); "
                f"{RUNS_A_WORKER}"
            )
        return f"it is queued to run again at {_at(row.wake_at, now)}"
    if row.status == "running":
        return f"a worker is running it ({row.lease_owner or 'its lease is ending'})"
    if row.status == "paused":
        return f"it is paused; resume it with `fw instance resume {row.id}`"
    if row.status != "waiting":
        return f"it is {row.status}"
    if row.wake_at is not None and due:
        return (
            f"it is due since {_at(row.wake_at, now)} but no worker has claimed it yet; "
            f"{RUNS_A_WORKER}"
        )
    waits = waiting_for(steps)
    if not waits:
        return "it waits" + ("" if row.wake_at is None else f" until {_at(row.wake_at, now)}")
    return "; ".join(_describe(wait, row.id, now) for wait in waits)


def _describe(wait: WaitingFor, instance_id: str, now: float) -> str:
    until = None if wait.until is None else wait.until.timestamp()
    if wait.kind == "event":
        deadline = "with no timeout" if until is None else f"until {_at(until, now)}"
        return (
            f"it waits for an event of type {wait.event_type!r} {deadline}; send one with "
            f"`fw event send {instance_id} {wait.event_type} PAYLOAD`"
        )
    if wait.kind == "sleep":
        return f"it sleeps in step {wait.step!r} until {_at(until, now)}"
    if wait.kind == "retry":
        return f"it retries step {wait.step!r} at {_at(until, now)}{_failed(wait.error)}"
    shown = ", ".join(repr(c) for c in wait.children[:SHOWN_CHILDREN])
    more = len(wait.children) - SHOWN_CHILDREN
    plural = "child" if len(wait.children) == 1 else "children"
    return f"it waits for its {plural} {shown}" + (f" and {more} more" if more > 0 else "")


def _failed(error: ErrorInfo | None) -> str:
    if error is None:
        return ""
    lines = error.message.strip().splitlines()
    message = lines[0] if lines else ""
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "…"
    attempt = f"attempt {error.attempts}" if error.attempts else "the last attempt"
    return f" after {attempt} failed: {error.name}: {message}"


def _at(when: float | None, now: float) -> str:
    """``2026-11-30 10:00:05 UTC (in 4.2 s)``."""
    if when is None:
        return "an unknown time"
    span = format_duration(abs(when - now))
    relative = f"in {span}" if when >= now else f"{span} ago"
    return f"{_clock(when)} ({relative})"


def _clock(when: float) -> str:
    return f"{timestamp(when):%Y-%m-%d %H:%M:%S} UTC"
