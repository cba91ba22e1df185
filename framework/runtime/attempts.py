"""The attempt history of a step: when each attempt started, how long it ran, how it failed.

It is kept in the journal entry's details (``detail["attempts"]``), the last
``HISTORY_LIMIT`` attempts of the step; the entry's ``attempts`` counts them all. A step
whose first attempt succeeded stores none: its one attempt is the entry's own start and end.
An attempt cut short by its worker dying is not journaled (the next claim runs it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from framework.runtime.journal import detail_of
from framework.runtime.records import AttemptRecord, ErrorInfo, cut_text, timestamp
from framework.store.base import StepRow

HISTORY_LIMIT = 20
"""The most attempts of one step the journal keeps (the latest ones)."""
MESSAGE_LIMIT = 1_000
"""Characters of an attempt's error message kept in the history (the last error keeps
``records.MESSAGE_LIMIT``, with its traceback, as the step's ``error``)."""


@dataclass(frozen=True)
class Attempt:
    """The attempt of a step running now, and those journaled before it."""

    number: int
    started_at: float
    earlier: list[dict[str, Any]]

    @classmethod
    def begin(cls, entry: StepRow | None, now: float) -> Attempt:
        """The next attempt of the step journaled as ``entry`` (None: its first)."""
        earlier = _stored(detail_of(entry)) if entry is not None else []
        return cls((entry.attempts if entry else 0) + 1, now, earlier)

    def history(self, finished_at: float, error: ErrorInfo | None) -> list[dict[str, Any]] | None:
        """The history to journal once this attempt ended (None: a first attempt that
        succeeded, which needs none)."""
        if error is None and not self.earlier:
            return None
        this: dict[str, Any] = {
            "number": self.number,
            "started_at": self.started_at,
            "finished_at": finished_at,
        }
        if error is not None:
            this["error"] = {"name": error.name, "message": cut_text(error.message, MESSAGE_LIMIT)}
        return [*self.earlier, this][-HISTORY_LIMIT:]


def attempt_records(row: StepRow, detail: dict[str, Any]) -> list[AttemptRecord]:
    """The public attempt history of a journal entry (derived for a first-try success)."""
    stored = _stored(detail)
    if stored:
        return [_record(entry) for entry in stored]
    if row.kind in ("do", "rollback") and row.status == "complete" and row.attempts == 1:
        only = {"number": 1, "started_at": row.started_at, "finished_at": row.finished_at}
        return [_record(only)]
    return []


def _stored(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempts a journal entry's details hold."""
    stored: object = detail.get("attempts")
    if not isinstance(stored, list):
        return []
    entries = cast(list[object], stored)
    return [cast(dict[str, Any], entry) for entry in entries if isinstance(entry, dict)]


def _record(entry: dict[str, Any]) -> AttemptRecord:
    error = entry.get("error")
    return AttemptRecord(
        number=int(entry.get("number", 0)),
        started_at=timestamp(entry.get("started_at")),
        finished_at=timestamp(entry.get("finished_at")),
        error=ErrorInfo(name=error["name"], message=error["message"]) if error else None,
    )
