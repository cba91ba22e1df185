"""``fw workers`` and ``fw doctor`` against real ``fw worker`` processes, on both stores: two
idle workers are two live workers; one stopped cleanly leaves the registry; one SIGKILLed
shows dead, and its instances go to the other worker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from framework.runtime.app import App
from framework.runtime.liveness import worker_statuses
from tests.apps import write_app
from tests.runtime.processes import kill, start_worker, stop, wait_until_started

NAP = """
import asyncio
from framework import workflow, WorkflowContext

async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds

@workflow
async def naps(ctx: WorkflowContext[float]) -> float:
    return await ctx.step.do("nap", nap, ctx.params)
"""
ONE_SHOT_TIMEOUT = 20.0
"""Seconds a one-shot command may take at most (it takes well under one; a hang at exit,
such as a connection pool left open on PostgreSQL, runs into this)."""


def fw(app_dir: Path, *args: str, columns: int = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env.update(PYTHONPATH=f"{app_dir.parent}{os.pathsep}{Path.cwd()}", COLUMNS=str(columns))
    return subprocess.run(
        [sys.executable, "-m", "framework", *args, "--app", str(app_dir)],
        capture_output=True, text=True, env=env, timeout=ONE_SHOT_TIMEOUT,
    )  # fmt: skip


def workers_json(app_dir: Path) -> dict[str, Any]:
    done = fw(app_dir, "workers", "--json")
    assert done.returncode == 0, done.stderr
    return {w["pid"]: w for w in json.loads(done.stdout)["workers"]}


def wait_for(
    app_dir: Path, check: Callable[[dict[int, Any]], bool], what: str, timeout: float = 30
) -> dict[int, Any]:
    """Poll the registry in this process (quicker than a command each time) until ``check``
    holds of {pid: status as JSON}."""

    async def poll() -> dict[int, Any]:
        app = App(app_dir)
        try:
            deadline = time.monotonic() + timeout
            while True:
                found = {w.pid: w.to_json() for w in await worker_statuses(app)}
                if check(found):
                    return found
                assert time.monotonic() < deadline, f"{what}: {found}"
                await asyncio.sleep(0.05)
        finally:
            await app.close()

    return asyncio.run(poll())


async def start_nap(root: Path) -> None:
    app = App(root)
    previous = app.install()
    try:
        await app.handle("naps").create(60.0, id="napping")
    finally:
        app.uninstall(previous)
        await app.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_fw_workers_and_doctor_follow_real_worker_processes(
    tmp_path: Path, database_url: str
) -> None:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    root = write_app(tmp_path, {"naps_workflow.py": NAP}, settings=settings)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first, second = (start_worker(root, log, concurrency=4) for log in logs)
    try:
        for process, log in zip((first, second), logs, strict=True):
            wait_until_started(process, log)
        found = workers_json(root)  # registered before they say they started
        assert set(found) == {first.pid, second.pid}
        assert {w["state"] for w in found.values()} == {"alive"}
        assert all(w["concurrency"] == 4 and w["held"] == 0 for w in found.values())

        doctor = fw(root, "doctor", "--json")
        report = json.loads(doctor.stdout)
        assert [w["state"] for w in report["workers"]] == ["alive", "alive"], report
        human = fw(root, "doctor", columns=40).stdout
        assert "2 alive" in human
        table = fw(root, "workers", columns=40).stdout  # narrow: ids are never cut
        for w in found.values():
            assert w["id"] in table
        assert "2 alive" in table

        assert stop(first) == 0
        found = wait_for(root, lambda f: set(f) == {second.pid}, "the stopped worker stayed")

        asyncio.run(start_nap(root))
        wait_for(root, lambda f: f[second.pid]["instances"] == ["napping"], "napping not held")
        kill(second)
        found = wait_for(root, lambda f: f[second.pid]["state"] == "dead", "not seen dead")
        assert found[second.pid]["held"] == 1  # still its lease until another worker claims
        assert "dead" in fw(root, "workers").stdout
    finally:
        for process in (first, second):
            if process.poll() is None:
                kill(process)
