"""``fw init``, ``fw new workflow|step``, ``fw codegen [--check]`` as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

FW = str(Path(sys.executable).parent / "fw")


def fw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FW, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_init_new_workflow_new_step_and_run_the_scaffold(tmp_path: Path) -> None:
    created = fw("init", "shop", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    root = tmp_path / "shop"
    for path in ("fw.toml", "__init__.py", "workflows/__init__.py", ".gitignore"):
        assert (root / path).is_file(), path
    assert "WorkflowName = Never" in (root / "_generated/workflows.py").read_text()
    config = tomllib.loads((root / "fw.toml").read_text())
    assert config == {"app": {"name": "shop"}}
    assert "# [runtime]" in (root / "fw.toml").read_text()

    added = fw("new", "workflow", "onboarding", cwd=root / "workflows")
    assert added.returncode == 0, added.stderr
    assert "created onboarding_workflow.py" in added.stdout, "paths are relative to the cwd"
    assert "fw codegen: 1 workflow; wrote" in added.stdout
    workflows = tomllib.loads((root / "fw.toml").read_text())["workflows"]
    assert [w["name"] for w in workflows] == ["onboarding"]

    step = fw("new", "step", "charge-card", "--app", "shop", cwd=tmp_path)
    assert step.returncode == 0, step.stderr
    assert (root / "steps/__init__.py").is_file()
    assert "charge_card_step = define_step(" in (root / "steps/charge_card.py").read_text()

    script = textwrap.dedent(
        """
        import asyncio
        from framework import Worker
        from shop._generated import workflows
        from shop.steps.charge_card import charge_card_step
        from shop.workflows.onboarding_workflow import OnboardingParams

        async def main():
            async with Worker("shop"):
                handle = workflows.get("onboarding")
                instance = await handle.create(OnboardingParams(user_id="ada"), id="o-1")
                print((await instance.result(timeout=30)).message, charge_card_step.name)

        asyncio.run(main())
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert ran.stdout.strip() == "hello, ada charge-card", ran.stderr


def test_scaffolds_refuse_to_overwrite_and_validate_names(tmp_path: Path) -> None:
    assert fw("init", "shop", cwd=tmp_path).returncode == 0
    again = fw("init", "shop", cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: shop: already an fw app (fw.toml exists)"
    bad_folder = fw("init", "my-shop", cwd=tmp_path)
    assert bad_folder.returncode == 1 and "must be a Python package name" in bad_folder.stderr
    assert not (tmp_path / "my-shop").exists()

    root = tmp_path / "shop"
    assert fw("new", "workflow", "data-sync", cwd=root).returncode == 0
    assert (root / "workflows/data_sync_workflow.py").is_file()
    twice = fw("new", "workflow", "data-sync", cwd=root)
    assert twice.returncode == 1
    assert "workflow 'data-sync' already exists: workflows/data_sync_workflow.py:" in twice.stderr
    bad = fw("new", "workflow", "Data_Sync", cwd=root)
    assert bad.returncode == 1
    assert "workflow name 'Data_Sync' is not valid" in bad.stderr
    keyword = fw("new", "workflow", "import", cwd=root)
    assert keyword.returncode == 0, keyword.stderr
    assert "async def import_(ctx" in (root / "workflows/import_workflow.py").read_text()
    assert fw("new", "step", "notify", cwd=root).returncode == 0
    step_again = fw("new", "step", "notify", cwd=root)
    assert step_again.returncode == 1 and "already exists; not overwriting it" in step_again.stderr
    outside = fw("new", "step", "x", "--dir", "../elsewhere", cwd=root)
    assert outside.returncode == 1 and "not inside the app" in outside.stderr
    below = fw("codegen", cwd=tmp_path)  # the only app below the working directory
    assert below.returncode == 0, below.stderr
    (tmp_path / "empty").mkdir()
    nowhere = fw("codegen", cwd=tmp_path / "empty")
    assert nowhere.returncode == 1 and "no fw.toml in" in nowhere.stderr


def test_codegen_check_json_and_up_to_date(tmp_path: Path) -> None:
    assert fw("init", "shop", cwd=tmp_path).returncode == 0
    root = tmp_path / "shop"
    (root / "workflows/ping_workflow.py").write_text(
        "from framework import workflow\n\n@workflow\nasync def ping(ctx): ...\n"
    )
    check = fw("codegen", "--check", "--app", "shop", cwd=tmp_path)
    assert check.returncode == 1
    assert "--- a/_generated/workflows.py\n+++ b/_generated/workflows.py\n" in check.stdout
    assert '+name = "ping"' in check.stdout
    assert check.stderr.startswith("fw codegen --check: stale: shop/_generated/__init__.py,")
    assert "\"ping\"" not in (root / "_generated/workflows.py").read_text()

    generated = fw("codegen", "--json", cwd=root)
    report = json.loads(generated.stdout)
    assert generated.returncode == 0 and report["ok"] and not report["check"]
    assert [w["name"] for w in report["workflows"]] == ["ping"]
    assert {c["path"] for c in report["changes"]} == {
        "_generated/__init__.py",
        "_generated/_typing.py",
        "_generated/client.py",
        "_generated/entrypoints.py",
        "_generated/handles/__init__.py",
        "_generated/handles/ping_workflow.py",
        "_generated/workflows.py",
        "fw.toml",
    }
    clean = fw("codegen", "--check", cwd=root)
    assert (clean.returncode, clean.stdout.split(";")[1].split("(")[0].strip()) == (0, "up to date")
    broken = root / "workflows/ping_workflow.py"
    broken.write_text("async def ping(ctx) ...\n")
    failed = fw("codegen", "--json", cwd=root)
    report = json.loads(failed.stdout)
    assert failed.returncode == 1 and not report["ok"]
    assert report["problems"][0]["path"] == "workflows/ping_workflow.py"
    assert report["problems"][0]["code"] == "syntax_error"


async def test_run_dev_runs_services_beside_the_watch(tmp_path: Path) -> None:
    from framework.cli.codegen_commands import DevOptions, run_dev
    from framework.codegen.run import CodegenResult

    assert fw("init", "shop", cwd=tmp_path).returncode == 0
    regenerated: list[int] = []
    started: list[str] = []

    async def reload(result: CodegenResult, changed: frozenset[Path]) -> None:
        regenerated.append(len(result.workflows))

    async def worker(stop: asyncio.Event) -> None:
        started.append("worker")
        while not regenerated:
            await asyncio.sleep(0.01)

    async def server(stop: asyncio.Event) -> None:
        started.append("server")
        await stop.wait()

    options = DevOptions(tmp_path / "shop", port=9999)
    await asyncio.wait_for(run_dev(options, on_success=reload, services=[worker, server]), 20)
    assert regenerated == [0] and started == ["worker", "server"]
