"""Forwarding headers (``X-Forwarded-For``, ``X-Forwarded-Proto``, ``X-Forwarded-Host``),
trusted only from the reverse proxies named.

By default fw trusts none of them, from anyone: a client that could set them would choose its
own address (and so escape the limit on wrong tokens) and its own host (and so pass the
cross-site check). Behind a reverse proxy, name the proxy's addresses
(``fw serve --forwarded-allow-ips``, ``FW_FORWARDED_ALLOW_IPS``, or
``create_app(forwarded_allow_ips=...)``), with uvicorn's meaning: a comma-separated list of
addresses and networks (``10.0.0.5``, ``10.0.0.0/8``), or ``*`` for any. A request whose
connection comes from one of them then gets its client address from ``X-Forwarded-For`` (the
last address in it that is not itself a trusted proxy), its scheme from ``X-Forwarded-Proto``
and, for the cross-site check, its host from ``X-Forwarded-Host`` (the last value, the one the
proxy set). Headers from any other address are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

FORWARDED_HOST_KEY = "fw.forwarded_host"
"""Where a request's scope holds the ``X-Forwarded-Host`` a trusted proxy sent."""


def trusted_proxies(allow_ips: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The addresses and networks of ``allow_ips`` (comma-separated, or a list), or None
    when it names none (trust no forwarding header)."""
    if allow_ips is None:
        return None
    parts = allow_ips.split(",") if isinstance(allow_ips, str) else allow_ips
    named = tuple(part.strip() for part in parts if part.strip())
    return named or None


class ForwardedHeaders:
    """Reads the forwarding headers of requests coming from the trusted proxies alone."""

    def __init__(self, app: ASGIApp, allow_ips: tuple[str, ...]) -> None:
        self.app = app
        self._proxy = ProxyHeadersMiddleware(cast(Any, app), list(allow_ips))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        if peer and peer[0] in self._proxy.trusted_hosts:
            forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-host"]
            if forwarded:
                host = forwarded[-1].decode("latin-1").rsplit(",", 1)[-1].strip()
                scope[FORWARDED_HOST_KEY] = host or None
        await self._proxy(cast(Any, scope), cast(Any, receive), cast(Any, send))


def forwarded_host(scope: Scope) -> str | None:
    """The host a trusted proxy says the client asked for (None: none said, or not trusted)."""
    host: str | None = scope.get(FORWARDED_HOST_KEY)
    return host
