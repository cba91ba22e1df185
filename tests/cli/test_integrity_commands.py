"""`fw start` and `fw event send` refuse JSON fw could not read back, `fw start` says when an
id existed (or belongs to another workflow), and `fw instance show` renders rows stored before
that check: real `fw` processes on both stores."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from framework.store import open_store
from framework.store.base import NewInstance
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

DEEP = "[" * 250 + "]" * 250


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


def test_json_that_could_not_be_read_back_is_refused_in_one_line(
    app_dir: Path, database_url: str
) -> None:
    started = fw(app_dir, database_url, "start", "anything", "--id", "a-1", "--json")
    assert started.returncode == 0, started.stderr
    cases = {
        ("start", "anything", "--params", DEEP): "the params of workflow 'anything' is JSON "
        "nested 250 levels deep, over the limit of 200 levels",
        ("start", "anything", "--params", '{"x": NaN}'): "non-finite number (NaN or infinity) at x",
        ("start", "anything", "--params", "[" * 50_000): "--params is nested too deeply to read",
        ("event", "send", "a-1", "go", DEEP): "the payload of event 'go' is JSON nested 250",
        ("event", "send", "a-1", "go", "[-Infinity]"): "non-finite number (NaN or infinity) at [0]",
    }
    for args, message in cases.items():
        done = fw(app_dir, database_url, *args)
        assert done.returncode == 1, (args[:3], done.stdout, done.stderr)
        assert message in done.stderr, (args[:3], done.stderr)
        assert "Traceback" not in done.stderr
    listed = json.loads(fw(app_dir, database_url, "instances", "list", "--json").stdout)
    assert [(i["id"], i["workflow"], i["status"]) for i in listed["instances"]] == [
        ("a-1", "anything", "queued")
    ]


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


def test_show_and_list_render_a_row_stored_before_the_check(
    app_dir: Path, database_url: str
) -> None:
    async def store_old_row() -> None:
        store = open_store(database_url)
        await store.open()
        try:
            await store.create_instances([NewInstance("old", "anything", DEEP, 1.0)])
        finally:
            await store.close()

    asyncio.run(store_old_row())

    shown = fw(app_dir, database_url, "instance", "show", "old")
    as_json = fw(app_dir, database_url, "instance", "show", "old", "--json")
    listed = fw(app_dir, database_url, "instances", "list", "--json")

    assert shown.returncode == 0, shown.stderr
    assert "params unreadable: the stored JSON is nested deeper than 200 levels" in shown.stdout
    data = json.loads(as_json.stdout)
    assert data["params"] is None and "nested deeper" in data["unreadable"]["params"]
    assert [i["id"] for i in json.loads(listed.stdout)["instances"]] == ["old"]


def test_start_refuses_an_id_of_another_workflow(app_dir: Path, database_url: str) -> None:
    fw(app_dir, database_url, "start", "anything", "--id", "a-1")

    done = fw(app_dir, database_url, "start", "other", "--id", "a-1", "--params", "1")

    assert done.returncode == 1
    assert "id 'a-1' already belongs to an instance of workflow 'anything'; nothing was stored" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
