"""Deploy safety: would the code as it is now break the instances in flight?

Every instance that has not ended and has journaled steps is replayed against the current
code in a scratch store (``replay_journal``, running no step). One whose journal the code no
longer follows would stop with a ``NonDeterminismError`` after a deploy; one whose workflow
is gone or fails to import could not run at all. ``fw check --in-flight`` lists them, and
``fw dev`` warns on each save.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

from pydantic import BaseModel

from framework.errors import WorkflowImportError
from framework.runtime.app import App
from framework.runtime.replay import replay_journal, scratch_store
from framework.store.base import InstanceRow, Store

IN_FLIGHT = ("queued", "running", "waiting", "paused")
"""The statuses of instances that may still run code."""
PAGE = 500

PATCH_HINT = (
    "keep the old path for running instances behind `if ctx.patched(\"<change-id>\"):` "
    "(docs/operations.md), or let them finish on the old code before deploying"
)


class BrokenInstance(BaseModel):
    """An in-flight instance the current code would not run on."""

    instance_id: str
    workflow: str
    status: str
    step: str | None
    """The journaled step where replay first disagrees with the code, when one does."""
    problem: str


class InFlightReport(BaseModel):
    """What replaying every in-flight journal against the current code found."""

    checked: int
    """In-flight instances with a journal, replayed."""
    broken: list[BrokenInstance]

    @property
    def ok(self) -> bool:
        """Whether the current code runs every in-flight instance on."""
        return not self.broken


async def check_in_flight(app: App, workflows: Collection[str] = ()) -> InFlightReport:
    """Replay each in-flight instance (of ``workflows``, else all) against ``app``'s code.

    Raises:
        StoreError: the store cannot be read.
    """
    store = await app.store()
    checked = 0
    broken: list[BrokenInstance] = []
    async with scratch_store() as scratch:
        async for row in _in_flight(store, workflows):
            steps = await store.list_steps(row.id)
            if not steps:  # nothing journaled: any code starts it afresh
                continue
            checked += 1
            problem = _unloadable(app, row)
            step: str | None = None
            if problem is None:
                report = await replay_journal(app, scratch, row, steps)
                problem = report.nondeterminism
                step = report.diverged_at
            if problem is not None:
                broken.append(BrokenInstance(
                    instance_id=row.id, workflow=row.workflow, status=row.status,
                    step=step, problem=problem,
                ))
    return InFlightReport(checked=checked, broken=broken)


def _unloadable(app: App, row: InstanceRow) -> str | None:
    """Why ``row``'s workflow cannot be loaded at all (gone, or failing to import), if so."""
    if row.workflow not in app.entrypoints:
        return f"workflow {row.workflow!r} is no longer declared: its instances cannot run"
    try:
        app.definition(row.workflow)
    except WorkflowImportError as exc:
        return str(exc)
    return None


async def _in_flight(store: Store, workflows: Collection[str]) -> AsyncIterator[InstanceRow]:
    for status in IN_FLIGHT:
        for workflow in workflows or (None,):
            cursor: str | None = None
            while True:
                page = await store.list_instances(
                    workflow=workflow, status=status, limit=PAGE, cursor=cursor
                )
                for row in page.instances:
                    yield row
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
