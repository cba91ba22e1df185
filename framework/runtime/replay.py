"""Export an instance's journal, and replay it against the current code: a test before deploy.

``fw instance export ID`` writes the instance and its journal as JSON; ``fw replay FILE``
(or ``replay_export`` in a pytest test) runs the workflow body against that journal in a
scratch store, executing nothing: it stops at the first step the journal does not hold,
and reports a ``NonDeterminismError`` when the code asks for steps the journal disagrees
with.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import tempfile
import typing
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from framework.errors import InstanceNotFoundError, NonDeterminismError
from framework.runtime.app import App
from framework.store.base import (
    TERMINAL,
    Claim,
    InstanceRow,
    NewInstance,
    StepRow,
    Store,
    Transition,
)
from framework.store.sqlite import SQLiteStore

EXPORT_FORMAT = "fw.instance/1"

_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("fw_replaying", default=False)


class _QuietReplays(logging.Filter):
    """Drop the worker's log lines about a replay's scratch run (its "held errored" is a
    finding of the report, not news of a real instance), leaving real runs' lines alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _replaying.get()


logging.getLogger("fw.worker").addFilter(_QuietReplays())


class ReplayReport(BaseModel):
    """What replaying a journal against the current code found."""

    instance_id: str
    workflow: str
    recorded_version: str | None
    current_version: str
    journaled_steps: int
    replayed_steps: int
    stopped_at: str | None = None
    """The first step the journal does not hold (where a worker would go on), if reached."""
    nondeterminism: str | None = None
    diverged_at: str | None = None
    """The journaled step where the code parts from the journal, on non-determinism."""

    @property
    def ok(self) -> bool:
        """Whether the current code replays the journal without a non-determinism error."""
        return self.nondeterminism is None


async def export_instance(app: App, instance_id: str) -> dict[str, Any]:
    """The instance ``instance_id`` and its journal as JSON-ready data."""
    store = await app.store()
    row = await store.get_instance(instance_id)
    if row is None:
        raise InstanceNotFoundError(instance_id)
    steps = await store.list_steps(instance_id)
    return {
        "format": EXPORT_FORMAT,
        "instance": dataclasses.asdict(row),
        "steps": [dataclasses.asdict(step) for step in steps],
    }


async def replay_export(app: App, data: dict[str, Any]) -> ReplayReport:
    """Replay an exported journal against ``app``'s current code, running no step.

    Raises:
        ValueError: ``data`` is not an export ``export_instance`` wrote (the message says
            which field is missing or wrong).
    """
    row, steps = read_export(data)
    async with scratch_store() as store:
        return await replay_journal(app, store, row, steps)


_EXPORTED_INSTANCE: TypeAdapter[InstanceRow] = TypeAdapter(InstanceRow)
_EXPORTED_STEPS: TypeAdapter[list[StepRow]] = TypeAdapter(list[StepRow])


def read_export(data: object) -> tuple[InstanceRow, list[StepRow]]:
    """The instance and journal of an export, checked field by field.

    Raises:
        ValueError: not an export of this format, or a field missing or of the wrong type.
    """
    fields = typing.cast(dict[str, Any], data) if isinstance(data, dict) else {}
    if (found := fields.get("format")) != EXPORT_FORMAT:
        raise ValueError(
            f"not an fw instance export (format {found!r}, expected {EXPORT_FORMAT!r}): "
            "write one with `fw instance export ID`"
        )
    try:
        row = _EXPORTED_INSTANCE.validate_python(fields.get("instance"))
        steps = _EXPORTED_STEPS.validate_python(fields.get("steps"))
    except ValidationError as exc:
        section = "instance" if exc.title == InstanceRow.__name__ else "steps"
        problems = "; ".join(
            f"{'.'.join(map(str, [section, *e['loc']]))}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise ValueError(f"the export is not readable: {problems}") from None
    return row, steps


@contextlib.asynccontextmanager
async def scratch_store() -> AsyncGenerator[SQLiteStore]:
    """A throwaway SQLite store to replay journals in (one serves many replays)."""
    with tempfile.TemporaryDirectory(prefix="fw-replay-") as scratch:
        store = SQLiteStore(f"sqlite:///{Path(scratch) / 'replay.db'}")
        await store.open()
        try:
            yield store
        finally:
            await store.close()


async def replay_journal(
    app: App, store: Store, row: InstanceRow, steps: list[StepRow]
) -> ReplayReport:
    """Replay instance ``row``'s journal ``steps`` against ``app``'s current code in
    ``store`` (a scratch store, see ``scratch_store``), running no step."""
    from framework.runtime.execution import InstanceRun

    await store.create_instances(
        [NewInstance(row.id, row.workflow, row.params, row.created_at, row.version, row.parent_id)]
    )
    (claim,) = await store.claim("replay", 1, row.created_at + 1, float("inf"))
    await store.apply(Transition(row.id, claim.token, steps=steps), row.created_at)
    held = dataclasses.replace(claim.instance, generation=row.generation)
    run = InstanceRun(app, store, Claim(held, steps, claim.token, False), replay_only=True)
    quiet = _replaying.set(True)
    try:
        await run.execute()
    finally:
        _replaying.reset(quiet)
    left = await store.get_instance(row.id)
    if left is not None and left.status not in TERMINAL:  # never claimed by the next replay
        await store.terminate(row.id, row.created_at)
    return ReplayReport(
        instance_id=row.id,
        workflow=row.workflow,
        recorded_version=row.version,
        current_version=app.version_of(row.workflow),
        journaled_steps=len(steps),
        replayed_steps=len(steps) - len(run.journal.unreplayed()),
        stopped_at=run.frontier,
        nondeterminism=str(run.fatal) if run.fatal is not None else None,
        diverged_at=run.fatal.step if isinstance(run.fatal, NonDeterminismError) else None,
    )
