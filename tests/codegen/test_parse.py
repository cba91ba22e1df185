"""Reading workflow files with libcst: forms, names, types and their imports, and problems."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from framework.codegen.model import ANY, FileScan, TypeImport, WorkflowSpec
from framework.codegen.parse import module_name_for, scan_workflow_file, statement_line

HEADER = "from framework import WorkflowContext, WorkflowEntrypoint, workflow\n"


def scan(source: str, file: str = "workflows/order_pipeline_workflow.py") -> FileScan:
    code = textwrap.dedent(source).lstrip("\n").encode()
    return scan_workflow_file(code, file, module_name_for("shop", file))


def spec(source: str, file: str = "workflows/order_pipeline_workflow.py") -> WorkflowSpec:
    found = scan(source, file)
    assert found.problems == (), found.problems
    assert found.workflow is not None
    return found.workflow


def problem_lines(source: str, file: str = "workflows/order_pipeline_workflow.py") -> list[str]:
    found = scan(source, file)
    assert found.workflow is None
    return [f"{p.line}:{p.col}:{p.code}" for p in found.problems]


@pytest.mark.parametrize(
    ("file", "name", "binding", "class_name", "module"),
    [
        ("migration_workflow.py", "migration", "MIGRATION_WORKFLOW", "MigrationWorkflow",
         "shop.migration_workflow"),
        ("workflows/data_sync_workflow.py", "data-sync", "DATA_SYNC_WORKFLOW", "DataSyncWorkflow",
         "shop.workflows.data_sync_workflow"),
        ("workflows/billing/refund_workflow.py", "refund", "REFUND_WORKFLOW", "RefundWorkflow",
         "shop.workflows.billing.refund_workflow"),
    ],
)
def test_names_derive_from_the_file(
    file: str, name: str, binding: str, class_name: str, module: str
) -> None:
    found = spec(HEADER + "@workflow\nasync def run(ctx: WorkflowContext[int]) -> str: ...\n", file)
    assert (found.name, found.binding, found.class_name) == (name, binding, class_name)
    assert (found.module, found.file, found.attribute) == (module, file, "run")
    assert found.form == "function"


def test_a_literal_name_overrides_and_derives_binding_and_class() -> None:
    found = spec(HEADER + '@workflow(name="payments", on_failure=None)\nasync def pay(ctx): ...\n')
    assert (found.name, found.binding, found.class_name) == (
        "payments", "PAYMENTS_WORKFLOW", "PaymentsWorkflow"
    )
    assert spec(HEADER + "@workflow(name=None)\nasync def pay(ctx): ...\n").name == "order-pipeline"


@pytest.mark.parametrize(
    "declaration",
    [
        "from framework import workflow\n@workflow\nasync def flow(ctx): ...",
        "from framework import workflow\n@workflow()\nasync def flow(ctx): ...",
        "from framework import workflow as wf\n@wf\nasync def flow(ctx): ...",
        "import framework\n@framework.workflow\nasync def flow(ctx): ...",
        "import framework as fw\n@fw.workflow(name='order-pipeline')\nasync def flow(ctx): ...",
        "from framework.runtime.definition import workflow\n@workflow\nasync def flow(ctx): ...",
        "from framework import *\n@workflow\nasync def flow(ctx): ...",
    ],
)
def test_function_form_decorator_spellings(declaration: str) -> None:
    found = spec(declaration + "\n")
    assert (found.attribute, found.params, found.output) == ("flow", ANY, ANY)


def test_class_form_reads_generic_arguments_and_name_override() -> None:
    found = spec(
        """
        from framework import WorkflowEntrypoint, workflow

        class Params: ...

        @workflow(name="migration")
        class Migrate(WorkflowEntrypoint[Params, "list[int]"]):
            async def run(self, event, step): ...
        """
    )
    assert (found.name, found.attribute, found.form) == ("migration", "Migrate", "class")
    assert found.line == 6
    assert found.params.expression == "_migration__Params"
    assert found.output.expression == "list[int]"
    bare = spec("import framework\nclass Migrate(framework.WorkflowEntrypoint): ...\n")
    assert (bare.params, bare.output) == (ANY, ANY)


def test_types_defined_in_the_file_import_from_its_module_under_unique_aliases() -> None:
    found = spec(
        """
        from __future__ import annotations
        from typing import TYPE_CHECKING
        from framework import WorkflowContext, workflow

        class Params: ...

        if TYPE_CHECKING:
            Result = dict[str, Params]
        else:
            Result = dict

        @workflow
        async def order_pipeline(ctx: WorkflowContext[Params]) -> Result | None: ...
        """
    )
    module = "shop.workflows.order_pipeline_workflow"
    assert found.params.expression == "_order_pipeline__Params"
    assert found.params.imports == (TypeImport(module, "Params", "_order_pipeline__Params"),)
    assert found.output.expression == "_order_pipeline__Result | None"
    assert found.output.imports[0].statement == (
        f"from {module} import Result as _order_pipeline__Result"
    )


def test_imported_types_are_imported_again_relative_made_absolute() -> None:
    found = spec(
        """
        import collections.abc
        import shop.models as m
        from .. import billing
        from .models import Item as It
        from framework import WorkflowContext, workflow

        @workflow
        async def refund(
            ctx: WorkflowContext[list[It]],
        ) -> "collections.abc.Mapping[str, m.Total] | billing.Receipt": ...
        """,
        "workflows/billing/refund_workflow.py",
    )
    assert found.params.expression == "list[_refund__It]"
    assert [i.statement for i in found.params.imports] == [
        "from shop.workflows.billing.models import Item as _refund__It"
    ]
    assert found.output.expression == (
        "_refund__collections_abc.Mapping[str, _refund__m.Total] | _refund__billing.Receipt"
    )
    assert sorted(i.statement for i in found.output.imports) == [
        "from shop.workflows import billing as _refund__billing",
        "import collections.abc as _refund__collections_abc",
        "import shop.models as _refund__m",
    ]


def test_builtins_literal_and_annotated() -> None:
    found = spec(
        """
        from typing import Annotated, Literal
        import typing as t
        from framework import WorkflowContext, workflow

        class Color: ...

        @workflow
        async def order_pipeline(
            ctx: WorkflowContext[dict[str, list[int | None]]],
        ) -> Annotated[Literal["a", "b"], Field(gt=0)] | t.Literal[Color.RED]:  # a comment
            ...
        """
    )
    assert found.params.expression == "dict[str, list[int | None]]"
    assert found.params.imports == ()
    assert found.output.expression == (
        "_order_pipeline__Literal['a', 'b'] | "
        "_order_pipeline__t.Literal[_order_pipeline__Color.RED]"
    )


def test_missing_or_bare_annotations_are_any() -> None:
    found = spec(HEADER + "@workflow\nasync def order_pipeline(ctx: WorkflowContext): ...\n")
    assert (found.params, found.output) == (ANY, ANY)
    found = spec(f"import typing\n{HEADER}@workflow\nasync def f(ctx: typing.Any) -> int: ...\n")
    assert (found.params, found.output.expression) == (ANY, "int")


def test_two_workflows_with_a_params_class_each_never_collide() -> None:
    source = f"{HEADER}class Params: ...\n@workflow\nasync def f(ctx: WorkflowContext[Params]): 1"
    first = spec(source, "workflows/a_workflow.py")
    second = spec(source, "workflows/b_workflow.py")
    assert first.params.expression == "_a__Params"
    assert second.params.expression == "_b__Params"


def test_statement_line_agrees_with_position_metadata() -> None:
    source = textwrap.dedent(
        '''
        # leading comment

        """Docstring."""
        import x

        @decorator(
            1,
        )

        # between decorator and def
        @other
        async def f(): ...


        class C(Base): pass
        '''
    )
    module = cst.parse_module(source)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    for index, statement in enumerate(module.body):
        if isinstance(statement, cst.FunctionDef | cst.ClassDef):
            expected = positions[statement.name].start.line
            assert statement_line(module, index) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\ndef f(:\n  pass\n", ["2:7:syntax_error"]),
        ("x = (1,\n", ["1:5:syntax_error"]),
        ("x = 1\n", ["1:1:no_workflow"]),
        ("from framework import workflow\ndef run(ctx): ...\n", ["1:1:no_workflow"]),
        (
            HEADER + "@workflow\nasync def a(ctx): ...\n\n@workflow\nasync def b(ctx): ...\n",
            ["3:1:multiple_workflows", "6:1:multiple_workflows"],
        ),
        (HEADER + "N = 'x'\n@workflow(name=N)\nasync def a(ctx): ...\n", ["3:16:non_literal_name"]),
        (HEADER + "@workflow(name=f'x')\nasync def a(ctx): ...\n", ["2:16:non_literal_name"]),
        (HEADER + "@workflow('x')\nasync def a(ctx): ...\n", ["2:11:non_literal_name"]),
        (HEADER + "@workflow(name='Bad_Name')\nasync def a(ctx): ...\n", ["2:16:invalid_name"]),
        (HEADER + "@workflow\ndef a(ctx): ...\n", ["3:5:not_async"]),
        (HEADER + "@workflow\nasync def a(): ...\n", ["3:11:invalid_signature"]),
        (HEADER + "@workflow\nasync def a(ctx: int): ...\n", ["3:18:invalid_signature"]),
        (
            HEADER + "@workflow\nasync def a(ctx: WorkflowContext[Missing]) -> list['Gone']: ...\n",
            ["3:34:unresolved_type", "3:52:unresolved_type"],
        ),
        (
            HEADER + "from .. import deep\n@workflow\nasync def a(ctx: WorkflowContext[deep.X]): 1",
            ["2:1:unresolved_type"],
        ),
        (HEADER + "class A(WorkflowEntrypoint[int]): ...\n", ["2:9:invalid_signature"]),
        (HEADER + "@workflow\nclass A(WorkflowEntrypoint[int, int]): 1", ["2:1:invalid_signature"]),
    ],
)
def test_problems_name_line_and_column(source: str, expected: list[str]) -> None:
    assert problem_lines(source, "order_workflow.py") == expected


def test_file_name_problems_have_no_line() -> None:
    found = scan(HEADER + "@workflow\nasync def a(ctx): ...\n", "workflows/bad__name_workflow.py")
    assert [(p.line, p.code) for p in found.problems] == [(None, "invalid_name")]
    assert "derived from the file name" in found.problems[0].message
    found = scan("x = 1\n", "my-stuff/order_workflow.py")
    assert [(p.line, p.code) for p in found.problems] == [(None, "invalid_module_path")]
    assert "'my-stuff' is not a Python identifier" in found.problems[0].message


def test_star_imports_are_named_in_the_error() -> None:
    source = f"{HEADER}from .models import *\n@workflow\nasync def a(ctx: WorkflowContext[X]): 1"
    found = scan(source)
    assert "import *" in found.problems[0].message
