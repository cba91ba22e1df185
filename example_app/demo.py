"""``make demo``: run the example app end to end on SQLite, in this process.

Starts a worker, an order (which waits for an approval event), an image batch (which fans
out into child instances) and a migration (class form), then prints each final status and
output. Run it with ``python -m example_app.demo`` from the repository root.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from example_app._generated import env, workflows
from example_app.workflows.order_pipeline_workflow import Approval, OrderParams
from framework import Worker


async def main() -> None:
    run = uuid.uuid4().hex[:6]
    async with Worker("example_app"):
        started = time.perf_counter()
        order = await workflows.get("order-pipeline").create(
            OrderParams(order_id=f"o-{run}", amount=4200, cool_off="1 second"), id=f"order-{run}"
        )
        batch = await env.IMAGE_BATCH_WORKFLOW.create(
            {"urls": ["https://example.com/a.png", "https://example.com/b.png"]}, id=f"batch-{run}"
        )
        migration = await workflows.get("migration").create({"source_id": "legacy", "batches": 2})

        while (await order.status()).status not in ("waiting", "errored"):
            await asyncio.sleep(0.05)
        # Type-checked: a misspelled type, or a payload not an Approval, is a mypy/pyright error.
        await order.send_event("approval", Approval(approved=True, by="demo"))

        for instance in (order, batch, migration):
            output = await instance.result(timeout=60)
            status = await instance.status()
            steps = await instance.steps()
            print(f"{instance.workflow} {instance.id}: {status.status}")
            print(f"  output: {json.dumps(_plain(output))}")
            print(f"  steps:  {', '.join(f'{s.name}({s.kind})' for s in steps)}")
        print(f"done in {time.perf_counter() - started:.1f} s")


def _plain(value: object) -> object:
    from pydantic import TypeAdapter

    return TypeAdapter(object).dump_python(value, mode="json")


if __name__ == "__main__":
    asyncio.run(main())
