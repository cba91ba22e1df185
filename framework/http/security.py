"""Who may do what: the API token, Studio's login cookie, CSRF tokens, body limits, and
``Host`` and ``Origin`` checks.

- With a token, the API wants ``Authorization: Bearer <token>`` (a Studio login cookie also
  reads, never writes), and Studio asks for the token once on a login form, then keeps an
  HttpOnly, SameSite cookie naming a revocable session (``sessions``). Wrong tokens are
  limited per client (``throttle``): past the limit, 429 with ``Retry-After``.
- The read-only token (``FW_API_READ_TOKEN``), as a bearer token or a Studio login, reads
  everything and changes nothing: every other method is 403 ``read_only`` (a Studio page
  says so), whatever the endpoint, before it runs. The request's ``ACCESS_KEY`` in its scope
  tells endpoints which access it has, so Studio hides the forms a reader may not send.
- One ``Host`` header per request (two: 400), and forwarding headers (``X-Forwarded-*``)
  only from the trusted proxies (``proxies``): by default from no one.
- Every Studio form carries a CSRF token: an HMAC, under the server's secret, of a random value
  kept in a cookie. Writes coming from another site (an ``Origin`` or ``Sec-Fetch-Site`` that is
  not this one) are refused on the API too, so a web page cannot drive a local server.
- A body over the limit gets 413 before it is read (``Content-Length``) or while it is.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from html import escape
from typing import cast
from urllib.parse import urlencode, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framework.http.problems import ApiError
from framework.http.proxies import forwarded_host
from framework.http.routing import raw_route_path
from framework.http.sessions import SESSION_LIFETIME, Access, session_access
from framework.http.state import HttpState, route_path, url
from framework.http.throttle import client_address

SESSION_COOKIE = "fw_session"
CSRF_COOKIE = "fw_csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = ("/studio/login", "/studio/static/")
READ_ONLY_WRITES = ("/studio/logout",)
"""The only writes a read-only session may send."""
ACCESS_KEY = "fw.access"
"""Where the request's scope holds its ``Access`` (``full`` without any token)."""
READ_ONLY_MESSAGE = (
    "this token can read but not change anything (FW_API_READ_TOKEN); starting, controlling "
    "and sending events need the full token (FW_API_TOKEN)"
)
_CSRF_NONCE = re.compile(r"[0-9a-f]{32}")


class SecurityMiddleware:
    """Host and origin checks, authentication and the body limit, before any endpoint runs."""

    def __init__(self, app: ASGIApp, state: HttpState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = route_path(scope)
        refusal = (
            self._check_host(request, path)
            or self._check_origin(request, path)
            or self._check_length(request, path)
            or await self._check_auth(request, path)
        )
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _limited(receive, self.state.settings.body_limit), send)

    def _check_host(self, request: Request, path: str) -> Response | None:
        if sum(name == b"host" for name, _ in request.scope["headers"]) > 1:
            return refuse(path, 400, "invalid_host", "send one Host header, not several")
        allowed = self.state.settings.allowed_hosts
        if allowed is None or "*" in allowed:
            return None
        host = host_name(request.headers.get("host", ""))
        if host in allowed:
            return None
        return refuse(path, 400, "invalid_host", f"host {host!r} is not served here")

    def _check_origin(self, request: Request, path: str) -> Response | None:
        if request.method in SAFE_METHODS or same_site(request):
            return None
        return refuse(path, 403, "cross_site", "a write from another site was refused")

    async def _check_auth(self, request: Request, path: str) -> Response | None:
        request.scope[ACCESS_KEY] = "full"
        settings = self.state.settings
        if not self.state.secured or path.startswith(PUBLIC_PATHS):
            return None
        if "authorization" in request.headers:
            client = client_address(request)
            wait = self.state.attempts.retry_after(client)
            if wait is not None:
                return too_many_attempts(path, wait)
            if settings.token and bearer_ok(request, settings.token):
                return None
            if settings.read_token and bearer_ok(request, settings.read_token):
                return self._read_only(request, path)
            self.state.attempts.record_failure(client)
        access = await session_of(self.state, request)
        if is_api(path):
            if access is not None and request.method in SAFE_METHODS:
                request.scope[ACCESS_KEY] = access
                return None
            return ApiError(
                401,
                "unauthorized",
                "send the API token: `Authorization: Bearer $FW_API_TOKEN` (or "
                "$FW_API_READ_TOKEN to read only)",
                headers={"WWW-Authenticate": "Bearer"},
            ).response()
        if access == "read":
            return self._read_only(request, path)
        if access is not None:
            return None
        if request.method in SAFE_METHODS:
            here = raw_route_path(request.scope)
            if request.url.query:
                here += f"?{request.url.query}"
            target = url(request, "/studio/login") + "?" + urlencode({"next": here})
            return RedirectResponse(target, status_code=303)
        return HTMLResponse("<p>Log in to Studio first.</p>", status_code=401)

    @staticmethod
    def _read_only(request: Request, path: str) -> Response | None:
        """Let a read-only caller read (and log out of Studio); refuse anything else."""
        request.scope[ACCESS_KEY] = "read"
        if request.method in SAFE_METHODS or path in READ_ONLY_WRITES:
            return None
        return refuse(path, 403, "read_only", READ_ONLY_MESSAGE)

    def _check_length(self, request: Request, path: str) -> Response | None:
        length = request.headers.get("content-length")
        limit = self.state.settings.body_limit
        if length is None:
            return None
        if not re.fullmatch(r"[0-9]{1,20}", length.strip()):
            return refuse(
                path, 400, "invalid_content_length", f"Content-Length {length[:40]!r} is not a size"
            )
        if int(length) > limit:
            return refuse(path, 413, "body_too_large", body_limit_message(limit))
        return None


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, body_limit_message(limit))
        return message

    return receive_limited


