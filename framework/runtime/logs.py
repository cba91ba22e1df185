"""The ``ctx.log`` lines of an instance, kept in the store beside its journal.

Each line a workflow body or a step logs (at any level) is journaled with the run's next
commit, tagged with the step it was logged in (name and occurrence), and shown by Studio, the
API (``GET /api/instances/{id}/logs``), ``Instance.logs()`` and ``fw instance logs``. A store
keeps the last ``LOG_LIMIT`` lines of each instance and deletes them with it (``fw prune``).
Lines are silent during replay, so each is kept once; lines of a run whose worker died before
its next commit are lost with that run's unjournaled work.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from framework.runtime.journal import StepKey
from framework.runtime.records import LogRecord, cut_text, timestamp
from framework.store.base import LogRow

MESSAGE_LIMIT = 2_000
"""Characters of a line's message kept."""
FIELDS_LIMIT = 4_000
"""Characters of a line's fields, as JSON, kept (beyond it, the fields are cut to a note)."""
LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
}


def log_row(
    instance_id: str,
    run: str,
    line: int,
    at: float,
    level: int,
    message: str,
    fields: dict[str, Any],
    step: StepKey | None,
) -> LogRow:
    """The stored form of one line (its message and fields cut to their limits)."""
    return LogRow(
        instance_id=instance_id,
        run=run,
        line=line,
        at=at,
        level=LEVELS.get(level, logging.getLevelName(level).lower()),
        message=cut_text(str(message), MESSAGE_LIMIT),
        step=None if step is None else step.name,
        step_count=None if step is None else step.count,
        fields=_fields_json(fields),
    )


def process_log_line(message: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The message and fields of a ``ctx.log`` line for the process's log, cut to the limits
    of the stored copy: a workflow logging megabytes a line must not fill the worker's log."""
    text = cut_text(str(message), MESSAGE_LIMIT)
    if not fields:
        return text, fields
    whole = json.dumps(fields, default=repr, ensure_ascii=False)
    if len(whole) <= FIELDS_LIMIT:
        return text, fields
    return text, {"fields_cut": cut_text(whole, FIELDS_LIMIT - 20)}


def _fields_json(fields: dict[str, Any]) -> str | None:
    if not fields:
        return None
    text = json.dumps(fields, default=repr, ensure_ascii=False)
    if len(text) <= FIELDS_LIMIT:
        return text
    return json.dumps({"cut": cut_text(text, FIELDS_LIMIT - 20)})


def log_record(row: LogRow) -> LogRecord:
    """The public form of a stored line."""
    fields: dict[str, Any] = {}
    if row.fields:
        try:
            loaded = json.loads(row.fields)
        except ValueError:
            loaded = {"unreadable": row.fields}
        fields = cast(dict[str, Any], loaded) if isinstance(loaded, dict) else {"value": loaded}
    return LogRecord(
        at=timestamp(row.at),
        level=row.level,
        message=row.message,
        step=row.step,
        step_count=row.step_count,
        fields=fields,
    )
