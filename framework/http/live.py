"""Live status for server-rendered pages: ``workflow_status`` and the polling it drives.

``await workflow_status("order-pipeline", order_id, poll="2s")`` reads an instance's status.
With ``poll``, ``LiveStatusMiddleware`` adds a small script to the HTML page being rendered:
every tick it fetches the page again and swaps the new body in, until every status polled on
the page is terminal (or its ``until`` holds). Several calls on one page poll at the shortest
interval among those still live. In Jinja2 templates, ``register_jinja(env)`` makes
``workflow_status(...)`` a global.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from framework.errors import InstanceNotFoundError
from framework.resources import templates_dir
from framework.runtime.durations import Duration, parse_duration
from framework.runtime.records import ErrorInfo, InstanceStatus

if TYPE_CHECKING:
    import jinja2
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from framework.runtime.app import App
    from framework.runtime.handles import WorkflowHandle
    from framework.store.base import Status

O = TypeVar("O")
Until = Callable[["LiveStatus[Any]"], bool] | str | Collection[str]
"""When to stop polling: a predicate, a status, or statuses (besides any terminal status)."""


@dataclass(frozen=True)
class LiveStatus(Generic[O]):
    """An instance's status as a page shows it (an AsyncValue-like result).

    Attributes:
        workflow: the workflow's name.
        id: the instance id.
        status: ``queued``, ``running``, ``waiting``, ``paused``, ``complete``, ``errored``
            or ``terminated``.
        output: the typed output once ``complete``, else None.
        error: why it ended ``errored``, else None.
        pending: it has not ended yet.
        success: it ended ``complete``.
        done: polling for it has stopped (it ended, or ``until`` holds).
    """

    workflow: str
    id: str
    status: Status
    output: O | None
    error: ErrorInfo | None
    created_at: datetime
    updated_at: datetime
    pending: bool
    success: bool
    done: bool

    @property
    def value(self) -> O | None:
        """The output (``None`` until complete), as an AsyncValue's ``value``."""
        return self.output

    @property
    def failed(self) -> bool:
        """It ended ``errored`` or ``terminated``."""
        return self.status in ("errored", "terminated")


@dataclass
class PollRegistry:
    """The polls requested while rendering one page."""

    polls: list[tuple[float, bool]] = field(default_factory=list[tuple[float, bool]])

    def add(self, seconds: float, done: bool) -> None:
        """Record a poll every ``seconds`` (``done``: its status no longer changes)."""
        self.polls.append((seconds, done))

    @property
    def interval(self) -> float | None:
        """The shortest interval among live polls; None when nothing needs polling."""
        live = [seconds for seconds, done in self.polls if not done]
        return min(live) if live else None


_polls: contextvars.ContextVar[PollRegistry | None] = contextvars.ContextVar(
    "fw_live_polls", default=None
)
_default_app: contextvars.ContextVar[App | None] = contextvars.ContextVar(
    "fw_live_app", default=None
)


@overload
async def workflow_status(
    name: WorkflowHandle[Any, O],
    id: str,
    *,
    poll: Duration | None = None,
    until: Until | None = None,
    app: App | Path | str | None = None,
) -> LiveStatus[O]: ...
@overload
async def workflow_status(
    name: str,
    id: str,
    *,
    poll: Duration | None = None,
    until: Until | None = None,
    app: App | Path | str | None = None,
) -> LiveStatus[Any]: ...


async def workflow_status(
    name: WorkflowHandle[Any, Any] | str,
    id: str,
    *,
    poll: Duration | None = None,
    until: Until | None = None,
    app: App | Path | str | None = None,
) -> LiveStatus[Any]:
    """The status of instance ``id`` of a workflow, polled while the page shows it.

    Args:
        name: the workflow: its typed handle (``workflows.get("order-pipeline")``, so the
            name is checked and ``output`` typed), or its name as a string (untyped).
        id: the instance id.
        poll: refresh the page this often (``"2s"``, seconds, a timedelta) until done;
            needs ``LiveStatusMiddleware`` on the app serving the page.
        until: stop polling once this holds: a predicate of the status, or a status (or
            statuses) to stop at. Polling always stops at a terminal status.
        app: the fw app (an ``App`` or its folder); default: the one given to the
            middleware, else the handle's app, else the nearest ``fw.toml`` upwards from
            the working directory.

    Raises:
        InstanceNotFoundError: no instance of that workflow has this id.
    """
    workflow, the_app = _target(name, app)
    status = await the_app.instance_handle(workflow, id).status()
    return _register(_live(workflow, status, until), poll)


@overload
def workflow_status_blocking(
    name: WorkflowHandle[Any, O],
    id: str,
    *,
    poll: Duration | None = None,
    until: Until | None = None,
    app: App | Path | str | None = None,
) -> LiveStatus[O]: ...
@overload
def workflow_status_blocking(
    name: str,
    id: str,
    *,
    poll: Duration | None = None,
    until: Until | None = None,
    app: App | Path | str | None = None,
) -> LiveStatus[Any]: ...


