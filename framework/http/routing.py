"""Routes matched on the raw path, segment by segment, with one route per path.

Starlette matches routes on the percent-decoded path: an id holding ``/`` (sent as ``%2F``)
is then confused with a sub-resource (``w%2Foutput`` read as ``w`` + ``/output``), and its
``path`` parameters never match a newline. fw's routes match the raw path instead: each
``{param}`` is exactly one segment, percent-decoded after matching, so ``a%2Fb`` is the id
``a/b``, ``a%0Ab`` the id ``a\\nb`` and ``w%2Foutput`` the id ``w/output``. Every method a path
serves shares one route, so a method it does not serve gets 405 with an ``Allow`` header that
names all those it does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from framework.http.state import route_path

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One method of one path: ``GET /api/instances/{id}`` answered by ``handler``."""

    method: str
    path: str
    handler: Handler


class SegmentRoute(BaseRoute):
    """Every method of one path template, matched on raw path segments."""

    def __init__(self, path: str, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.template = path.split("/")[1:]
        self.handlers = dict(handlers)
        if "GET" in self.handlers:
            self.handlers.setdefault("HEAD", self.handlers["GET"])
        self.apps: dict[str, ASGIApp] = {m: request_response(h) for m, h in self.handlers.items()}

    @property
    def allow(self) -> str:
        """The ``Allow`` header of this path."""
        return ", ".join(sorted(self.handlers))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        params = match_segments(self.template, route_segments(scope))
        if params is None:
            return Match.NONE, {}
        child: Scope = {"path_params": {**scope.get("path_params", {}), **params}}
        return (Match.FULL if scope["method"] in self.handlers else Match.PARTIAL), child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.apps.get(scope["method"])
        if app is None:
            raise HTTPException(
                405,
                f"{scope['method']} is not allowed here; use {self.allow}",
                headers={"Allow": self.allow},
            )
        await app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    def __repr__(self) -> str:
        return f"SegmentRoute({self.path!r}, methods={sorted(self.handlers)})"


def build_routes(endpoints: Iterable[Endpoint]) -> list[BaseRoute]:
    """One ``SegmentRoute`` per path, in the order paths first appear."""
    grouped: dict[str, dict[str, Handler]] = {}
    for endpoint in endpoints:
        methods = grouped.setdefault(endpoint.path, {})
        if endpoint.method in methods:
            raise ValueError(f"{endpoint.method} {endpoint.path} is declared twice")
        methods[endpoint.method] = endpoint.handler
    return [SegmentRoute(path, handlers) for path, handlers in grouped.items()]


def match_segments(template: Sequence[str], segments: Sequence[str]) -> dict[str, str] | None:
    """The ``{param}`` values of ``segments`` when they fit ``template``, else None."""
    if len(template) != len(segments):
        return None
    params: dict[str, str] = {}
    for pattern, segment in zip(template, segments, strict=True):
        if pattern.startswith("{") and pattern.endswith("}"):
            if not segment:
                return None
            params[pattern[1:-1]] = segment
        elif pattern != segment:
            return None
    return params


def route_segments(scope: Scope) -> list[str]:
    """The request's path below the app's mount prefix, as percent-decoded segments.

    Read from ``raw_path``, so a ``%2F`` stays inside its segment; without one (or when the
    prefix cannot be found in it) from the decoded path.
    """
    root: str = scope.get("root_path", "")
    raw: bytes | None = scope.get("raw_path")
    if raw is not None:
        parts = raw.decode("latin-1").split("/")
        skip = root.count("/") + 1
        if unquote("/".join(parts[:skip])) == root:
            return [unquote(part) for part in parts[skip:]]
    return route_path(scope).split("/")[1:]


def raw_route_path(scope: Scope) -> str:
    """The request's path as the client wrote it (percent-encoding kept), prefix included."""
    raw: bytes | None = scope.get("raw_path")
    return raw.decode("latin-1") if raw is not None else scope["path"]
