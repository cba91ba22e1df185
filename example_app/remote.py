"""A process without database access driving the example app over its HTTP API.

Start the server, then run this with its URL (and its token, if it has one)::

    FW_API_TOKEN=... fw serve --worker --app example_app
    FW_API_TOKEN=... python -m example_app.remote http://127.0.0.1:8787

It starts an order with the generated, typed remote client, approves it (an event sent before
the workflow waits for it is kept until then) and prints the order's typed result.
"""

from __future__ import annotations

import os
import sys
import uuid

from example_app._generated import connect
from example_app.workflows.order_pipeline_workflow import OrderParams


def main(url: str) -> None:
    run = uuid.uuid4().hex[:6]
    with connect(url, token=os.environ.get("FW_API_TOKEN")) as client:
        pipeline = client.workflows.get("order-pipeline").sync
        order = pipeline.create(
            OrderParams(order_id=f"o-{run}", amount=4200, cool_off="1 second"), id=f"remote-{run}"
        )
        order.send_event("approval", {"approved": True, "by": "remote"})
        result = order.result(timeout=60)  # an OrderResult, read over the API
        print(f"{order.id}: receipt {result.receipt_id}, shipped {result.shipped}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8787")
