"""A data migration in class form, as in Cloudflare Workflows."""

from __future__ import annotations

from dataclasses import dataclass

from framework import WorkflowEntrypoint, WorkflowEvent, WorkflowStep


@dataclass
class MigrationParams:
    source_id: str
    batches: int = 3


@dataclass
class MigrationResult:
    migrated: int


def fetch_batch(source_id: str, batch: int) -> list[str]:
    return [f"{source_id}-{batch}-{row}" for row in range(10)]


class MigrationWorkflow(WorkflowEntrypoint[MigrationParams, MigrationResult]):
    async def run(
        self, event: WorkflowEvent[MigrationParams], step: WorkflowStep
    ) -> MigrationResult:
        migrated = 0
        for batch in range(event.payload.batches):
            rows = await step.do("fetch-batch", fetch_batch, event.payload.source_id, batch)
            migrated += len(rows)
            await step.sleep("throttle", "1 second")
        self.ctx.log.info("migrated", rows=migrated)
        return MigrationResult(migrated=migrated)
