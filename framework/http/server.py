"""Serving the API and Studio with uvicorn, as ``fw serve`` and ``fw dev`` do.

The server binds its own socket (so ``--port 0`` picks a free port and the real address is
known), serves until a stop event is set, then closes its connections. Signals stay with the
caller. Any address other than loopback needs a token. uvicorn's own reading of forwarding
headers is off: fw reads them itself, from the proxies named alone (``proxies``).

Under a flood of connections: ``serve_app`` raises the process's open-file limit to its
ceiling (each connection is a file descriptor), and when ``accept()`` still fails for want of
them, a warning a minute says so (``AcceptErrorLog``) in place of asyncio's traceback per try.
Connections that hold a descriptor without sending a request are closed by the protocol
(``HEAD_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import uvicorn

from framework.errors import ListenError
from framework.http.app import READ_TOKEN_ENV, TOKEN_ENV, create_app
from framework.http.protocol import http_protocol
from framework.http.security import loopback
from framework.http.state import DEFAULT_BODY_LIMIT, LOOPBACK_HOSTS

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from framework.runtime.app import App

LOG = logging.getLogger("fw.http")
MIN_TOKEN_LENGTH = 32
"""The shortest token accepted on an address beyond loopback."""
ACCEPT_OUT_OF_RESOURCE = "socket.accept() out of system resource"
"""The message asyncio's event loop gives its exception handler when accept() fails for want
of file descriptors or memory (it retries a second later)."""
ACCEPT_WARNING_INTERVAL = 60.0
"""Seconds between two warnings of failed accepts."""


def env_token() -> str | None:
    """The API token of ``FW_API_TOKEN``, if set."""
    return os.environ.get(TOKEN_ENV) or None


def env_read_token() -> str | None:
    """The read-only token of ``FW_API_READ_TOKEN``, if set."""
    return os.environ.get(READ_TOKEN_ENV) or None


def bind_problem(host: str, token: str | None, read_token: str | None = None) -> str | None:
    """Why the server must not listen on ``host`` with ``token`` (None: it may).

    Beyond loopback, a token is required and must be at least ``MIN_TOKEN_LENGTH`` characters,
    as must the read-only token when one is set.
    """
    if loopback(host):
        return None
    if read_token and len(read_token) < MIN_TOKEN_LENGTH:
        return (
            f"refusing to serve the API and Studio on {host}, which is not a loopback address, "
            f"with a {len(read_token)}-character {READ_TOKEN_ENV}: a token there needs at least "
            f"{MIN_TOKEN_LENGTH} characters, so it cannot be guessed"
        )
    make_one = f"`export {TOKEN_ENV}=$(openssl rand -hex 32)`"
    if not token:
        return (
            f"refusing to serve the API and Studio on {host}, which is not a loopback address, "
            f"without a token: set {TOKEN_ENV} to a long random secret ({make_one}; API clients "
            f"send `Authorization: Bearer ${TOKEN_ENV}`; Studio asks for it once), or serve on "
            "127.0.0.1"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"refusing to serve the API and Studio on {host}, which is not a loopback address, "
            f"with a {len(token)}-character {TOKEN_ENV}: a token there needs at least "
            f"{MIN_TOKEN_LENGTH} characters, so it cannot be guessed; make one with {make_one} "
            "(or `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return None


def allowed_hosts(host: str, token: str | None) -> tuple[str, ...] | None:
    """``Host`` names to accept: loopback names on a loopback address without a token (so a
    web page cannot reach the server by DNS rebinding); else any."""
    if token or not loopback(host):
        return None
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, host if ":" not in host else f"[{host}]")))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one).

    Raises:
        OSError: the address is in use or not this machine's.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP, named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # that say so, and accepted connections inherit it. Without it, a response written as
    # headers then body waits for the client's delayed ACK: 40 ms per keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit, as far as the system
    lets it, never failing; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit is not a number a soft one may take (Linux caps it at nr_open,
    # 2**20 by default; macOS lower): aim there, and settle for what is allowed.
    ceiling = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= ceiling:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    except (OSError, ValueError) as exc:
        LOG.debug("cannot raise the open-file limit from %d to %d: %s", soft, ceiling, exc)
        return soft
    return ceiling


class AcceptErrorLog:
    """An event loop's exception handler: a failed ``accept()`` for want of file descriptors
    (or memory) is one warning per ``interval`` seconds, saying how many connections are open
    and the limit; every other error goes to the handler installed before (or the default).

    asyncio logs each failed accept with its traceback, and a listening socket with a full
    backlog fails thousands of times a second: without this, the log floods as the server
    starves.
    """

    def __init__(
        self,
        name: str,
        connections: Callable[[], int],
        previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None,
        *,
        interval: float = ACCEPT_WARNING_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.connections, self.previous = name, connections, previous
        self.interval, self.clock = interval, clock
        self.warned_at: float | None = None
        self.unsaid = 0
        """Failed accepts since the last warning, not counting the one it said."""

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") != ACCEPT_OUT_OF_RESOURCE or not isinstance(exc, OSError):
            if self.previous is None:
                loop.default_exception_handler(context)
            else:
                self.previous(loop, context)
            return
        now = self.clock()
        if self.warned_at is not None and now - self.warned_at < self.interval:
            self.unsaid += 1
            return
        since = ""
        if self.warned_at is not None:
            since = f"; {self.unsaid:,} more in the {now - self.warned_at:.0f} s since the last"
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        LOG.warning(
            "%s: cannot accept connections: %s (%s open, open-file limit %s)%s; "
            "said at most every %g s",
            self.name,
            exc.strerror or exc,
            f"{self.connections():,}",
            "unlimited" if soft == resource.RLIM_INFINITY else f"{soft:,}",
            since,
            self.interval,
        )
        self.warned_at, self.unsaid = now, 0


@contextlib.contextmanager
def accept_errors_logged(name: str, connections: Callable[[], int]) -> Generator[None]:
    """Within: the running loop's failed accepts are logged by ``AcceptErrorLog``."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(AcceptErrorLog(name, connections, previous))
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


