"""What waiting instances wait for, and ``fw instance retry-now``, through real `fw`
processes and a real worker, on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.apps import write_app
from tests.runtime.processes import start_worker, stop, wait_until_started

FLAKY = """
from pathlib import Path
from framework import workflow, WorkflowContext, Retries

def charge(marker: str) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise ConnectionError("bank down")
    return 42

@workflow
async def flaky(ctx: WorkflowContext[str]) -> int:
    ctx.log.info("order received", order="f-1")
    await ctx.step.do("charge", charge, ctx.params, retries=Retries(limit=3, delay="1 hour"))
    return await ctx.step.wait_for_event("approval", type="approval")
"""


def fw(app_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env.update(PYTHONPATH=f"{app_dir.parent}{os.pathsep}{Path.cwd()}", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "framework", *args, "--app", str(app_dir)],
        capture_output=True, text=True, env=env, timeout=20,
    )  # fmt: skip


def show(app_dir: Path, instance_id: str) -> dict[str, Any]:
    shown = fw(app_dir, "instance", "show", instance_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def wait_for_wait(app_dir: Path, instance_id: str, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data = show(app_dir, instance_id)
        if [w["kind"] for w in data["waiting_for"]] == [kind]:
            return data
        time.sleep(0.1)
    raise AssertionError(f"{instance_id} never waited for {kind}: {data}")


def test_lists_say_what_instances_wait_for_and_retry_now_runs_the_retry(
    tmp_path: Path, database_url: str
) -> None:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    app_dir = write_app(tmp_path, {"flaky_workflow.py": FLAKY}, settings=settings)
    marker = str(tmp_path / "failed-once")
    log = tmp_path / "worker.log"
    worker = start_worker(app_dir, log)
    wait_until_started(worker, log)
    try:
        started = fw(app_dir, "start", "flaky", "--params", json.dumps(marker), "--id", "f-1")
        assert started.returncode == 0, started.stderr
        data = wait_for_wait(app_dir, "f-1", "retry")
        [wait] = data["waiting_for"]
        assert (wait["step"], wait["error"]["message"]) == ("charge", "bank down")

        listed = fw(app_dir, "instances", "list")
        shown = fw(app_dir, "instance", "show", "f-1")
        retried = fw(app_dir, "instance", "retry-now", "f-1")
        wait_for_wait(app_dir, "f-1", "event")
        listed_event = fw(app_dir, "instances", "list", "--json")
        refused = fw(app_dir, "instance", "retry-now", "f-1")
        logs = fw(app_dir, "instance", "logs", "f-1")
        logs_json = fw(app_dir, "instance", "logs", "f-1", "--json")
    finally:
        assert stop(worker) == 0

    assert "retry of 'charge' at" in listed.stdout, listed.stdout
    assert "waiting for: retry of 'charge' at" in shown.stdout, shown.stdout
    assert retried.returncode == 0, retried.stderr
    assert "retry due now for f-1" in retried.stdout
    [item] = json.loads(listed_event.stdout)["instances"]
    assert [(w["kind"], w["event_type"]) for w in item["waiting_for"]] == [("event", "approval")]
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: instance 'f-1' waits for an event, not for a retry: it has no retry to run now"
    ], refused.stderr
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.count("\n") == 1 and 'info    order received order="f-1"' in logs.stdout
    [line] = json.loads(logs_json.stdout)
    assert (line["level"], line["message"], line["fields"]) == (
        "info",
        "order received",
        {"order": "f-1"},
    )
