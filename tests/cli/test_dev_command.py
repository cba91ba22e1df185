"""``fw dev`` runs the app's instances and picks up edited workflow code without a restart."""

from __future__ import annotations

import asyncio
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


HOLIDAY = """
from framework import workflow, WorkflowContext

@workflow
async def holiday(ctx: WorkflowContext[None]) -> str:
    await ctx.step.do("book", lambda: "booked")
    await ctx.step.wait_for_event("confirm", type="confirm")
    return "done"
"""


async def test_fw_dev_keeps_the_last_good_code_and_warns_of_breaking_edits(tmp_path: Path) -> None:
    files = {"greeting_workflow.py": GREETING.replace("{word}", "Hello"), "holiday_workflow.py": HOLIDAY}
    root = write_app(tmp_path, files)
    log = tmp_path / "dev.log"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path.cwd()}", "COLUMNS": "300"}
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "framework", "dev", "--app", str(root), "--port", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    app = App(root)
    app.install()
    try:
        _wait_for(log, "started on")
        app.definition("greeting")  # this process creates instances with the code as it is now
        holiday = await app.handle("holiday").create(None, id="h-1")
        store = await app.store()
        deadline = time.monotonic() + 30
        while (await holiday.status()).status != "waiting":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.05)

        workflows = root / "workflows"
        broken = "import sys\n\nraise RuntimeError('half-saved')\n" + GREETING
        (workflows / "greeting_workflow.py").write_text(broken.replace("{word}", "Bye"))
        _wait_for(log, f"{root.name}/workflows/greeting_workflow.py:3: workflow 'greeting' "
                       "cannot be imported: RuntimeError: half-saved")
        _wait_for(log, "kept the last good workflows running")
        kept = await app.handle("greeting").create("ada")
        assert await kept.result(timeout=30) == "Hello, ada"

        (workflows / "greeting_workflow.py").write_text(GREETING.replace("{word}", "Hi"))
        source = workflows / "holiday_workflow.py"
        source.write_text(source.read_text().replace('"book"', '"reserve"'))
        _wait_for(log, "this edit breaks in-flight instance h-1 (holiday, waiting) at step 'book'")
        assert "workflows reloaded" in log.read_text()
        assert "fw.worker: instance h-1" not in log.read_text()  # the replay's run is silent
        assert (await store.get_instance("h-1")).status == "waiting"  # type: ignore[union-attr]
    finally:
        await app.close()
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=30) == 0, log.read_text()[-3000:]
