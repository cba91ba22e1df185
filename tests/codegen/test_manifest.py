"""Reconciling the [[workflows]] tables of fw.toml: in place, comments and user keys kept."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

from framework.codegen import manifest, run_codegen
from framework.codegen.manifest import reconcile_manifest
from framework.codegen.model import ANY, WorkflowSpec
from framework.naming import binding_for, class_name_for, identifier_for
from tests.codegen.sample_apps import write_app, write_file

USER_FILE = textwrap.dedent(
    """\
    # The shop app.
    [app]
    name = "shop"  # shown in Studio

    [codegen]
    exclude = ["scripts/**"]

    # Workflows (managed by fw codegen).
    [[workflows]]                        # keys you add are kept
    name = "order-pipeline"
    binding = "STALE"  # fixed by codegen, comment kept
    retention = "7 days"   # a user key

    # Comment heading refund.
    [[workflows]]
    name = "refund"
    concurrency = 3
    """
)


def spec(name: str, file: str | None = None) -> WorkflowSpec:
    ident = identifier_for(name)
    return WorkflowSpec(
        name=name,
        binding=binding_for(name),
        class_name=class_name_for(name),
        module=f"shop.workflows.{ident}_workflow",
        attribute=ident,
        file=file or f"workflows/{ident}_workflow.py",
        line=1,
        form="function",
        params=ANY,
        output=ANY,
    )


def reconcile(text: str, *names: str) -> str:
    new, problems = reconcile_manifest(text, [spec(name) for name in names])
    assert problems == []
    again, _ = reconcile_manifest(new, [spec(name) for name in names])
    assert again == new, "reconciling twice must change nothing"
    return new


def tables(text: str) -> list[dict[str, object]]:
    return list(tomllib.loads(text).get("workflows", []))


def test_derived_keys_are_updated_in_place_keeping_user_keys_and_comments() -> None:
    text = reconcile(USER_FILE, "order-pipeline", "refund")
    assert tables(text) == [
        {**spec("order-pipeline").manifest_keys(), "retention": "7 days"},
        {**spec("refund").manifest_keys(), "concurrency": 3},
    ]
    for comment in (
        "# The shop app.",
        '# shown in Studio',
        "# Workflows (managed by fw codegen).",
        "[[workflows]]                        # keys you add are kept",
        'binding = "ORDER_PIPELINE_WORKFLOW"  # fixed by codegen, comment kept',
        'retention = "7 days"   # a user key',
    ):
        assert comment in text
    assert '# Comment heading refund.\n[[workflows]]\nname = "refund"' in text
    order = text[text.index('name = "order-pipeline"') :]
    assert order.index("file =") < order.index("retention ="), "derived keys stay together"


def test_new_workflows_are_added_in_sorted_place_and_vanished_ones_removed() -> None:
    text = reconcile(USER_FILE, "aaa", "order-pipeline", "payments", "zzz")
    assert [t["name"] for t in tables(text)] == ["aaa", "order-pipeline", "payments", "zzz"]
    assert 'name = "refund"' not in text and "concurrency" not in text
    assert "# Comment heading refund." in text, "comments are kept even when their table goes"
    assert "\n\n[[workflows]]\nname = \"payments\"" in text


def test_a_renamed_workflow_keeps_its_table_by_file() -> None:
    before = reconcile(USER_FILE, "order-pipeline", "refund")
    renamed = spec("orders", file="workflows/order_pipeline_workflow.py")
    after, _ = reconcile_manifest(before, [renamed, spec("refund")])
    assert tables(after)[0] == {**renamed.manifest_keys(), "retention": "7 days"}
    assert "# fixed by codegen, comment kept" in after


def test_a_fresh_file_gets_sorted_tables_and_removing_all_removes_the_array() -> None:
    fresh = '[app]\nname = "shop"\n\n# The tables below are managed by fw codegen.\n'
    text = reconcile(fresh, "refund", "order-pipeline")
    assert text.startswith(fresh + "\n[[workflows]]\nname = \"order-pipeline\"\n")
    assert [t["name"] for t in tables(text)] == ["order-pipeline", "refund"]
    emptied = reconcile(text)
    assert "workflows" not in tomllib.loads(emptied)
    assert emptied.startswith(fresh)
    assert reconcile(fresh) == fresh


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('workflows = ["a"]\n', 1, "must be written as [[workflows]] tables"),
        ('[app]\nname = "x"\n\n[[workflows]]\nbinding = "X"\n', 4, "has no string `name`"),
        ('[[workflows]]\nname = "a"\n\n[[workflows]]\nname = "a"\n', 4, "a second [[workflows]]"),
    ],
)
def test_malformed_tables_are_problems_with_their_line(text: str, line: int, message: str) -> None:
    new, problems = reconcile_manifest(text, [spec("a")])
    assert new == text
    assert [(p.file, p.line, p.code) for p in problems] == [("fw.toml", line, "invalid_manifest")]
    assert message in problems[0].message


def test_unchanged_fw_toml_skips_tomlkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_app(tmp_path, "shop", {"__init__.py": "", "workflows/a_workflow.py": WORKFLOW})
    assert run_codegen(root).ok
    calls: list[int] = []
    real = manifest.reconcile_manifest

    def counting(text: str, workflows: list[WorkflowSpec]) -> tuple[str, list[object]]:
        calls.append(1)
        return real(text, workflows)  # type: ignore[return-value]

    monkeypatch.setattr(manifest, "reconcile_manifest", counting)
    assert run_codegen(root).ok
    assert calls == [], "nothing changed, so tomlkit is not run"
    write_file(root / "workflows/b_workflow.py", WORKFLOW)
    assert run_codegen(root).ok
    assert calls == [1]
    with (root / "fw.toml").open("a") as handle:
        handle.write("# a new comment\n")
    assert run_codegen(root).ok
    assert calls == [1, 1], "fw.toml changed, so it is reconciled again"
    assert [t["name"] for t in tables((root / "fw.toml").read_text())] == ["a", "b"]


WORKFLOW = """
    from framework import workflow

    @workflow
    async def run(ctx): ...
"""
