"""Codegen reads a workflow's concurrency literals (decorator or class attributes) into its
entrypoint, and refuses values it cannot use, with their line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apps import write_app
from tests.codegen.test_parse import HEADER, problem_lines, spec


def test_decorator_literals_are_read() -> None:
    found = spec(
        HEADER + '@workflow(concurrency=2, concurrency_key="customer.id")\n'
        "async def run(ctx: WorkflowContext[int]) -> str: ...\n"
    )
    assert (found.concurrency, found.concurrency_key) == (2, "customer.id")
    plain = spec(HEADER + "@workflow\nasync def run(ctx: WorkflowContext[int]) -> str: ...\n")
    assert (plain.concurrency, plain.concurrency_key) == (None, None)


def test_class_attributes_are_read_and_the_decorator_wins() -> None:
    found = spec(
        HEADER + "from typing import ClassVar\n"
        "class Run(WorkflowEntrypoint[int, str]):\n"
        "    concurrency: ClassVar[int | None] = 4\n"
        '    concurrency_key = "user"\n'
        "    async def run(self, event, step) -> str: ...\n"
    )
    assert (found.concurrency, found.concurrency_key) == (4, "user")
    decorated = spec(
        HEADER + "@workflow(concurrency=1)\n"
        "class Run(WorkflowEntrypoint[int, str]):\n"
        "    concurrency = 4\n"
        "    async def run(self, event, step) -> str: ...\n"
    )
    assert decorated.concurrency == 1


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("concurrency=0", ["2:23:invalid_concurrency"]),
        ("concurrency=LIMIT", ["2:23:invalid_concurrency"]),
        ("concurrency=-1", ["2:23:invalid_concurrency"]),
        ('concurrency_key="a b"', ["2:27:invalid_concurrency"]),
        ("concurrency_key=KEY", ["2:27:invalid_concurrency"]),
    ],
)
def test_values_codegen_cannot_use_are_problems_at_their_place(
    options: str, expected: list[str]
) -> None:
    source = (
        HEADER + f"@workflow({options})\nasync def run(ctx: WorkflowContext[int]) -> str: ...\n"
    )
    assert problem_lines(source) == expected


def test_the_entrypoint_carries_the_limit(tmp_path: Path) -> None:
    root = write_app(
        tmp_path,
        {
            "limited_workflow.py": HEADER + '@workflow(concurrency=3, concurrency_key="user")\n'
            "async def limited(ctx: WorkflowContext[dict[str, str]]) -> None: ...\n"
        },
    )
    generated = (root / "_generated" / "entrypoints.py").read_text()
    assert '    concurrency = 3\n    concurrency_key = "user"\n' in generated
