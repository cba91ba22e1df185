"""Does every workflow module of an app import? Asked in a child process, so a module that
crashes, hangs or exits at import harms nothing but the check (``fw dev`` asks on each save
before it reloads its worker's code).

Run as ``python -m framework.runtime.import_check ROOT OUT``: writes to ``OUT`` the JSON list
of the problems found, each with the workflow, file, line and error of a
``WorkflowImportError``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from framework.errors import FwError, WorkflowImportError

CHECK_TIMEOUT = 30.0
"""Seconds the child process may take to import every workflow module."""


async def import_problems(root: Path, timeout: float = CHECK_TIMEOUT) -> list[WorkflowImportError]:
    """Import each workflow module of the app at ``root`` in a child process; return why
    each one that fails does (an empty list: every module imports)."""
    with tempfile.TemporaryDirectory(prefix="fw-import-check-") as scratch:
        out = Path(scratch) / "problems.json"
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "framework.runtime.import_check", str(root), str(out),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            _, stderr = await asyncio.wait_for(child.communicate(), timeout)
        except TimeoutError:
            child.kill()
            await child.wait()
            return [_whole_app(f"importing the workflow modules took over {timeout:.0f} s "
                               "(does a module block at import?)")]
        if not out.exists():
            last = (stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            return [_whole_app(f"importing the workflow modules ended the process "
                               f"(exit code {child.returncode}): {last}")]
        return [WorkflowImportError(**problem) for problem in json.loads(out.read_text())]


def _whole_app(error: str) -> WorkflowImportError:
    return WorkflowImportError("*", ".", None, error)


def problems_here(root: Path) -> list[dict[str, object]]:
    """In this process: import every workflow module of ``root``; the failures as dicts."""
    from framework.runtime.app import App

    found: list[dict[str, object]] = []
    try:
        app = App(root)
        names = sorted(app.entrypoints)
    except FwError as exc:
        return [{"workflow": "*", "file": "fw.toml", "line": None, "error": str(exc)}]
    for name in names:
        try:
            app.definition(name)
        except WorkflowImportError as exc:
            found.append(
                {"workflow": name, "file": exc.file, "line": exc.line, "error": exc.error}
            )
        except FwError as exc:  # a name that is not a workflow: codegen is stale
            file = app.entrypoints[name].file
            found.append({"workflow": name, "file": file, "line": None, "error": str(exc)})
    return found


if __name__ == "__main__":
    root_arg, out_arg = sys.argv[1:3]
    problems = problems_here(Path(root_arg))
    Path(out_arg).write_text(json.dumps(problems))
    sys.exit(0)
