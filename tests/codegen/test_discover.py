"""Which files discovery finds: ``*_workflow.py`` outside the folders it skips."""

from __future__ import annotations

from pathlib import Path

from framework.codegen.discover import compile_globs, discover_python_files, discover_workflow_files


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("")


def test_skips_generated_hidden_caches_venvs_nested_apps_and_excludes(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "a_workflow.py",
        "workflows/b_workflow.py",
        "workflows/deep/c_workflow.py",
        "workflows/_workflow.py",
        "workflows/helpers.py",
        "_generated/x_workflow.py",
        ".hidden/x_workflow.py",
        "__pycache__/x_workflow.py",
        "venv/x_workflow.py",
        ".venv/x_workflow.py",
        "node_modules/x_workflow.py",
        "env312/pyvenv.cfg",
        "env312/lib/x_workflow.py",
        "other_app/fw.toml",
        "other_app/x_workflow.py",
        "scripts/tool_workflow.py",
        "legacy/old_workflow.py",
        "workflows/tmp/scratch_workflow.py",
    )
    excluded = ["scripts/**", "old_workflow.py", "workflows/*/scratch*"]
    found = discover_workflow_files(tmp_path, excluded)
    assert found == ["a_workflow.py", "workflows/b_workflow.py", "workflows/deep/c_workflow.py"]
    assert "workflows/helpers.py" in discover_python_files(tmp_path)


def test_glob_semantics() -> None:
    def matches(pattern: str, path: str) -> bool:
        return bool(compile_globs([pattern])[0].match(path))

    assert matches("scripts/**", "scripts")
    assert matches("scripts/**", "scripts/a/b.py")
    assert not matches("scripts/**", "other/scripts/a.py")
    assert matches("**/fixtures", "tests/deep/fixtures")
    assert matches("fixtures", "tests/deep/fixtures")
    assert matches("*_draft_workflow.py", "workflows/x_draft_workflow.py")
    assert not matches("workflows/*.py", "workflows/a/b.py")
    assert matches("workflows/?_workflow.py", "workflows/a_workflow.py")
