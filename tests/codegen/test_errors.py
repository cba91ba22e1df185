"""Bad input: every problem reported together, at path:line:col, and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from framework.codegen import run_codegen
from tests.codegen.sample_apps import SHOP, write_app, write_file

FW = str(Path(sys.executable).parent / "fw")
BROKEN = "from framework import workflow\n\n@workflow\nasync def broken(ctx:\n    pass\n"


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    paths = [root / "fw.toml", *(root / "_generated").iterdir()]
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths if p.is_file()}


def locations(root: Path) -> list[str]:
    result = run_codegen(root)
    assert not result.ok
    return [f"{p.file}:{p.line}:{p.col}:{p.code}" for p in result.problems]


def test_a_syntax_error_leaves_the_last_good_output_untouched(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", SHOP)
    assert run_codegen(root).ok
    before = snapshot(root)
    write_file(root / "workflows/broken_workflow.py", BROKEN)
    (root / "workflows/data_sync_workflow.py").unlink()
    assert locations(root) == ["workflows/broken_workflow.py:4:17:syntax_error"]
    assert snapshot(root) == before


def test_all_problems_are_collected_duplicates_at_every_file(tmp_path: Path) -> None:
    flow = "from framework import workflow\n\n@workflow(name='orders')\nasync def run(ctx): ...\n"
    root = write_app(
        tmp_path,
        "shop",
        {
            "workflows/a_workflow.py": flow,
            "billing/b_workflow.py": "# billing\n" + flow,
            "workflows/broken_workflow.py": BROKEN,
            "workflows/empty_workflow.py": "x = 1\n",
        },
    )
    assert locations(root) == [
        "billing/b_workflow.py:5:None:duplicate_name",
        "workflows/a_workflow.py:4:None:duplicate_name",
        "workflows/broken_workflow.py:4:17:syntax_error",
        "workflows/empty_workflow.py:1:1:no_workflow",
    ]
    message = run_codegen(root).problems[0].message
    assert "billing/b_workflow.py:5, workflows/a_workflow.py:4" in message
    assert not (root / "_generated").exists()


def test_invalid_toml_is_reported_with_its_line(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", {}, toml="\n[codegen]\nexclude = [unquoted]\n")
    result = run_codegen(root)
    assert [(p.file, p.line, p.code) for p in result.problems] == [("fw.toml", 5, "invalid_toml")]
    assert result.problems[0].message.startswith("not valid TOML: Invalid value")
    root = write_app(tmp_path / "b", "shop", {}, toml="[codegen]\nexclude = 'scripts'\n")
    assert "exclude must be a list" in run_codegen(root).problems[0].message


def test_an_app_folder_that_is_not_a_python_name(tmp_path: Path) -> None:
    root = write_app(tmp_path, "my-shop", {"workflows/a_workflow.py": "x = 1\n"})
    result = run_codegen(root)
    assert (result.problems[0].file, result.problems[0].code) == ("", "invalid_app_name")
    assert "'my-shop' is not a Python package name" in result.problems[0].message


def test_the_cli_prints_one_unwrapped_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    long_name = "a_really_long_module_name_that_would_wrap_on_a_narrow_terminal"
    root = write_app(
        tmp_path,
        "shop",
        {
            f"workflows/{long_name}/first_workflow.py": BROKEN,
            "workflows/second_workflow.py": "from framework import workflow\n@workflow(name=NAME)\n"
            "async def run(ctx): ...\n",
        },
    )
    env = {**os.environ, "COLUMNS": "30", "TERM": "xterm-256color"}
    completed = subprocess.run(
        [FW, "codegen", "--app", "shop"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert completed.returncode == 1
    lines = completed.stderr.splitlines()
    assert lines == [
        f"shop/workflows/{long_name}/first_workflow.py:4:17: error: '(' was never closed"
        "  [syntax_error]",
        "shop/workflows/second_workflow.py:2:16: error: the workflow name must be a string literal"
        " (codegen reads it without running the file), like @workflow(name=\"payments\")"
        "  [non_literal_name]",
        "fw codegen: 2 errors; nothing written",
    ]
    assert "Traceback" not in completed.stderr + completed.stdout
    assert not (root / "_generated").exists()


def test_two_names_with_one_entrypoint_class_are_reported(tmp_path: Path) -> None:
    def flow(name: str) -> str:
        return f"from framework import workflow\n@workflow(name={name!r})\nasync def f(ctx): ...\n"

    files = {"a_workflow.py": flow("a-1b"), "b_workflow.py": flow("a1b")}
    root = write_app(tmp_path, "shop", files)
    assert locations(root) == [
        "a_workflow.py:3:None:duplicate_class", "b_workflow.py:3:None:duplicate_class"
    ]
    assert "entrypoint class name 'A1bWorkflow'" in run_codegen(root).problems[0].message


def test_files_python_could_not_read_are_errors_not_crashes(tmp_path: Path) -> None:
    """Before, brackets nested 3,000 deep killed `fw codegen` (and `fw dev`) with a
    segmentation fault inside libcst's native parser, and a file that is not UTF-8 or holds a
    NUL byte ended it with a traceback. Python's own parser reads each file first."""
    root = write_app(tmp_path, "shop", SHOP)
    workflows = root / "workflows"
    (workflows / "deep_workflow.py").write_text("x = " + "(" * 3000 + "1" + ")" * 3000 + "\n")
    (workflows / "latin_workflow.py").write_bytes(b"# caf\xe9\nx = 1\n")
    (workflows / "nul_workflow.py").write_bytes(b"x = 1\x00\n")

    done = subprocess.run(
        [FW, "codegen", "--app", str(root)], capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert "workflows/deep_workflow.py:1:205: error: too many nested parentheses" in lines[0]
    assert "workflows/latin_workflow.py:1:6: error: the file is not valid utf-8: invalid" in lines[1]
    assert "workflows/nul_workflow.py:1:1: error: source code" in lines[2]
    assert "null bytes" in lines[2]
