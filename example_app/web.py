"""The example app's own web page: an order's status, live, with fw's API and Studio mounted
under ``/fw``.

Run it beside a worker::

    fw worker --app example_app &
    uvicorn example_app.web:app --port 8000

then start an order (``fw start order-pipeline --app example_app --id o-1 --params
'{"order_id": "o-1", "amount": 4200}'``) and open http://127.0.0.1:8000/orders/o-1: the page
follows the order until it ends. Studio is at http://127.0.0.1:8000/fw/studio.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.templating import Jinja2Templates

from example_app._generated import workflows
from framework import InstanceNotFoundError, workflow_status
from framework.http import LiveStatusMiddleware, create_app

APP_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=APP_DIR / "templates")


async def order_page(request: Request) -> Response:
    """An order's progress; the page refreshes itself every 2 seconds until the order ends."""
    order_id = request.path_params["id"]
    try:
        pipeline = workflows.get("order-pipeline")  # the output is typed: OrderResult
        order = await workflow_status(pipeline, order_id, poll="2s", app=APP_DIR)
    except InstanceNotFoundError:
        return templates.TemplateResponse(
            request, "order_missing.html", {"order_id": order_id}, status_code=404
        )
    return templates.TemplateResponse(request, "order.html", {"order": order})


app = Starlette(
    routes=[
        Route("/orders/{id}", order_page),
        Mount("/fw", app=create_app(APP_DIR)),
    ],
    middleware=[Middleware(LiveStatusMiddleware, fw_app=APP_DIR)],
)