def body_limit_message(limit: int) -> str:
    """What a client sending too large a body reads."""
    return f"the request body is over the limit of {limit:,} bytes"


def refuse(
    path: str, status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A refusal in the API's JSON shape, or as a short page for Studio."""
    if is_api(path):
        return ApiError(status, error, message, headers=headers).response()
    return HTMLResponse(f"<p>{status}: {escape(message)}</p>", status_code=status, headers=headers)


def too_many_attempts(path: str, wait: int) -> Response:
    """429: this client got the token wrong too often; it may try again in ``wait`` seconds."""
    return refuse(
        path,
        429,
        "too_many_attempts",
        too_many_attempts_message(wait),
        headers={"Retry-After": str(wait)},
    )


def too_many_attempts_message(wait: int) -> str:
    """What a client that got the token wrong too often reads."""
    return (
        f"too many wrong tokens from your address; try again in {wait} second"
        f"{'s' if wait != 1 else ''}"
    )


def is_api(path: str) -> bool:
    """Whether ``path`` belongs to the API (which answers JSON errors; ``/metrics`` too)."""
    return path in ("/openapi.json", "/api", "/metrics") or path.startswith("/api/")


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def same_site(request: Request) -> bool:
    """Whether a write comes from this site (or from no browser page at all, like curl)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    hosts = {request.headers.get("host"), forwarded_host(request.scope)}
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # not a URL (an unclosed IPv6 bracket): not this site
        return False
    return origin != "null" and netloc in hosts


def bearer_ok(request: Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>``."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def session_of(state: HttpState, request: Request) -> Access | None:
    """What the request's Studio session cookie allows (None: no live session)."""
    given = request.cookies.get(SESSION_COOKIE, "")
    if not given:
        return None
    return await session_access(state, await state.app.store(), given)


def token_access(state: HttpState, given: str) -> Access | None:
    """What the token ``given`` allows: ``full`` (the API token), ``read`` (the read-only
    token) or nothing."""
    for token, access in ((state.settings.token, "full"), (state.settings.read_token, "read")):
        if token and hmac.compare_digest(given.strip().encode(), token.encode()):
            return cast(Access, access)
    return None


def access_of(request: Request) -> Access:
    """The access the security middleware granted ``request``."""
    return cast(Access, request.scope.get(ACCESS_KEY, "full"))


def set_session(response: Response, cookie: str, request: Request) -> None:
    """Log the browser in: an HttpOnly, SameSite=Lax cookie scoped to the app's prefix."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_LIFETIME,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=cookie_path(request),
    )


def clear_session(response: Response, request: Request) -> None:
    """Log the browser out."""
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))


def cookie_path(request: Request) -> str:
    """The path fw's cookies are scoped to: the app's mount prefix."""
    return url(request, "/")


def csrf_nonce(request: Request) -> tuple[str, bool]:
    """The browser's CSRF value, and whether it is new (then ``remember_csrf`` it)."""
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if _CSRF_NONCE.fullmatch(nonce):
        return nonce, False
    return secrets.token_hex(16), True


def csrf_token(state: HttpState, nonce: str) -> str:
    """The hidden form field that goes with the CSRF cookie ``nonce``."""
    return state.sign(f"csrf:{nonce}")


def remember_csrf(response: Response, nonce: str, request: Request) -> None:
    """Set the CSRF cookie."""
    response.set_cookie(
        CSRF_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=cookie_path(request),
    )


def check_csrf(state: HttpState, request: Request, submitted: str) -> None:
    """Refuse a Studio form whose CSRF field does not match the browser's cookie.

    Raises:
        HTTPException: 403, saying to reload the page.
    """
    nonce = request.cookies.get(CSRF_COOKIE, "")
    valid = _CSRF_NONCE.fullmatch(nonce) is not None
    expected = csrf_token(state, nonce) if valid else ""
    if not valid or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise HTTPException(
            403, "this form expired or came from another site; reload the page and try again"
        )


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after logging in: a path of this app, never another site."""
    home = url(request, "/studio")
    if not target or not target.startswith(url(request, "/")):
        return home
    if target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return home
    try:
        netloc = urlsplit(target).netloc
    except ValueError:  # not a URL
        return home
    return home if netloc else target


def loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
