"""``fw dev`` runs the app's instances and picks up edited workflow code without a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from framework.runtime.app import App
from tests.apps import write_app

GREETING = """
from framework import workflow, WorkflowContext

@workflow
async def greeting(ctx: WorkflowContext[str]) -> str:
    return await ctx.step.do("greet", lambda: "{word}, " + ctx.params)
"""


def _wait_for(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in:\n{log.read_text()[-3000:]}")


async def test_fw_dev_runs_instances_and_reloads_edited_code(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"greeting_workflow.py": GREETING.replace("{word}", "Hello")})
    log = tmp_path / "dev.log"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path.cwd()}"}
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "framework", "dev", "--app", str(root), "--port", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        _wait_for(log, "started on")
        app = App(root)
        app.install()
        first = await app.handle("greeting").create("ada")
        assert await first.result(timeout=30) == "Hello, ada"

        (root / "workflows" / "greeting_workflow.py").write_text(GREETING.replace("{word}", "Goodbye"))
        _wait_for(log, "workflows reloaded")
        second = await app.handle("greeting").create("ada")
        assert await second.result(timeout=30) == "Goodbye, ada"
        await app.close()
    finally:
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=30) == 0, log.read_text()[-3000:]
