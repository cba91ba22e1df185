"""``fw check``: unknown workflow targets (errors, with suggestions) and unused workflows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from framework.codegen.lint import lint_app
from tests.codegen.sample_apps import write_app

FW = str(Path(sys.executable).parent / "fw")

FILES = {
    "__init__.py": "",
    "workflows/order_pipeline_workflow.py": """
        from framework import WorkflowContext, branch, workflow
        import framework as fw


        @workflow
        async def order_pipeline(ctx: WorkflowContext[str]) -> None:
            await ctx.spawn("refund", {"order_id": ctx.params})
            await ctx.spawn("refnud")
            await ctx.parallel([branch("image-tag", 1), fw.branch(workflow="thumbnial")])
            await ctx.env.SHIPPING_WORKFLOW.create()
    """,
    "workflows/refund_workflow.py": """
        from framework import WorkflowContext, workflow


        @workflow
        async def refund(ctx: WorkflowContext[str]) -> None: ...
    """,
    "workflows/image_tag_workflow.py": """
        from framework import WorkflowContext, workflow


        @workflow
        async def image_tag(ctx: WorkflowContext[int]) -> None: ...
    """,
    "workflows/thumbnail_workflow.py": """
        from framework import WorkflowContext, workflow


        @workflow
        async def thumbnail(ctx: WorkflowContext[int]) -> None: ...
    """,
    "workflows/nightly_workflow.py": """
        from framework import WorkflowContext, workflow


        @workflow
        async def nightly(ctx: WorkflowContext[int]) -> None: ...
    """,
    "api.py": """
        import subprocess
        from shop._generated import env, workflows
        from shop._generated.workflows import THUMBNAIL_WORKFLOW


        async def start() -> None:
            await workflows.get("order-pipeline").create("o-1")
            await workflows.get(name="order-pipline").create("o-2")
            await env.ORDER_PIPELINE_WORKFLOW.create("o-3")
            await env.ORDERS_PIPELINE_WORKFLOW.create("o-4")
            workflows.get(THUMBNAIL_WORKFLOW)
            workflows.get_dynamic(input())
            subprocess.run(["git", "branch"])
            {}.get("not-a-workflow")
    """,
    "_generated/ignored.py": "workflows.get('nope')\n",
    "unrelated.py": """
        from pexpect import spawn

        workflows = {"a": 1}
        workflows.get("not-a-workflow")
        spawn("ls")
        env = {"X_WORKFLOW": 1}
        env.X_WORKFLOW
    """,
    "scripts/tool.py": "workflows.get('excluded')\n",
}


def test_unknown_targets_are_errors_with_suggestions_and_unused_are_info(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", FILES, toml="[codegen]\nexclude = ['scripts/**']\n")
    result = lint_app(root)
    assert not result.ok
    found = [(f.file, f.line, f.col, f.severity, f.code) for f in result.findings]
    assert found == [
        ("api.py", 8, 30, "error", "workflow_unknown_target"),
        ("api.py", 10, 11, "error", "workflow_unknown_target"),
        ("workflows/nightly_workflow.py", 5, None, "info", "workflow_unused"),
        ("workflows/order_pipeline_workflow.py", 8, 21, "error", "workflow_unknown_target"),
        ("workflows/order_pipeline_workflow.py", 9, 68, "error", "workflow_unknown_target"),
        ("workflows/order_pipeline_workflow.py", 10, 11, "error", "workflow_unknown_target"),
    ]
    messages = [f.message for f in result.findings]
    assert messages[0] == (
        "workflows.get('order-pipline') names no declared workflow; did you mean 'order-pipeline'?"
    )
    assert messages[1].startswith("env.ORDERS_PIPELINE_WORKFLOW is not a binding of this app;")
    assert "'ORDER_PIPELINE_WORKFLOW'" in messages[1]
    assert messages[2].startswith("workflow 'nightly' is never started in this app")
    assert "spawn('refnud')" in messages[3] and "'refund'" in messages[3]
    assert "branch('thumbnial')" in messages[4] and "'thumbnail'" in messages[4]
    assert messages[5].startswith("env.SHIPPING_WORKFLOW is not a binding of this app; declared:")


def test_a_clean_app_passes_and_json_output(tmp_path: Path) -> None:
    files = {k: v for k, v in FILES.items() if k.startswith("workflows/refund")}
    files["main.py"] = "from shop._generated import env\nenv.REFUND_WORKFLOW\n"
    write_app(tmp_path, "shop", files)
    completed = subprocess.run(
        [FW, "check", "--app", "shop", "--json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {
        "ok": True,
        "counts": {"error": 0, "warning": 0, "info": 0},
        "findings": [],
    }


def test_the_cli_exits_1_on_errors_and_prints_each_finding(tmp_path: Path) -> None:
    write_app(tmp_path, "shop", FILES)
    completed = subprocess.run([FW, "check"], cwd=tmp_path / "shop", capture_output=True, text=True)
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("api.py:8:30: error: workflows.get('order-pipline') names no")
    assert lines[0].endswith("  [workflow_unknown_target]")
    assert "workflows/nightly_workflow.py:5: info: workflow 'nightly'" in completed.stdout
    assert lines[-1] == "fw check: 9 files, 5 workflows: 6 errors, 1 info"


def test_codegen_problems_are_findings_too(tmp_path: Path) -> None:
    write_app(tmp_path, "shop", {"workflows/bad_workflow.py": "def (:\n"})
    result = lint_app(tmp_path / "shop")
    assert [(f.file, f.code) for f in result.findings] == [
        ("workflows/bad_workflow.py", "syntax_error")
    ]
