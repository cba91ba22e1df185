"""``GET /metrics``: the Prometheus text of an app, in the API (``fw serve``, ``fw dev``) and
alone on a port of its own (``fw worker --metrics-port``).

Both follow the API's rule: with a token, a scrape sends ``Authorization: Bearer <token>``
(Prometheus: ``authorization: {credentials_file: ...}`` in its scrape config).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from framework.errors import StoreError
from framework.http.problems import ApiError
from framework.http.routing import Endpoint, build_routes
from framework.http.security import bearer_ok
from framework.runtime.liveness import worker_statuses
from framework.runtime.metrics import CONTENT_TYPE, StoreState, exposition

if TYPE_CHECKING:
    from framework.runtime.app import App

METRICS_PATH = "/metrics"
LOG = logging.getLogger("fw.http")


async def read_store_state(app: App) -> StoreState:
    """Instances by status, the backlog due now and the workers alive, from the store."""
    try:
        store = await app.store()
        counts = await store.count_by_status()
        backlog = await store.count_due(app.clock.now())
        alive = [w for w in await worker_statuses(app) if w.state != "dead"]
    except StoreError as exc:
        LOG.warning("metrics: cannot read the store: %s", exc)
        return StoreState(up=False, workers_alive=app.local_workers)
    return StoreState(True, counts, backlog, len(alive))


async def metrics_response(app: App) -> Response:
    """This process's metrics and the store's gauges, as Prometheus reads them."""
    state = await read_store_state(app)
    return Response(exposition(app.metrics, state), media_type=CONTENT_TYPE)


def create_metrics_app(app: App, *, token: str | None, read_token: str | None = None) -> Starlette:
    """An ASGI app serving only ``/metrics`` (a worker's ``--metrics-port``); with ``token``,
    a scrape must send it, or the read-only ``read_token``, as a bearer token (else 401)."""
    accepted = [t for t in (token, read_token) if t]

    async def metrics(request: Request) -> Response:
        if accepted and not any(bearer_ok(request, t) for t in accepted):
            return ApiError(
                401,
                "unauthorized",
                "send the API token: `Authorization: Bearer $FW_API_TOKEN` (or $FW_API_READ_TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            ).response()
        return await metrics_response(app)

    return Starlette(routes=build_routes([Endpoint("GET", METRICS_PATH, metrics)]))