def workflow_status_blocking(
    name: WorkflowHandle[Any, Any] | str,
    id: str,
    *,
    poll: Duration | None = None,
    until: Until | None = None,
    app: App | Path | str | None = None,
) -> LiveStatus[Any]:
    """``workflow_status`` for synchronous code and templates (runs on fw's sync loop)."""
    workflow, the_app = _target(name, app)
    status = the_app.instance_handle(workflow, id).sync.status()
    return _register(_live(workflow, status, until), poll)


def _target(name: WorkflowHandle[Any, Any] | str, app: App | Path | str | None) -> tuple[str, App]:
    """The workflow's name and the app to read it from."""
    if isinstance(name, str):
        return name, resolve_app(app)
    if app is None and _default_app.get() is None:
        return name.name, name.app
    return name.name, resolve_app(app)


def resolve_app(app: App | Path | str | None) -> App:
    """The fw app ``workflow_status`` reads."""
    from framework.runtime.app import App

    if isinstance(app, App):
        return app
    if app is not None:
        return App.for_root(Path(app))
    current = _default_app.get()
    if current is not None:
        return current
    from framework.app_root import find_app_root

    return App.for_root(find_app_root())


def _live(name: str, status: InstanceStatus[Any], until: Until | None) -> LiveStatus[Any]:
    if status.workflow != name:
        raise InstanceNotFoundError(status.id)
    value = LiveStatus[Any](
        workflow=name,
        id=status.id,
        status=status.status,
        output=status.output,
        error=status.error,
        created_at=status.created_at,
        updated_at=status.updated_at,
        pending=not status.terminal,
        success=status.status == "complete",
        done=status.terminal,
    )
    if value.done or until is None:
        return value
    held = until(value) if callable(until) else value.status in _statuses(until)
    return value if not held else _replace_done(value)


def _statuses(until: str | Collection[str]) -> Collection[str]:
    return (until,) if isinstance(until, str) else until


def _replace_done(value: LiveStatus[Any]) -> LiveStatus[Any]:
    return replace(value, done=True)


def _register(value: LiveStatus[Any], poll: Duration | None) -> LiveStatus[Any]:
    registry = _polls.get()
    if poll is not None and registry is not None:
        registry.add(max(parse_duration(poll), 0.2), value.done)
    return value


def register_jinja(env: jinja2.Environment, app: App | Path | str | None = None) -> None:
    """Make ``workflow_status(name, id, poll=..., until=...)`` a global of ``env``.

    In an async environment (``enable_async=True``) the call is awaited; in a synchronous one
    (like Starlette's ``Jinja2Templates``) it reads the status on fw's sync loop.
    """
    import jinja2

    @jinja2.pass_environment
    def template_workflow_status(
        environment: jinja2.Environment, name: str, id: str, **options: Any
    ) -> Any:
        options.setdefault("app", app)
        if environment.is_async:
            return workflow_status(name, id, **options)
        return workflow_status_blocking(name, id, **options)

    cast(dict[str, Any], env.globals)["workflow_status"] = template_workflow_status


class LiveStatusMiddleware:
    """ASGI middleware (Starlette, FastAPI) that adds the polling script to HTML pages whose
    handler or template polled a ``workflow_status``.

    Add it inside any compression middleware: ``app.add_middleware(LiveStatusMiddleware)``.
    """

    def __init__(self, app: ASGIApp, fw_app: App | Path | str | None = None) -> None:
        self.app = app
        self.fw_app = fw_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        registry = PollRegistry()
        token = _polls.set(registry)
        app_token = _default_app.set(resolve_app(self.fw_app)) if self.fw_app is not None else None
        try:
            await self.app(scope, receive, _injecting(send, registry))
        finally:
            _polls.reset(token)
            if app_token is not None:
                _default_app.reset(app_token)


def _injecting(send: Send, registry: PollRegistry) -> Send:
    """A ``send`` that holds back an HTML response to add the polling script to it."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def send_with_script(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            if registry.interval is not None and _is_plain_html(message):
                start = message
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            interval = registry.interval
            body = b"".join(chunks)
            if interval is not None:
                body = inject_script(body, interval)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return send_with_script


def _is_plain_html(start: Message) -> bool:
    headers = {k.lower(): v for k, v in start["headers"]}
    return headers.get(b"content-type", b"").startswith(b"text/html") and (
        b"content-encoding" not in headers
    )


def poll_script(interval: float) -> str:
    """The ``<script>`` that refreshes a page every ``interval`` seconds while it asks to."""
    return f'<script data-fw-poll="{round(interval * 1000)}">{_live_js()}</script>'


def inject_script(html: bytes, interval: float) -> bytes:
    """``html`` with the polling script before its closing ``</body>`` (else at the end)."""
    script = poll_script(interval).encode()
    closings = list(re.finditer(rb"</body\s*>", html, re.IGNORECASE))
    if not closings:
        return html + script
    at = closings[-1].start()
    return html[:at] + script + html[at:]


@cache
def _live_js() -> str:
    return (templates_dir() / "studio" / "static" / "live.js").read_text().strip()
