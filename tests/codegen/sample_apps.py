"""Sample apps for the codegen tests: every way to declare a workflow and type it.

``SHOP`` uses both forms, a name override, types defined locally, imported absolutely and
relatively, ``import a.b as m``, builtins, ``X | None``, ``list[Item]``, TypedDicts,
dataclasses, pydantic models, ``Literal``, string annotations, and two workflows that each
define a class named ``Params``.

``FAMILY`` uses typed children (``ctx.parallel`` over a list and a tuple, ``ctx.spawn``) in
both forms, events with and without a model, and events whose type is computed. ``LOOSE``
has a type error of its own (a bare ``dict``), which must be reported in its file only.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

SHOP: dict[str, str] = {
    "__init__.py": "",
    "workflows/__init__.py": "",
    "workflows/models.py": """
        from dataclasses import dataclass
        from typing import TypedDict


        @dataclass
        class Item:
            sku: str
            quantity: int


        @dataclass
        class RefundParams:
            order_id: str
            amount: int


        class RefundResult(TypedDict):
            refunded: int
            currency: str
    """,
    "workflows/order_pipeline_workflow.py": """
        from __future__ import annotations

        from pydantic import BaseModel

        from framework import WorkflowContext, workflow


        class OrderParams(BaseModel):
            order_id: str
            amount: int


        class OrderResult(BaseModel):
            receipt_id: str


        async def charge(order_id: str, amount: int) -> str:
            return f"r-{order_id}-{amount}"


        @workflow
        async def order_pipeline(ctx: WorkflowContext[OrderParams]) -> OrderResult:
            receipt = await ctx.step.do("charge", charge, ctx.params.order_id, ctx.params.amount)
            return OrderResult(receipt_id=receipt)
    """,
    "workflows/billing/__init__.py": "",
    "workflows/billing/refund_workflow.py": """
        from framework import WorkflowEntrypoint, WorkflowEvent, WorkflowStep

        from ..models import RefundParams, RefundResult


        class RefundWorkflow(WorkflowEntrypoint[RefundParams, RefundResult]):
            async def run(
                self, event: WorkflowEvent[RefundParams], step: WorkflowStep
            ) -> RefundResult:
                return {"refunded": event.payload.amount, "currency": "EUR"}
    """,
    "workflows/data_sync_workflow.py": """
        import framework as fw
        from shop.workflows.models import Item


        @fw.workflow
        async def data_sync(ctx: "fw.WorkflowContext[dict[str, int]]") -> "list[Item] | None":
            if not ctx.params:
                return None
            return [Item(sku, quantity) for sku, quantity in ctx.params.items()]
    """,
    "workflows/charge_workflow.py": """
        from typing import Literal, TypedDict

        from framework import WorkflowContext
        from framework import workflow as declare


        class Params(TypedDict):
            card: str
            mode: Literal["live", "test"]


        @declare(name="payments")
        async def charge(ctx: WorkflowContext[Params]) -> Literal["ok", "declined"]:
            return "ok" if ctx.params["mode"] == "test" else "declined"
    """,
    "workflows/notify_workflow.py": """
        from dataclasses import dataclass
        from typing import TYPE_CHECKING

        from framework import WorkflowContext, workflow

        if TYPE_CHECKING:
            import shop.workflows.models as m


        @dataclass
        class Params:
            to: str
            items: "list[m.Item]"


        @workflow()
        async def notify(ctx: WorkflowContext[Params]) -> None:
            ctx.log.info("notify", to=ctx.params.to)
    """,
    "workflows/legacy_workflow.py": """
        from typing import Any

        from framework import workflow


        @workflow
        async def legacy(ctx: Any) -> Any:
            return ctx.params
    """,
}

SOLO: dict[str, str] = {
    "__init__.py": "",
    "workflows/__init__.py": "",
    "workflows/solo_workflow.py": """
        from framework import WorkflowContext, workflow


        @workflow
        async def solo(ctx: WorkflowContext[int]) -> str:
            return str(ctx.params)
    """,
}

EMPTY: dict[str, str] = {"__init__.py": "", "workflows/__init__.py": ""}

FAMILY: dict[str, str] = {
    "__init__.py": "",
    "workflows/__init__.py": "",
    "workflows/models.py": """
        from dataclasses import dataclass

        from pydantic import BaseModel


        class TagParams(BaseModel):
            url: str


        @dataclass
        class ResizeParams:
            url: str
            width: int


        class Approval(BaseModel):
            approved: bool
            by: str = ""


        class BatchParams(BaseModel):
            urls: list[str]
    """,
    "workflows/tag_workflow.py": """
        from framework import WorkflowContext, workflow

        from .models import TagParams


        @workflow
        async def tag(ctx: WorkflowContext[TagParams]) -> list[str]:
            return [ctx.params.url]
    """,
    "workflows/resize_workflow.py": """
        from framework import WorkflowContext, workflow

        from .models import ResizeParams


        @workflow
        async def resize(ctx: WorkflowContext[ResizeParams]) -> int:
            return ctx.params.width
    """,
    "workflows/batch_workflow.py": """
        from typing import assert_type

        from family._generated import workflows
        from framework import Instance, WorkflowContext, branch, workflow

        from .models import BatchParams, ResizeParams, TagParams


        @workflow
        async def batch(ctx: WorkflowContext[BatchParams]) -> dict[str, list[str]]:
            tag = workflows.get("tag")
            tags = await ctx.parallel([tag.branch({"url": url}) for url in ctx.params.urls])
            assert_type(tags, list[list[str]])
            pair = await ctx.parallel(
                (tag.branch({"url": "a"}), workflows.get("resize").branch(ResizeParams("a", 9)))
            )
            assert_type(pair, tuple[list[str], int])
            review = await ctx.spawn(workflows.get("tag"), {"url": "a"})
            assert_type(review, Instance[TagParams, list[str]])
            loose = await ctx.parallel([branch("tag", {"url": "b"})])
            return {"tags": [t for ts in tags for t in ts], "loose": [str(x) for x in loose]}
    """,
    "workflows/review_workflow.py": """
        from framework import WorkflowEntrypoint, WorkflowEvent, WorkflowStep

        from family._generated import workflows

        from .models import Approval, TagParams


        class ReviewWorkflow(WorkflowEntrypoint[TagParams, bool]):
            async def run(self, event: WorkflowEvent[TagParams], step: WorkflowStep) -> bool:
                (labels,) = await self.ctx.parallel(
                    (workflows.get("tag").branch(TagParams(url=event.payload.url)),)
                )
                note = await step.wait_for_event("note", type="comment", timeout="1 day")
                verdict = await step.wait_for_event("approve", type="approval", model=Approval)
                return verdict.approved and bool(labels) and note is not None
    """,
    "workflows/inbox_workflow.py": """
        from framework import WorkflowContext, workflow


        @workflow
        async def inbox(ctx: WorkflowContext[list[str]]) -> int:
            count = 0
            for kind in ctx.params:
                await ctx.step.wait_for_event(f"wait-{kind}", type=kind)
                count += 1
            return count
    """,
}

LOOSE: dict[str, str] = {
    "__init__.py": "",
    "workflows/__init__.py": "",
    "workflows/loose_workflow.py": """
        from framework import WorkflowContext, workflow


        # assert-type-error-pyright: 'Argument type is partially unknown'
        @workflow
        # assert-type-error-mypy: 'Missing type (parameters|arguments) for generic type "dict"'
        # assert-type-error-pyright: 'Expected type arguments for generic class "dict"'
        async def loose(ctx: WorkflowContext[dict]) -> int:
            return 1
    """,
}

SAMPLE_APPS = {"shop": SHOP, "solo": SOLO, "empty": EMPTY, "family": FAMILY, "loose": LOOSE}


def write_app(parent: Path, name: str, files: dict[str, str], toml: str = "") -> Path:
    """Write app ``name`` under ``parent`` (fw.toml plus ``files``) and return its root."""
    root = parent / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "fw.toml").write_text(f'[app]\nname = "{name}"\n' + textwrap.dedent(toml))
    for relative, source in files.items():
        write_file(root / relative, source)
    return root


def write_file(path: Path, source: str) -> None:
    """Write dedented ``source`` to ``path``, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"))
