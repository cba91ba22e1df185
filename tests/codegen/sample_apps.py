"""Sample apps for the codegen tests: every way to declare a workflow and type it.

``SHOP`` uses both forms, a name override, types defined locally, imported absolutely and
relatively, ``import a.b as m``, builtins, ``X | None``, ``list[Item]``, TypedDicts,
dataclasses, pydantic models, ``Literal``, string annotations, and two workflows that each
define a class named ``Params``.
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

SAMPLE_APPS = {"shop": SHOP, "solo": SOLO, "empty": EMPTY}


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
