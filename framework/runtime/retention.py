"""Retention: delete ended instances once they are older than their outcome's retention."""

from __future__ import annotations

from dataclasses import dataclass, field

from framework.runtime.app import App

OUTCOMES = {"success": ("complete",), "error": ("errored", "terminated")}


@dataclass(frozen=True)
class Retention:
    """How long ended instances are kept, in seconds (None: for ever)."""

    success: float | None
    error: float | None

    @classmethod
    def of(cls, app: App) -> Retention:
        """``[runtime] success_retention`` / ``error_retention``, each defaulting to
        ``[runtime] retention``."""
        runtime = app.settings.runtime
        return cls(
            success=runtime.success_retention
            if runtime.success_retention is not None
            else runtime.retention,
            error=runtime.error_retention
            if runtime.error_retention is not None
            else runtime.retention,
        )

    @property
    def configured(self) -> bool:
        return self.success is not None or self.error is not None


@dataclass
class PruneReport:
    """How many instances ``prune`` deleted, by status."""

    deleted: dict[str, int] = field(default_factory=dict[str, int])

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


async def prune(app: App, retention: Retention | None = None, *, batch: int = 500) -> PruneReport:
    """Delete ended instances older than the retention, ``batch`` at a time.

    Safe while workers run: only ended instances go (a restart racing with it either
    happens first and keeps the instance, or finds it gone), never a child whose parent
    still runs, and each batch is its own short transaction.
    """
    retention = retention or Retention.of(app)
    store = await app.store()
    report = PruneReport()
    now = app.clock.now()
    for outcome, statuses in OUTCOMES.items():
        keep = retention.success if outcome == "success" else retention.error
        if keep is None:
            continue
        for status in statuses:
            count = 0
            while (deleted := await store.prune([status], now - keep, batch)) > 0:
                count += deleted
            report.deleted[status] = count
    return report
