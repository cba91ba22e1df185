"""Retention: delete ended instances once they are older than their retention.

An instance's retention is, most specific first: its own (``create(..., retention=...)``),
its workflow's (``retention``, ``success_retention``, ``error_retention`` on its
``[[workflows]]`` table of fw.toml), then the app's (the same keys under ``[runtime]``). At
each level the outcome's key (``success_retention`` for ``complete``, ``error_retention`` for
``errored`` and ``terminated``) beats ``retention``; a level that sets neither leaves it to
the next. None at every level keeps the instance for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from framework.runtime.app import App
from framework.store.base import Store

OUTCOMES = {"success": ("complete",), "error": ("errored", "terminated")}
ENDED = tuple(status for statuses in OUTCOMES.values() for status in statuses)


class _RetentionKeys(Protocol):
    @property
    def retention(self) -> float | None: ...
    @property
    def success_retention(self) -> float | None: ...
    @property
    def error_retention(self) -> float | None: ...


@dataclass(frozen=True)
class Retention:
    """How long ended instances are kept, in seconds (None: for ever)."""

    success: float | None
    error: float | None

    @classmethod
    def of(cls, app: App, workflow: str | None = None) -> Retention:
        """The app's retention (``[runtime]``), or that of ``workflow``: its
        ``[[workflows]]`` table's keys, each falling back to the app's."""
        app_wide = cls._from(app.settings.runtime, cls(None, None))
        table = None if workflow is None else app.settings.workflow_settings(workflow)
        return app_wide if table is None else cls._from(table, app_wide)

    @classmethod
    def _from(cls, keys: _RetentionKeys, fallback: Retention) -> Retention:
        def pick(specific: float | None, outcome_default: float | None) -> float | None:
            if specific is not None:
                return specific
            return keys.retention if keys.retention is not None else outcome_default

        return cls(
            success=pick(keys.success_retention, fallback.success),
            error=pick(keys.error_retention, fallback.error),
        )

    @property
    def configured(self) -> bool:
        return self.success is not None or self.error is not None

    def keep(self, outcome: str) -> float | None:
        """Seconds to keep instances of ``outcome`` (``success`` or ``error``)."""
        return self.success if outcome == "success" else self.error


def workflows_with_retention(app: App) -> list[str]:
    """The workflows whose ``[[workflows]]`` table sets a retention of its own."""
    return [
        table.name
        for table in app.settings.workflows
        if (table.retention, table.success_retention, table.error_retention) != (None,) * 3
    ]


def retention_configured(app: App) -> bool:
    """Whether fw.toml sets any retention (app-wide or for a workflow)."""
    return Retention.of(app).configured or bool(workflows_with_retention(app))


@dataclass
class PruneReport:
    """How many instances ``prune`` deleted, by status."""

    deleted: dict[str, int] = field(default_factory=dict[str, int])

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def add(self, status: str, count: int) -> None:
        self.deleted[status] = self.deleted.get(status, 0) + count


PAUSE = 0.03
"""The pause after each batch. A batch stops deleting after ``PRUNE_SECONDS`` (20 ms), so
prune holds SQLite's write lock less than half the time; and a SQLite writer that found the
lock taken retries after growing sleeps (1, 2, 5, 10, 15, 20, 25 ms...), so a pause longer
than those lets a worker's waiting commit in before the next batch."""


async def prune(app: App, retention: Retention | None = None, *, batch: int = 500) -> PruneReport:
    """Delete ended instances older than their retention, up to ``batch`` at a time.

    ``retention`` (``fw prune --older-than``) replaces the app's and every workflow's;
    instances created with a retention of their own always keep theirs.

    Safe while workers run: only ended instances go (a restart racing with it either
    happens first and keeps the instance, or finds it gone), never a child whose parent
    still runs, and each batch is its own short transaction: it stops deleting after
    ``PRUNE_SECONDS`` and is followed by a pause of ``PAUSE``, so a worker's commits never
    wait long behind a prune of a large history (on SQLite, they wait for the lock).
    """
    store = await app.store()
    report = PruneReport()
    now = app.clock.now()
    own = [] if retention is not None else workflows_with_retention(app)
    for workflow in own:
        await _prune_by_outcome(store, report, Retention.of(app, workflow), now, batch, [workflow])
    await _prune_by_outcome(
        store, report, retention or Retention.of(app), now, batch, None, other_than=own
    )
    for status in ENDED:

        def own_batch(size: int, status: str = status) -> Awaitable[int]:
            return store.prune_own_retention([status], now, size)

        count = await _paced(own_batch, batch)
        if count:
            report.add(status, count)
    return report


async def _prune_by_outcome(
    store: Store,
    report: PruneReport,
    retention: Retention,
    now: float,
    batch: int,
    workflows: Sequence[str] | None,
    other_than: Sequence[str] = (),
) -> None:
    for outcome, statuses in OUTCOMES.items():
        keep = retention.keep(outcome)
        if keep is None:
            continue
        for status in statuses:

            def batch_of(size: int, status: str = status, keep: float = keep) -> Awaitable[int]:
                return store.prune(
                    [status], now - keep, size, workflows=workflows, other_than=other_than
                )

            report.add(status, await _paced(batch_of, batch))


async def _paced(delete: Callable[[int], Awaitable[int]], most: int) -> int:
    """Run ``delete(most)`` until a batch deletes nothing, pausing ``PAUSE`` after each (a
    batch may delete fewer than ``most`` while more match: it stops after ``PRUNE_SECONDS``)."""
    count = 0
    while deleted := await delete(most):
        count += deleted
        await asyncio.sleep(PAUSE)
    return count
