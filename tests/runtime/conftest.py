"""Runtime tests run every behaviour on both stores, through the generated handles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from framework.testing import WorkflowTestEnv, workflow_test_env
from tests.apps import write_app

MakeEnv = Callable[..., Awaitable[WorkflowTestEnv]]


@pytest.fixture
async def make_env(tmp_path: Path, database_url: str) -> AsyncIterator[MakeEnv]:
    """``await make_env({"x_workflow.py": source}, settings="...")``: an app on the store
    under test with an in-process worker and a skipping clock."""
    async with AsyncExitStack() as stack:

        async def make(
            workflows: dict[str, str], settings: str = "", concurrency: int = 50
        ) -> WorkflowTestEnv:
            root = write_app(tmp_path, workflows, settings)
            return await stack.enter_async_context(
                workflow_test_env(root, database=database_url, concurrency=concurrency)
            )

        yield make
