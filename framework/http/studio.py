"""Studio: server-rendered pages to see workflows, start instances, follow and control them.

Pages: ``/studio`` (workflows), ``/studio/workflows/{name}`` (start form and recent
instances), ``/studio/instances`` (filter, search, pages), ``/studio/instances/{id}`` (params,
output or error, step waterfall, children, controls). A page showing work that has not ended
asks ``live.js`` to refresh it; every form carries a CSRF token.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from framework.errors import PayloadTooLargeError, SerializationError
from framework.http import catalog, security, sessions
from framework.http.catalog import WorkflowInfo
from framework.http.controls import ACTIONS, Action, Control, apply_action
from framework.http.forms import FormErrors, StartForm, build_form, read_form, validation_errors
from framework.http.inputs import (
    MAX_NAME_LENGTH,
    MAX_OCCURRENCE,
    UnreadableJsonError,
    ascii_int,
    check_lookup,
    check_name,
    page_cursor,
    parse_json,
    text_filter,
)
from framework.http.instances import (
    InstanceDetail,
    instance_status_light,
    load_detail,
    output_download,
    require_instance,
)
from framework.http.problems import ApiError, as_api_error
from framework.http.routing import Endpoint
from framework.http.state import HttpState, studio_id, studio_segment, url
from framework.http.templating import render_page
from framework.http.throttle import client_address
from framework.http.timeline import build_timeline
from framework.resources import templates_dir
from framework.runtime import serialization
from framework.store.base import STATUSES, TERMINAL

if TYPE_CHECKING:
    from framework.runtime.app import App
    from framework.runtime.handles import Instance

PAGE_SIZE = 50
StudioControl = Action | Literal["event"]
CONTROLS: tuple[StudioControl, ...] = (*ACTIONS, "event")
"""The buttons of an instance page: the actions, and sending an event."""
STATIC_FILES = {
    "studio.css": "text/css",
    "live.js": "text/javascript",
    "studio.js": "text/javascript",
}
NOTICES = {
    "pause": "Paused: it stops at its next step.",
    "resume": "Resumed.",
    "terminate": "Terminated.",
    "restart": "Restarted: a worker runs it again.",
    "event": "Event sent.",
    "started": "Instance started.",
}


class Studio:
    """The pages and forms of ``/studio``."""

    def __init__(self, state: HttpState) -> None:
        self.state = state

    @property
    def app(self) -> App:
        """The fw app served (looked up per request)."""
        return self.state.app

    def endpoints(self) -> list[Endpoint]:
        """Studio's endpoints. An instance's id is one path segment (see ``studio_segment``)."""
        controls = [
            Endpoint(
                "POST",
                f"/studio/instances/{{id}}/{action}",
                functools.partial(self.control, action=action),
            )
            for action in CONTROLS
        ]
        return [
            Endpoint("GET", "/", self.home),
            Endpoint("GET", "/studio", self.workflows_page),
            Endpoint("GET", "/studio/login", self.login_page),
            Endpoint("POST", "/studio/login", self.login),
            Endpoint("POST", "/studio/logout", self.logout),
            Endpoint("GET", "/studio/static/{name}", self.static),
            Endpoint("GET", "/studio/workflows/{name}", self.workflow_page),
            Endpoint("POST", "/studio/workflows/{name}/start", self.start),
            Endpoint("GET", "/studio/instances", self.instances_page),
            Endpoint("GET", "/studio/instances/{id}", self.instance_page),
            Endpoint("GET", "/studio/instances/{id}/output", self.output),
            *controls,
        ]

    # Pages.

    async def home(self, request: Request) -> Response:
        """``/``: to Studio."""
        return RedirectResponse(url(request, "/studio"), status_code=307)

    async def workflows_page(self, request: Request) -> Response:
        """Every workflow: name, binding, class, file, version, counts by status."""
        workflows = await catalog.list_workflows(self.app)
        live = any(w.live for w in workflows)
        return self.render(
            request, "workflows.html.j2", live=live, nav="workflows", workflows=workflows
        )

    async def workflow_page(self, request: Request) -> Response:
        """One workflow: its start form and its latest instances."""
        info = await catalog.one_workflow(self.app, check_name(request.path_params["name"]))
        return await self._workflow(request, info, build_form(info.params_schema), FormErrors())

    async def _workflow(
        self,
        request: Request,
        info: WorkflowInfo,
        form: StartForm,
        errors: FormErrors,
        id_value: str = "",
        status: int = 200,
    ) -> Response:
        store = await self.app.store()
        recent = (await store.list_instances(workflow=info.name, limit=10)).instances
        return self.render(
            request,
            "workflow.html.j2",
            status=status,
            live=any(row.status not in TERMINAL for row in recent),
            nav="workflows",
            workflow=info,
            recent=[instance_status_light(r) for r in recent],
            form=form,
            errors=errors,
            id_value=id_value,
        )

    async def instances_page(self, request: Request) -> Response:
        """Instances newest first, filtered by workflow, status and id, a page at a time."""
        query = request.query_params
        workflow = text_filter(query.get("workflow"), "workflow", allow_empty=True)
        status = query.get("status") if query.get("status") in STATUSES else None
        search = text_filter(query.get("q"), "search", allow_empty=True)
        cursor = page_cursor(query.get("cursor"))
        store = await self.app.store()
        page = await store.list_instances(
            workflow=workflow, status=status, search=search, limit=PAGE_SIZE, cursor=cursor
        )
        rows = [instance_status_light(row) for row in page.instances]
        filters = {"workflow": workflow or "", "status": status or "", "q": search or ""}
        return self.render(
            request,
            "instances.html.j2",
            live=any(not r.terminal for r in rows),
            nav="instances",
            instances=rows,
            next_cursor=page.next_cursor,
            cursor=cursor,
            filters=filters,
            workflow_names=sorted(self.app.entrypoints),
            statuses=STATUSES,
        )

    async def instance_page(
        self,
        request: Request,
        status: int = 200,
        problem: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> Response:
        """One instance: params, output or error, steps, children and controls."""
        detail = await load_detail(self.app, self._instance_id(request))
        now = datetime.fromtimestamp(self.app.clock.now(), UTC)
        timeline = build_timeline(detail.status, detail.steps, detail.child_status, now)
        done = request.query_params.get("done", "")
        return self.render(
            request,
            "instance.html.j2",
            status=status,
            live=detail.live,
            nav="instances",
            detail=detail,
            inst=detail.status,
            timeline=timeline,
            children=[instance_status_light(child) for child in detail.children],
            parent=instance_status_light(detail.parent) if detail.parent else None,
            restart_steps=_restart_choices(detail),
            notice=NOTICES.get(done),
            problem=problem,
            event=event or {"type": _awaited_event(detail), "payload": "", "error": None},
        )

    # Forms.

    async def start(self, request: Request) -> Response:
        """Start an instance from the form; errors show next to their fields."""
        name = check_name(request.path_params["name"])
        info = await catalog.one_workflow(self.app, name)
        data = await self._form(request)
        form = build_form(info.params_schema)
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        params, errors = read_form(form, fields)
        instance_id = fields.get("id", "").strip() or None
        try:
            if errors:  # check the rest too, to show every problem at once
                serialization.validate(params, info.params_type)
            else:
                instance = await self.app.handle(name).create(params, id=instance_id)
                target = f"/studio/instances/{studio_segment(instance.id)}?done=started"
                return RedirectResponse(url(request, target), status_code=303)
        except ValidationError as exc:
            validation_errors(form, exc, errors)
        except Exception as exc:
            problem = as_api_error(exc)
            if problem is None:
                raise
            errors.add(None, problem.message)
        return await self._workflow(
            request, info, form.filled(fields), errors, fields.get("id", ""), status=422
        )

    async def control(self, request: Request, action: StudioControl) -> Response:
        """Pause, resume, terminate, restart, or send an event, then show the instance."""
        instance_id = self._instance_id(request)
        data = await self._form(request)
        store = await self.app.store()
        row = await require_instance(store, instance_id)
        instance = self.app.instance_handle(row.workflow, instance_id)
        try:
            refused = await self._apply(request, action, instance, data)
        except Exception as exc:
            problem = as_api_error(exc)
            if problem is None:
                raise
            return await self.instance_page(request, status=problem.status, problem=problem.message)
        if refused is not None:
            return refused
        target = f"/studio/instances/{studio_segment(instance_id)}?done={action}"
        return RedirectResponse(url(request, target), status_code=303)

    async def output(self, request: Request) -> Response:
        """The output of a complete instance as a JSON download (as the API's)."""
        return await output_download(await self.app.store(), self._instance_id(request))

    async def _apply(
        self,
        request: Request,
        action: StudioControl,
        instance: Instance[Any],
        data: FormData,
    ) -> Response | None:
        """Do ``action``; a page showing what is wrong with the form, or None when done."""
        if action == "event":
            return await self._send_event(request, instance, data)
        await apply_action(instance, control_of(action, data))
        return None

    async def _send_event(
        self, request: Request, instance: Instance[Any], data: FormData
    ) -> Response | None:
        event_type = str(data.get("type", "")).strip()
        payload_text = str(data.get("payload", ""))
        event = {"type": event_type, "payload": payload_text, "error": None}
        try:
            payload = parse_json(payload_text) if payload_text.strip() else None
        except UnreadableJsonError as exc:
            event["error"] = f"the payload is not valid JSON: {exc}"
            return await self.instance_page(request, status=422, event=event)
        if not event_type or len(event_type) > MAX_NAME_LENGTH or "\x00" in event_type:
            event["error"] = f"give the event's type: 1 to {MAX_NAME_LENGTH} characters"
            return await self.instance_page(request, status=422, event=event)
        try:
            await instance.send_event(event_type, payload)
        except (SerializationError, PayloadTooLargeError) as exc:
            event["error"] = str(exc)
            status = 413 if isinstance(exc, PayloadTooLargeError) else 422
            return await self.instance_page(request, status=status, event=event)
        return None

    # Login.

    async def login_page(self, request: Request, error: str | None = None) -> Response:
        """The token form (only when a token is set)."""
        if not self.state.settings.token:
            return RedirectResponse(url(request, "/studio"), status_code=303)
        target = security.safe_next(request, request.query_params.get("next"))
        return self.render(
            request,
            "login.html.j2",
            status=401 if error else 200,
            live=False,
            nav="",
            error=error,
            next=target,
        )

    async def login(self, request: Request) -> Response:
        """Check the token; set the login cookie."""
        data = await self._form(request)
        client = client_address(request)
        wait = self.state.attempts.retry_after(client)
        if wait is not None:
            response = await self.login_page(
                request, error=security.too_many_attempts_message(wait).capitalize() + "."
            )
            response.status_code = 429
            response.headers["Retry-After"] = str(wait)
            return response
        if not security.token_matches(self.state, str(data.get("token", ""))):
            self.state.attempts.record_failure(client)
            return await self.login_page(request, error="That is not the token.")
        target = security.safe_next(request, str(data.get("next", "")))
        response = RedirectResponse(target, status_code=303)
        cookie = await sessions.start_session(self.state, await self.app.store())
        security.set_session(response, cookie, request)
        return response

    async def logout(self, request: Request) -> Response:
        """End the session (in every server process sharing the store) and forget its cookie."""
        await self._form(request)
        cookie = request.cookies.get(security.SESSION_COOKIE, "")
        if cookie:
            await sessions.end_session(self.state, await self.app.store(), cookie)
        response = RedirectResponse(url(request, "/studio/login"), status_code=303)
        security.clear_session(response, request)
        return response

    async def static(self, request: Request) -> Response:
        """Studio's stylesheet and scripts."""
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            raise ApiError(404, "not_found", f"no static file {name!r}")
        path = templates_dir() / "studio" / "static" / name
        return FileResponse(
            path, media_type=STATIC_FILES[name], headers={"Cache-Control": "public, max-age=300"}
        )

    def error_page(self, request: Request, problem: ApiError) -> Response:
        """An error as a Studio page (with links to close matches)."""
        kind = "workflows" if problem.error == "unknown_workflow" else "instances"
        matches = [str(m) for m in problem.extra.get("close_matches", [])]
        page = self.render(
            request,
            "error.html.j2",
            status=problem.status,
            live=False,
            nav="",
            problem=problem,
            matches=matches,
            match_kind=kind,
        )
        page.headers.update(problem.headers)
        return page

    # Helpers.

    def render(
        self,
        request: Request,
        template: str,
        *,
        live: bool,
        nav: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A Studio page, with the CSRF cookie set on first visit."""
        nonce, new = security.csrf_nonce(request)
        poll_ms = round(self.state.settings.studio_poll * 1000) if live else 0
        html = render_page(
            template,
            {
                "prefix": request.scope.get("root_path", ""),
                "csrf_field": security.CSRF_FIELD,
                "csrf": security.csrf_token(self.state, nonce),
                "login_required": bool(self.state.settings.token),
                "app_name": self.app.settings.app.name or self.app.package,
                "poll_ms": poll_ms,
                "nav": nav,
                **context,
            },
        )
        response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
        if new:
            security.remember_csrf(response, nonce, request)
        return response

    def _instance_id(self, request: Request) -> str:
        return check_lookup(studio_id(request.path_params["id"]))

    async def _form(self, request: Request) -> FormData:
        data = await request.form(max_files=0, max_fields=200)
        security.check_csrf(self.state, request, str(data.get(security.CSRF_FIELD, "")))
        return data


PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


def _restart_choices(detail: InstanceDetail) -> list[tuple[str, str]]:
    """(value, label) of each journaled step a restart may start from."""
    return [
        (f"{s.count}:{s.name}", s.name if s.count == 1 else f"{s.name} #{s.count}")
        for s in detail.steps
        if s.kind != "rollback"
    ]


def _awaited_event(detail: InstanceDetail) -> str:
    """The event type the instance waits for now, if any."""
    waits = [s.event_type for s in detail.steps if s.kind == "event" and s.status == "waiting"]
    return waits[-1] or "" if waits else ""


def control_of(action: Action, data: FormData) -> Control:
    """The action a control form asks for, with its options."""
    if action == "restart":
        step, occurrence = parse_step_choice(str(data.get("from_step", "")))
        return Control(action, from_step=step, occurrence=occurrence)
    if action == "terminate":
        return Control(action, compensate=data.get("compensate") == "true")
    return Control(action)


def parse_step_choice(value: str) -> tuple[str | None, int]:
    """A restart choice ``"<count>:<name>"`` as (name, occurrence); blank: from the top.

    Raises:
        ApiError: 422 ``invalid_step`` for any other value.
    """
    if not value.strip():
        return None, 1
    count, sep, name = value.partition(":")
    occurrence = ascii_int(count)
    if not sep or not name or occurrence is None or not 1 <= occurrence <= MAX_OCCURRENCE:
        raise ApiError(
            422,
            "invalid_step",
            f"no step {value[:80]!r} to restart from: choose a journaled step (occurrence:name)",
        )
    return name, occurrence
