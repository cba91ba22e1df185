"""A codegen run end to end: writes only what changed, check mode, stale files, the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framework.codegen import render, run_codegen
from framework.codegen.cache import RACY_NS, CodegenCache
from framework.codegen.model import WorkflowSpec
from framework.resources import templates_dir
from tests.codegen.sample_apps import SHOP, write_app, write_file

FLOW = """
    from framework import workflow

    @workflow
    async def run(ctx): ...
"""


def mtimes(root: Path) -> dict[str, int]:
    paths = [root / "fw.toml", *sorted((root / "_generated").iterdir())]
    return {p.name: p.stat().st_mtime_ns for p in paths if p.is_file()}


def age(root: Path, seconds: float = 10) -> None:
    """Make every file look older, as files are between real edits."""
    past = time.time() - seconds
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(Path(folder, name), (past, past))


def test_a_second_run_with_nothing_changed_rewrites_nothing(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", SHOP)
    age(root)
    first = run_codegen(root)
    handles = {f"_generated/handles/{w.handle_module}.py" for w in first.workflows}
    assert first.ok and {c.path.relative_to(root).as_posix() for c in first.changes} == {
        *(f"_generated/{name}" for name in ("__init__.py", "_typing.py", "client.py")),
        "_generated/entrypoints.py",
        *("_generated/workflows.py", "_generated/handles/__init__.py", "fw.toml"),
        *handles,
    }
    assert len(handles) == 6
    age(root / "_generated")
    before = mtimes(root)
    second = run_codegen(root)
    assert second.ok and second.changes == [] and second.up_to_date
    assert second.files_parsed == 0, "every file came from the cache"
    assert mtimes(root) == before


def test_check_mode_writes_nothing_and_lists_stale_files_as_diffs(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", SHOP)
    pending = run_codegen(root, check=True)
    assert pending.ok and len(pending.changes) == 6 + 1 + 6  # 5 modules, fw.toml, handles/
    assert not (root / "_generated").exists()
    assert "[[workflows]]" not in (root / "fw.toml").read_text()
    assert not (root / ".fw").exists(), "check mode writes no cache either"
    assert run_codegen(root).ok
    assert run_codegen(root, check=True).changes == []
    write_file(root / "workflows/extra_workflow.py", FLOW)
    stale = run_codegen(root, check=True)
    diff = "".join(c.diff(c.path.relative_to(root).as_posix()) for c in stale.changes)
    assert "+++ b/_generated/workflows.py" in diff and '+    "extra",' in diff
    assert '+name = "extra"' in diff and "--- a/fw.toml" in diff
    assert "extra" not in (root / "_generated/workflows.py").read_text()


def test_stale_files_are_removed_only_inside_generated(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", SHOP)
    assert run_codegen(root).ok
    write_file(root / "_generated/old_module.py", "x = 1\n")
    write_file(root / "_generated/.keep", "")
    write_file(root / "_generated/__pycache__/workflows.cpython-311.pyc", "")
    write_file(root / "stray.py", "")
    result = run_codegen(root)
    assert [(c.path.name, c.action) for c in result.changes] == [("old_module.py", "delete")]
    assert not (root / "_generated/old_module.py").exists()
    assert (root / "_generated/.keep").exists() and (root / "stray.py").exists()
    assert (root / "_generated/__pycache__/workflows.cpython-311.pyc").exists()


def test_added_renamed_and_deleted_workflows(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", {"workflows/a_workflow.py": FLOW})
    assert [w.name for w in run_codegen(root).workflows] == ["a"]
    write_file(root / "workflows/b_workflow.py", FLOW)
    assert [w.name for w in run_codegen(root).workflows] == ["a", "b"]
    (root / "workflows/b_workflow.py").rename(root / "workflows/c_workflow.py")
    (root / "workflows/a_workflow.py").unlink()
    result = run_codegen(root)
    assert [w.name for w in result.workflows] == ["c"]
    handles = sorted(p.name for p in (root / "_generated/handles").iterdir() if p.is_file())
    assert handles == ["__init__.py", "c_workflow.py"], "a's and b's handle modules are stale"
    text = (root / "_generated/workflows.py").read_text()
    assert 'WorkflowName = Literal[\n    "c",\n]' in text
    assert 'name = "a"' not in (root / "fw.toml").read_text()


def test_the_cache_parses_only_changed_files_and_verifies_racy_entries(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", {f"workflows/w{i}_workflow.py": FLOW for i in range(5)})
    age(root)
    assert run_codegen(root).files_parsed == 5
    assert run_codegen(root).files_parsed == 0
    changed = root / "workflows/w3_workflow.py"
    write_file(changed, FLOW.replace("async def run", "async def renamed"))
    result = run_codegen(root)
    assert result.files_parsed == 1
    assert [w.attribute for w in result.workflows if w.name == "w3"] == ["renamed"]
    # A same-size edit within the mtime granularity is caught by the content hash.
    stat = changed.stat()
    changed.write_text(changed.read_text().replace("renamed", "remixed"))
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    result = run_codegen(root)
    assert [w.attribute for w in result.workflows if w.name == "w3"] == ["remixed"]
    cache = CodegenCache.load(root, "shop")
    entry = cache.files["workflows/w3_workflow.py"]
    assert entry["cached_at_ns"] - entry["mtime_ns"] < RACY_NS
    assert set(cache.files) == {f"workflows/w{i}_workflow.py" for i in range(5)}


def test_a_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", {"workflows/a_workflow.py": FLOW})
    assert run_codegen(root).ok
    (root / ".fw/codegen-cache.json").write_text("{not json")
    result = run_codegen(root)
    assert result.ok and result.files_parsed == 1 and result.changes == []


def test_untouched_output_is_not_rendered_again_but_a_hand_edit_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_app(tmp_path, "shop", {"workflows/a_workflow.py": FLOW})
    age(root)
    assert run_codegen(root).ok
    age(root / "_generated", seconds=5)
    assert run_codegen(root).ok  # remembers the aged files as generated
    renders: list[int] = []
    real = render.render_generated

    def counting(app_name: str, workflows: list[WorkflowSpec]) -> dict[str, str]:
        renders.append(1)
        return real(app_name, workflows)

    monkeypatch.setattr(render, "render_generated", counting)
    assert run_codegen(root).changes == [] and renders == []
    generated = root / "_generated/workflows.py"
    generated.write_text(generated.read_text() + "# hand edit\n")
    result = run_codegen(root)
    assert renders == [1] and [c.path.name for c in result.changes] == ["workflows.py"]
    assert "# hand edit" not in generated.read_text()


def test_settings_are_read_again_when_fw_toml_changes(tmp_path: Path) -> None:
    files = {"workflows/a_workflow.py": FLOW, "tools/b_workflow.py": FLOW}
    root = write_app(tmp_path, "shop", files)
    assert [w.name for w in run_codegen(root).workflows] == ["a", "b"]
    with (root / "fw.toml").open("a") as handle:
        handle.write('\n[codegen]\nexclude = ["tools/**"]\n')
    assert [w.name for w in run_codegen(root).workflows] == ["a"]


def test_codegen_never_imports_the_runtime_or_user_code(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", SHOP)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from framework.codegen import run_codegen\n"
        "from framework.codegen import lint, scaffold, watch\n"
        "assert run_codegen(Path(sys.argv[1])).ok\n"
        "assert lint.lint_app(Path(sys.argv[1])).ok\n"
        "print(sorted(m for m in sys.modules if m.startswith(('framework.runtime', 'shop'))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(root)],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    assert completed.stdout.strip() == "[]"
    assert (templates_dir() / "codegen" / "workflows.py.j2").is_file()
