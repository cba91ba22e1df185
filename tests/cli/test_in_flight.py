"""`fw check --in-flight`: the instances in flight in the configured store that the code as
it is now would break, found by replaying their journals (both stores, real `fw` runs)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from framework.testing import workflow_test_env
from tests.apps import write_app

HOLIDAY = """
from framework import workflow, WorkflowContext

@workflow
async def holiday(ctx: WorkflowContext[None]) -> str:
    await ctx.step.do("book", lambda: "booked")
    await ctx.step.wait_for_event("confirm", type="confirm")
    return "done"
"""

QUICK = """
from framework import workflow, WorkflowContext

@workflow
async def quick(ctx: WorkflowContext[None]) -> str:
    return await ctx.step.do("only", lambda: "done")
"""


def fw(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env.update(PYTHONPATH=f"{root.parent}{os.pathsep}{Path.cwd()}", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "framework", *args, "--app", str(root)],
        capture_output=True, text=True, env=env, timeout=60,
    )


async def until_waiting(env: object, instance_id: str) -> None:
    store = await env.app.store()  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (row := await store.get_instance(instance_id)) is None or row.status != "waiting":
        assert loop.time() < deadline, row
        await asyncio.sleep(0.02)


async def test_check_in_flight_lists_what_a_change_would_break(
    tmp_path: Path, database_url: str
) -> None:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    root = write_app(tmp_path, {"holiday_workflow.py": HOLIDAY, "quick_workflow.py": QUICK},
                     settings=settings)
    async with workflow_test_env(root, database=database_url) as env:
        await env.run("quick", id="q-done")  # ended: never checked
        for instance_id in ("h-1", "h-2"):
            await env.start("holiday", id=instance_id)
            await until_waiting(env, instance_id)

    same = fw(root, "check", "--in-flight")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[-1] == (
        "fw check --in-flight: 2 in-flight instances with a journal replayed against this code: "
        "none would break"
    )

    source = root / "workflows" / "holiday_workflow.py"
    source.write_text(source.read_text().replace('"book"', '"reserve"'))
    changed = fw(root, "check", "--in-flight")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    lines = changed.stdout.splitlines()
    broken = [line for line in lines if line.startswith("breaks: ")]
    assert [line.split(":", 2)[1] for line in broken] == [
        " h-2 (holiday, waiting) at step 'book'", " h-1 (holiday, waiting) at step 'book'"
    ]
    assert all("ctx.patched" in line for line in broken)
    assert any(line.startswith("hint: keep the old path") for line in lines)
    assert lines[-1].endswith("2 would break")

    report = json.loads(fw(root, "check", "--in-flight", "--json").stdout)
    assert report["ok"] is False
    assert report["in_flight"]["checked"] == 2
    assert {(b["instance_id"], b["step"]) for b in report["in_flight"]["broken"]} == {
        ("h-1", "book"), ("h-2", "book")
    }

    source.write_text("raise RuntimeError('half-saved')\n" + HOLIDAY)
    unimportable = fw(root, "check", "--in-flight")
    assert unimportable.returncode == 1
    assert (
        "breaks: h-1 (holiday, waiting): workflows/holiday_workflow.py:1: workflow 'holiday' "
        "cannot be imported: RuntimeError: half-saved"
    ) in unimportable.stdout
