"""``fw worker --metrics-port``: a real worker process serves its own ``/metrics``, counting
what it ran, and the store's gauges; with ``FW_API_TOKEN`` set a scrape must send it."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from framework.runtime.app import App
from tests.apps import write_app
from tests.runtime.processes import REPO, stop, worker_command

ECHO = """
from typing import Any
from framework import workflow, WorkflowContext

@workflow
async def echo(ctx: WorkflowContext[Any]) -> Any:
    await ctx.step.sleep("nap", "200 ms")
    return await ctx.step.do("echo", lambda: ctx.params)
"""
ADDRESS = re.compile(r"metrics at (http://\S+/metrics)")
TOKEN = "m" * 40
READER = "r" * 40


def wait_for_address(log: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ADDRESS.search(log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no metrics address logged:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
async def test_a_worker_process_serves_its_metrics(tmp_path: Path, database_url: str) -> None:
    root = write_app(tmp_path, {"echo_workflow.py": ECHO})
    log = tmp_path / "worker.log"
    env = {"FW_DATABASE_URL": database_url, "FW_API_TOKEN": TOKEN, "FW_API_READ_TOKEN": READER}
    environ = {**os.environ, **env, "PYTHONPATH": f"{root.parent}{os.pathsep}{REPO}"}
    command = [*worker_command(root), "--metrics-port", "0"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ)
    try:
        url = wait_for_address(log)
        app = App(root, database=database_url)
        try:
            instance = await app.handle("echo").create(params={"n": 1})
            assert await instance.result(timeout=30) == {"n": 1}
        finally:
            await app.close()
        async with httpx.AsyncClient() as client:
            refused = await client.get(url)
            scraped = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
            read = await client.get(url, headers={"Authorization": f"Bearer {READER}"})
    finally:
        assert stop(process) == 0, log.read_text()[-3000:]

    assert refused.status_code == 401
    assert scraped.status_code == 200
    assert read.status_code == 200  # the read-only token reads metrics too
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    complete = (("outcome", "complete"), ("workflow", "echo"))
    assert found[("fw_instances_ended_total", complete)] == 1  # the worker counted its run
    assert found[("fw_step_duration_seconds_count", complete)] == 1
    assert found[("fw_timer_lag_seconds_count", (("workflow", "echo"),))] == 1
    # Started by this test's process, not the worker: the worker counts none.
    assert ("fw_instances_started_total", (("workflow", "echo"),)) not in found
    assert found[("fw_instances", (("status", "complete"), ("workflow", "echo")))] == 1
    assert found[("fw_workers_alive", ())] >= 1