def address_of(sock: socket.socket, host: str) -> str:
    """The base URL a socket serves."""
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return f"http://{shown}:{port}"


async def serve(
    asgi_app: ASGIApp,
    sock: socket.socket,
    stop: asyncio.Event,
    *,
    on_listening: Callable[[], None] | None = None,
    name: str = "fw serve",
) -> None:
    """Serve ``asgi_app`` on ``sock`` until ``stop`` is set (``name`` heads its warnings)."""
    config = uvicorn.Config(
        asgi_app,
        lifespan="off",
        log_config=None,
        access_log=False,
        http=http_protocol(),
        proxy_headers=False,  # trusted proxies are fw's choice (proxies), not 127.0.0.1's
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    connections = server.server_state.connections
    with accept_errors_logged(name, lambda: len(connections)):
        await server.startup(sockets=[sock])
        if on_listening is not None:
            on_listening()
        main_loop = asyncio.create_task(server.main_loop())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({main_loop, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.should_exit = True
            stopped.cancel()
            await main_loop
            await server.shutdown(sockets=[sock])
            with contextlib.suppress(OSError):
                sock.close()


async def serve_app(
    app: App,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    name: str = "fw serve",
    body_limit: int = DEFAULT_BODY_LIMIT,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve ``app``'s API and Studio on ``host:port`` until ``stop`` is set, logging the
    address (``port`` 0 picks a free port). Forwarding headers are read only from the
    proxies of ``forwarded_allow_ips`` (``proxies``; None: from no one)."""
    token, read_token = env_token(), env_read_token()
    problem = bind_problem(host, token, read_token)
    if problem is not None:
        raise PermissionError(problem)
    asgi_app = create_app(
        app,
        token=token or "",
        read_token=read_token or "",
        body_limit=body_limit,
        allowed_hosts=allowed_hosts(host, token or read_token),
        forwarded_allow_ips=forwarded_allow_ips,
    )
    open_files = raise_open_file_limit()
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    base = address_of(sock, host)

    def announce() -> None:
        secured = "token required" if token or read_token else "no token: loopback only"
        LOG.info("%s: API and Studio at %s/studio (%s)", name, base, secured)
        LOG.debug("%s: open-file limit %s", name, open_files)

    await serve(asgi_app, sock, stop, on_listening=announce, name=name)


async def serve_metrics(app: App, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app``'s ``/metrics`` alone on ``host:port`` until ``stop`` is set, logging the
    address (``fw worker --metrics-port``); with ``FW_API_TOKEN`` set, scrapes must send it
    (or ``FW_API_READ_TOKEN``)."""
    from framework.http.metrics import METRICS_PATH, create_metrics_app

    token, read_token = env_token(), env_read_token()
    problem = bind_problem(host, token, read_token)
    if problem is not None:
        raise PermissionError(problem.replace("the API and Studio", "metrics"))
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    base = address_of(sock, host)

    def announce() -> None:
        secured = "token required" if token else "no token: loopback only"
        LOG.info("fw worker: metrics at %s%s (%s)", base, METRICS_PATH, secured)

    metrics_app = create_metrics_app(app, token=token, read_token=read_token)
    await serve(metrics_app, sock, stop, on_listening=announce, name="fw worker")
