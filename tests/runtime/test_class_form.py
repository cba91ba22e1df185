"""Workflows in class form, as in Cloudflare Workflows."""

from __future__ import annotations

from tests.runtime.conftest import MakeEnv

MIGRATION = """
from pydantic import BaseModel
from framework import WorkflowEntrypoint, WorkflowEvent, WorkflowStep

class MigrationParams(BaseModel):
    source_id: str

class MigrationResult(BaseModel):
    migrated: int
    instance: str

def fetch_legacy_data(source_id: str) -> list[str]:
    return [f"{source_id}-{n}" for n in range(3)]

class MigrationWorkflow(WorkflowEntrypoint[MigrationParams, MigrationResult]):
    async def run(self, event: WorkflowEvent[MigrationParams], step: WorkflowStep) -> MigrationResult:
        data = await step.do("fetch-data", fetch_legacy_data, event.payload.source_id)
        await step.sleep("settle", "1 minute")
        self.ctx.log.info("migrated", rows=len(data))
        return MigrationResult(migrated=len(data), instance=event.instance_id)
"""


async def test_class_form_runs_with_typed_event_and_output(make_env: MakeEnv) -> None:
    env = await make_env({"migration_workflow.py": MIGRATION})

    output = await env.run("migration", {"source_id": "legacy"}, id="m-1")

    assert type(output).__name__ == "MigrationResult"
    assert (output.migrated, output.instance) == (3, "m-1")
