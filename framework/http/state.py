"""What every endpoint shares: the fw app, the HTTP settings and URL helpers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.types import Scope

from framework.http.throttle import AttemptLimiter

if TYPE_CHECKING:
    from framework.runtime.app import App

DEFAULT_BODY_LIMIT = 1024 * 1024
"""The largest request body accepted, in bytes (1 MiB)."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class HttpSettings:
    """How the API and Studio behave.

    Attributes:
        token: the API token; when set, the API wants ``Authorization: Bearer <token>`` and
            Studio a login. None (or empty) serves everyone who can reach the address.
        read_token: the read-only token (``FW_API_READ_TOKEN``): it reads everything, through
            the API or a Studio login, and changes nothing (403 ``read_only``).
        body_limit: the largest request body accepted, in bytes (larger: 413).
        allowed_hosts: ``Host`` header names accepted (None: any).
        forwarded_allow_ips: the reverse proxies whose forwarding headers are read
            (``proxies``; None: no one's).
        studio_poll: seconds between the refreshes of a Studio page showing live work.
    """

    token: str | None = None
    read_token: str | None = None
    body_limit: int = DEFAULT_BODY_LIMIT
    allowed_hosts: tuple[str, ...] | None = None
    forwarded_allow_ips: tuple[str, ...] | None = None
    studio_poll: float = 1.0


@dataclass
class HttpState:
    """The fw app served, its settings and the key that signs Studio's forms.

    An app given by its folder is looked up on every request (``App.for_root``), so a test
    environment that installs its own app for that folder is the one served.
    """

    source: App | Path
    settings: HttpSettings
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    attempts: AttemptLimiter = field(default_factory=AttemptLimiter)
    """Failed token attempts per client (``throttle``)."""

    @property
    def app(self) -> App:
        """The fw app served."""
        from framework.runtime.app import App

        return self.source if isinstance(self.source, App) else App.for_root(self.source)

    def __post_init__(self) -> None:
        token = self.settings.token or self.settings.read_token
        if token:  # forms and logins survive a restart when a token is set
            self.secret = hashlib.sha256(b"fw-csrf:" + token.encode()).digest()

    @property
    def secured(self) -> bool:
        """Whether callers must show a token (the full one or the read-only one)."""
        return bool(self.settings.token or self.settings.read_token)

    def sign(self, value: str) -> str:
        """An HMAC of ``value`` under this server's secret, as hex."""
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()


def url(request: Request, path: str) -> str:
    """``path`` under the prefix the app is mounted at (``/fw`` + ``/studio``)."""
    return f"{request.scope.get('root_path', '')}{path}"


def quote_id(instance_id: str) -> str:
    """An instance id as one URL path segment: every character but letters, digits and
    ``:@-._~`` percent-encoded (``/`` too), and the ids ``.`` and ``..`` as ``%2E`` and
    ``%2E%2E``, which HTTP clients (not browsers: see ``studio_segment``) leave as they are."""
    if instance_id in (".", ".."):
        return "%2E" * len(instance_id)
    return quote(instance_id, safe=":@-._~")


def studio_segment(instance_id: str) -> str:
    """An instance id as a path segment of Studio's URLs, which browsers follow.

    Browsers drop a ``.`` or ``..`` segment, even percent-encoded, so Studio writes those ids
    (possible only for instances stored before the id rule) with a leading ``~``; an id that
    starts with ``~`` gets one more. ``studio_id`` reads it back.
    """
    if instance_id in (".", "..") or instance_id.startswith("~"):
        return "~" + quote_id(instance_id).replace("%2E", ".")
    return quote_id(instance_id)


def studio_id(segment: str) -> str:
    """The instance id a decoded Studio path segment stands for (see ``studio_segment``)."""
    return segment[1:] if segment.startswith("~") else segment


def route_path(scope: Scope) -> str:
    """The request's path under the app's mount prefix."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
