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


TYPED = {
    "__init__.py": "",
    "workflows/review_workflow.py": """
        from pydantic import BaseModel
        from framework import WorkflowContext, workflow

        class Approval(BaseModel):
            approved: bool

        @workflow
        async def review(ctx: WorkflowContext[str]) -> None:
            await ctx.step.wait_for_event("verdict", type="approval", model=Approval)
    """,
    "workflows/inbox_workflow.py": """
        from framework import WorkflowContext, workflow

        @workflow
        async def inbox(ctx: WorkflowContext[str]) -> None:
            await ctx.step.wait_for_event("any", type=ctx.params)
    """,
    "workflows/webhook_workflow.py": """
        from framework import WorkflowContext, workflow

        @workflow
        async def webhook(ctx: WorkflowContext[str]) -> None: ...
    """,
    "workflows/batch_workflow.py": """
        from framework import WorkflowContext, workflow
        from shop._generated import workflows

        @workflow
        async def batch(ctx: WorkflowContext[str]) -> None:
            child = await ctx.spawn(workflows.get("review"), "x")
            await child.send_event("aproval", {"approved": True})
            await ctx.parallel([workflows.get("reveiw").branch("y")])
    """,
}
WEB = """
from framework import workflow_status
from shop._generated import env, workflows


async def page(order_id: str) -> None:
    await workflow_status("reveiw", order_id)
    await workflow_status(workflows.get("inbox"), order_id)
    review = await workflows.get("review").create("r")
    await review.send_event("approval", {"approved": True})
    await review.send_event(type="approvals", payload={})
    inbox = await env.INBOX_WORKFLOW.get("i")
    await inbox.send_event("anything")
    workflows.get_dynamic("inboxx")
"""


def test_every_literal_name_and_event_type_is_checked_beside_the_app(tmp_path: Path) -> None:
    toml = '[check]\npaths = ["../web", "../missing"]\n'
    root = write_app(tmp_path, "shop", TYPED, toml=toml)
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "pages.py").write_text(WEB)
    result = lint_app(root)
    found = [(f.file, f.line, f.code) for f in result.findings]
    assert found == [
        ("../web/pages.py", 7, "workflow_unknown_target"),
        ("../web/pages.py", 11, "workflow_unknown_target"),
        ("../web/pages.py", 14, "workflow_unknown_target"),
        ("workflows/batch_workflow.py", 5, "workflow_unused"),
        ("workflows/batch_workflow.py", 7, "workflow_unknown_target"),
        ("workflows/batch_workflow.py", 8, "workflow_unknown_target"),
        ("workflows/webhook_workflow.py", 4, "workflow_unused"),
    ]
    messages = [f.message for f in result.findings]
    assert messages[0].startswith("workflow_status('reveiw') names no declared workflow")
    assert messages[1] == (
        "send_event('approvals') to an instance of 'review', which never waits for that type; "
        "did you mean 'approval'?"
    )
    assert messages[2].startswith("workflows.get('inboxx') names no declared workflow")
    assert "send_event('aproval')" in messages[4]
    assert "workflows.get('reveiw')" in messages[5]
    assert result.files_checked == 6


def test_an_external_workflow_is_not_reported_unused(tmp_path: Path) -> None:
    root = write_app(tmp_path, "shop", TYPED)
    assert run_and_mark_external(root, "webhook")
    codes = [(f.file, f.code) for f in lint_app(root).findings]
    assert ("workflows/webhook_workflow.py", "workflow_unused") not in codes


def run_and_mark_external(root: Path, name: str) -> bool:
    """Codegen writes the [[workflows]] tables; mark one ``external = true`` as a user would."""
    from framework.codegen import run_codegen

    assert run_codegen(root).ok
    text = (root / "fw.toml").read_text()
    marker = f'name = "{name}"\n'
    assert marker in text
    (root / "fw.toml").write_text(text.replace(marker, marker + "external = true\n"))
    return run_codegen(root).ok


def test_unknown_keys_of_fw_toml_are_warnings_with_close_matches(tmp_path: Path) -> None:
    """Before, `fw check` said nothing of a misspelt key, which the runtime then ignored."""
    files = {k: v for k, v in FILES.items() if k.startswith("workflows/refund")}
    files["main.py"] = "from shop._generated import env\nenv.REFUND_WORKFLOW\n"
    toml = '[runtime]\nconcurency = 5\n[check]\npaths = []\n[extras]\nx = 1\n'
    write_app(tmp_path, "shop", files, toml=toml)

    human = subprocess.run([FW, "check", "--app", "shop"], cwd=tmp_path, capture_output=True, text=True)
    as_json = subprocess.run(
        [FW, "check", "--app", "shop", "--json"], cwd=tmp_path, capture_output=True, text=True
    )

    assert human.returncode == 0 and as_json.returncode == 0, "warnings keep exit status 0"
    assert human.stdout.splitlines() == [
        "shop/fw.toml:4: warning: unknown key runtime.concurency; did you mean 'concurrency'?  [unknown_key]",
        "shop/fw.toml:7: warning: unknown table [extras]  [unknown_key]",
        "fw check: 2 files, 1 workflow: 0 errors, 2 warnings, 0 info",
    ]
    assert human.stderr == ""
    report = json.loads(as_json.stdout)
    assert report["counts"] == {"error": 0, "warning": 2, "info": 0}
    assert report["findings"][0] == {
        "path": "shop/fw.toml",
        "line": 4,
        "col": None,
        "severity": "warning",
        "code": "unknown_key",
        "message": "unknown key runtime.concurency; did you mean 'concurrency'?",
    }
