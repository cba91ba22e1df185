"""``create_app``: the ASGI app of the HTTP API and Studio, to serve or mount in your own.

from starlette.applications import Starlette
from starlette.routing import Mount
from framework.http import create_app

app = Starlette(routes=[Mount("/fw", app=create_app("shop"))])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from framework.errors import FwError
from framework.http import catalog
from framework.http.api import Api
from framework.http.openapi import openapi_document
from framework.http.problems import ApiError, as_api_error
from framework.http.proxies import ForwardedHeaders, trusted_proxies
from framework.http.routing import Endpoint, build_routes
from framework.http.security import SecurityMiddleware, is_api
from framework.http.state import DEFAULT_BODY_LIMIT, HttpSettings, HttpState, route_path
from framework.http.studio import Studio
from framework.runtime.app import App

TOKEN_ENV = "FW_API_TOKEN"
READ_TOKEN_ENV = "FW_API_READ_TOKEN"
LOG = logging.getLogger("fw.http")


def create_app(
    app: App | Path | str,
    *,
    token: str | None = None,
    read_token: str | None = None,
    body_limit: int = DEFAULT_BODY_LIMIT,
    allowed_hosts: Sequence[str] | None = None,
    forwarded_allow_ips: str | Sequence[str] | None = None,
    studio_poll: float = 1.0,
) -> Starlette:
    """The HTTP API (``/api``, ``/openapi.json``) and Studio (``/studio``) of an fw app.

    Args:
        app: the fw app, or its folder (the one holding ``fw.toml``).
        token: the API token; default ``FW_API_TOKEN``. With one, the API wants
            ``Authorization: Bearer <token>`` and Studio a login; ``""`` turns it off.
        read_token: the read-only token; default ``FW_API_READ_TOKEN``. It reads everything
            (API and Studio) and changes nothing: 403 ``read_only`` on every write.
        body_limit: the largest request body accepted, in bytes (larger: 413).
        allowed_hosts: ``Host`` header names to accept (default: any).
        forwarded_allow_ips: the reverse proxies (addresses, networks, ``*``; a list or
            comma-separated) whose ``X-Forwarded-For``, ``-Proto`` and ``-Host`` are read
            (default: no one's).
        studio_poll: seconds between refreshes of Studio pages showing live work.

    Returns:
        A Starlette app; mount it anywhere (links follow the mount prefix).
    """
    source = app if isinstance(app, App) else Path(app).resolve()
    settings = HttpSettings(
        token=(os.environ.get(TOKEN_ENV) if token is None else token) or None,
        read_token=(os.environ.get(READ_TOKEN_ENV) if read_token is None else read_token) or None,
        body_limit=body_limit,
        allowed_hosts=None if allowed_hosts is None else tuple(allowed_hosts),
        forwarded_allow_ips=trusted_proxies(forwarded_allow_ips),
        studio_poll=studio_poll,
    )
    state = HttpState(source, settings)
    studio = Studio(state)

    async def openapi(request: Request) -> Response:
        the_app = state.app
        workflows = await catalog.list_workflows(the_app)
        title = the_app.settings.app.name or the_app.package
        return JSONResponse(openapi_document(workflows, title, secured=state.secured))

    async def handle_error(request: Request, exc: Exception) -> Response:
        problem = as_api_error(exc)
        if problem is None:  # a bug: every input-driven failure has an answer of its own
            LOG.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
            problem = ApiError(
                500,
                "internal_error",
                f"the server failed ({type(exc).__name__}); its log has the traceback",
            )
        if is_api(route_path(request.scope)):
            return problem.response()
        return studio.error_page(request, problem)

    async def client_gone(request: Request, exc: Exception) -> Response:
        # Not a server error: nobody reads the answer, and nothing was done.
        LOG.debug("%s %s: the client disconnected", request.method, request.url.path)
        return Response(status_code=400)

    handlers: dict[Any, Any] = {
        kind: handle_error
        for kind in (ApiError, HTTPException, FwError, ValidationError, Exception)
    }
    handlers[ClientDisconnect] = client_gone
    endpoints = [
        *Api(state).endpoints(),
        Endpoint("GET", "/openapi.json", openapi),
        *studio.endpoints(),
    ]
    middleware = [Middleware(SecurityMiddleware, state=state)]
    if settings.forwarded_allow_ips is not None:
        middleware.insert(
            0, Middleware(ForwardedHeaders, allow_ips=settings.forwarded_allow_ips)
        )
    starlette = Starlette(
        routes=build_routes(endpoints),
        middleware=middleware,
        exception_handlers=handlers,
    )
    starlette.state.fw = state
    return starlette
