"""Watch mode: a real ``fw dev`` process regenerating as files change, and the watcher's
"once more if files changed mid-run" rule in-process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import pytest

from framework.codegen import run_codegen, watch
from framework.codegen.run import CodegenResult
from framework.codegen.watch import CodegenWatcher
from tests.codegen.sample_apps import write_app, write_file

FW = str(Path(sys.executable).parent / "fw")


def flow(name: str | None = None) -> str:
    option = f"(name={name!r})" if name else ""
    return f"from framework import workflow\n\n@workflow{option}\nasync def run(ctx): ...\n"


# Bounds for a loaded machine (each run of fw dev imports the app in a child process first);
# the waits end as soon as the condition holds.
PATIENCE = 60


def wait_for(
    condition: Callable[[], bool], what: str, log: TextIO | None = None, timeout: float = PATIENCE
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = f"; fw dev said:\n{log_text(log)}" if log is not None else ""
            pytest.fail(f"timed out waiting for {what}{said}")
        time.sleep(0.05)


def names(root: Path) -> str:
    path = root / "_generated" / "workflows.py"
    return path.read_text() if path.exists() else ""


def test_fw_dev_regenerates_on_every_kind_of_change_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", {"__init__.py": "", "workflows/a_workflow.py": flow()})
    with (tmp_path / "dev.log").open("w+") as log:
        code = run_dev_session(tmp_path, root, log)
        assert code == 0
        assert "Traceback" not in log_text(log)
        assert log_text(log).rstrip().endswith("fw dev: stopped")


def run_dev_session(tmp_path: Path, root: Path, log: TextIO) -> int:
    process = subprocess.Popen(
        [FW, "dev", "--app", "shop", "--port", "0"], cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        wait_for(lambda: '"a",' in names(root), "the first run", log)
        write_file(root / "workflows/b_workflow.py", flow())
        wait_for(lambda: '"b",' in names(root), "an added file", log)
        write_file(root / "workflows/b_workflow.py", flow("bee"))
        wait_for(lambda: '"bee",' in names(root) and '"b",' not in names(root), "an edit", log)
        (root / "workflows/a_workflow.py").rename(root / "workflows/c_workflow.py")
        wait_for(lambda: '"c",' in names(root) and '"a",' not in names(root), "a rename", log)
        write_file(root / "workflows/c_workflow.py", "async def run(ctx) ...\n")
        wait_for(lambda: "c_workflow.py:1:20: error:" in log_text(log), "the error", log)
        assert '"c",' in names(root), "the last good output stays"
        (root / "workflows/c_workflow.py").unlink()
        wait_for(lambda: '"c",' not in names(root), "a delete, which also fixes the error", log)
        assert process.poll() is None, "the watch goes on"
    finally:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=PATIENCE)


def log_text(log: TextIO) -> str:
    log.flush()
    log.seek(0)
    return log.read()


async def test_changes_during_a_run_trigger_one_more_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_app(tmp_path, "shop", {"workflows/a_workflow.py": flow()})
    calls: list[int] = []

    def codegen_then_edit(app: Path) -> CodegenResult:
        result = run_codegen(app)
        calls.append(len(calls) + 1)
        if len(calls) == 2:
            write_file(app / "workflows/late_workflow.py", flow())
        return result

    monkeypatch.setattr(watch, "run_codegen", codegen_then_edit)
    seen: list[list[str]] = []
    watcher = CodegenWatcher(
        root, on_success=lambda result, changed: seen.append([w.name for w in result.workflows])
    )
    stop = asyncio.Event()
    running = asyncio.create_task(watcher.run(stop))
    try:
        await until(lambda: seen == [["a"]])
        await asyncio.sleep(0.3)
        write_file(root / "workflows/b_workflow.py", flow())
        await until(lambda: bool(seen) and seen[-1] == ["a", "b", "late"])
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=PATIENCE)
    assert seen[:2] == [["a"], ["a", "b"]]
    assert watcher.runs >= 3


async def until(condition: Callable[[], bool], timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
