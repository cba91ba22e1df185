"""`fw start` says when an id existed and whether its params differ, and refuses an id of
another workflow: real `fw` processes on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apps import write_app

ANYTHING = """
from typing import Any
from framework import workflow, WorkflowContext

@workflow
async def anything(ctx: WorkflowContext[Any]) -> Any:
    return await ctx.step.wait_for_event("go", type="go")
"""

OTHER = """
from framework import workflow, WorkflowContext

@workflow
async def other(ctx: WorkflowContext[int]) -> int:
    return ctx.params
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_app(tmp_path, {"anything_workflow.py": ANYTHING, "other_workflow.py": OTHER})


def fw(app_dir: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FW_DATABASE_URL": database_url,
        "PYTHONPATH": f"{app_dir.parent}{os.pathsep}{Path.cwd()}",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "framework", *args, "--app", str(app_dir)],
        capture_output=True, text=True, env=env, timeout=60,
    )


def test_start_says_when_the_id_existed_and_whether_the_params_differ(
    app_dir: Path, database_url: str
) -> None:
    first = fw(app_dir, database_url, "start", "other", "--id", "o-1", "--params", "1", "--json")
    same = fw(app_dir, database_url, "start", "other", "--id", "o-1", "--params", "1", "--json")
    differ = fw(app_dir, database_url, "start", "other", "--id", "o-1", "--params", "2")

    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["created"], json.loads(first.stdout)["params_match"]) == (
        True, True,
    )
    assert (json.loads(same.stdout)["created"], json.loads(same.stdout)["params_match"]) == (
        False, True,
    )
    assert differ.returncode == 0, differ.stderr
    assert "o-1 existed already: not started again; its stored params differ from --params" in (
        differ.stdout
    )


def test_start_refuses_an_id_of_another_workflow(app_dir: Path, database_url: str) -> None:
    fw(app_dir, database_url, "start", "anything", "--id", "a-1")

    done = fw(app_dir, database_url, "start", "other", "--id", "a-1", "--params", "1")

    assert done.returncode == 1
    assert "id 'a-1' already belongs to an instance of workflow 'anything'; nothing was stored" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
