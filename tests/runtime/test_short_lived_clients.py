"""Short-lived clients exit promptly on both stores: a script that uses the generated package
(async, under ``asyncio.run``, or through the sync facade) and never closes anything."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.apps import write_app
from tests.runtime.processes import REPO

RUNS = 10
RUN_TIMEOUT = 20.0
"""Seconds one run of a client script may take at most (it takes well under one)."""

GREETING = """
from framework import workflow, WorkflowContext

@workflow
async def greeting(ctx: WorkflowContext[str]) -> str:
    return await ctx.step.do("greet", lambda: f"hello {ctx.params}")
"""

ASYNC_CLIENT = """
import asyncio

from {package}._generated import workflows


async def main() -> None:
    print((await (await workflows.get("greeting").get("g-1")).status()).status)


asyncio.run(main())
"""

SYNC_CLIENT = """
from {package}._generated import workflows

print(workflows.get("greeting").sync.get("g-1").status().status)
"""


@pytest.mark.parametrize("client", [ASYNC_CLIENT, SYNC_CLIENT], ids=["async", "sync"])
def test_a_client_script_exits_promptly_every_time(
    tmp_path: Path, database_url: str, client: str
) -> None:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    app_dir = write_app(tmp_path, {"greeting_workflow.py": GREETING}, settings=settings)
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(client.format(package=app_dir.name)))
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env["PYTHONPATH"] = f"{app_dir.parent}{os.pathsep}{REPO}"
    started = subprocess.run(
        [sys.executable, "-m", "framework", "start", "greeting", "--params", '"ada"',
         "--id", "g-1", "--app", str(app_dir)],
        capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT,
    )
    assert started.returncode == 0, started.stderr
    for run in range(RUNS):
        try:
            done = subprocess.run(
                [sys.executable, str(script)],
                capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {run + 1}: the client script still running after {RUN_TIMEOUT} s")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "queued\n"
        assert done.stderr == ""  # no "Task was destroyed but it is pending!", no warnings
