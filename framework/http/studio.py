"""Studio: server-rendered pages to see workflows, start instances, follow and control them.

Pages: ``/studio`` (workflows), ``/studio/workflows/{name}`` (start form and recent
instances), ``/studio/instances`` (filter, search, pages), ``/studio/instances/{id}`` (params,
output or error, step waterfall, children, controls). A page showing work that has not ended
asks ``live.js`` to refresh it; every form carries a CSRF token and answers with a redirect
to a page (post-redirect-get), a rejected one with its input and errors (``flash``).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from framework.errors import PayloadTooLargeError, SerializationError
from framework.http import catalog, flash, security, sessions
from framework.http.activity import ActivityCache, workflow_activity
from framework.http.catalog import WorkflowInfo
from framework.http.controls import ACTIONS, Action, Control, apply_action
from framework.http.event_forms import PAYLOAD_FORM, EventForms, event_forms, read_event_form
from framework.http.flash import GENERAL, Flash
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
    statuses_of,
)
from framework.http.problems import ApiError, as_api_error
from framework.http.routing import Endpoint
from framework.http.state import HttpState, studio_id, studio_segment, url
from framework.http.templating import render_page
from framework.http.throttle import client_address
from framework.http.timeline import MAX_ROWS, build_timeline
from framework.resources import templates_dir
from framework.runtime import serialization
from framework.runtime.records import LogRecord
from framework.store.base import STATUSES

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
    "retry-now": "Retrying now: a worker runs the step again.",
    "event": "Event sent.",
    "started": "Instance started.",
}


class Studio:
    """The pages and forms of ``/studio``."""

    def __init__(self, state: HttpState) -> None:
        self.state = state
        self._activity = ActivityCache()

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
            Endpoint("GET", "/studio/workers", self.workers_page),
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
        form = build_form(info.params_schema)
        rejected = flash.recall(self.state, request, "start", info.name)
        if rejected is None:
            return await self._workflow(request, info, form, FormErrors())
        errors = FormErrors(
            fields={key: list(messages) for key, messages in rejected.errors.items() if key},
            general=list(rejected.general),
        )
        id_value = rejected.fields.get("id", "")
        return await self._workflow(request, info, form.filled(rejected.fields), errors, id_value)

    async def _workflow(
        self,
        request: Request,
        info: WorkflowInfo,
        form: StartForm,
        errors: FormErrors,
        id_value: str = "",
    ) -> Response:
        store = await self.app.store()
        recent = (await store.list_instances(workflow=info.name, limit=10)).instances
        charts = await workflow_activity(
            self._activity, store, info.name, self.app.clock.now()
        )
        return self.render(
            request,
            "workflow.html.j2",
            live=True,  # its latest instances, new ones included
            conditional=True,
            nav="workflows",
            workflow=info,
            recent=await statuses_of(store, recent),
            form=form,
            errors=errors,
            id_value=id_value,
            activity=charts,
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
        rows = await statuses_of(store, page.instances)
        filters = {"workflow": workflow or "", "status": status or "", "q": search or ""}
        return self.render(
            request,
            "instances.html.j2",
            live=cursor is None or any(not r.terminal for r in rows),  # new ones show on top
            conditional=True,
            nav="instances",
            instances=rows,
            next_cursor=page.next_cursor,
            cursor=cursor,
            filters=filters,
            workflow_names=sorted(self.app.entrypoints),
            statuses=STATUSES,
        )

    async def workers_page(self, request: Request) -> Response:
        """The registered workers: alive, stale or dead, and the instances each holds."""
        from framework.runtime.liveness import worker_statuses

        found = await worker_statuses(self.app)
        return self.render(
            request, "workers.html.j2", live=True, conditional=True, nav="workers", workers=found
        )

    async def instance_page(self, request: Request) -> Response:
        """One instance: params, output or error, steps, children and controls (and what a
        rejected control or event form said, when the address names it)."""
        instance_id = self._instance_id(request)
        detail = await load_detail(self.app, instance_id)
        problem = flash.recall(self.state, request, "control", instance_id)
        events = event_forms(self.app, detail.status.workflow)
        event = _event_form(
            flash.recall(self.state, request, "event", instance_id), detail, events
        )
        now = datetime.fromtimestamp(self.app.clock.now(), UTC)
        timeline = build_timeline(detail.status, detail.steps, detail.child_status, now)
        done = request.query_params.get("done", "")
        instance = self.app.instance_handle(detail.status.workflow, detail.status.id)
        logs = await instance.logs()
        return self.render(
            request,
            "instance.html.j2",
            live=detail.live,
            nav="instances",
            detail=detail,
            inst=detail.status,
            timeline=timeline,
            children=[instance_status_light(child) for child in detail.children],
            parent=instance_status_light(detail.parent) if detail.parent else None,
            restart_steps=_restart_choices(detail),
            notice=NOTICES.get(done),
            problem=" ".join(problem.general) if problem else None,
            event=event,
            awaited_events=_awaited_events(detail),
            logs=logs,
            step_logs=_logs_by_step(logs),
            events=events,
            payload_form=PAYLOAD_FORM,
        )

    # Forms.

    async def start(self, request: Request) -> Response:
        """Start an instance from the form, then show it; a rejected form goes back to the
        workflow's page, which shows the input with each error next to its field."""
        name = check_name(request.path_params["name"])
        info = await catalog.one_workflow(self.app, name)
        data = await self._form(request)
        form = build_form(info.params_schema)
        fields = _form_fields(data, [*form.input_names, "id"])
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
        rejected = Flash("start", name, fields, {**errors.fields, GENERAL: errors.general})
        page = f"/studio/workflows/{quote(name, safe='')}#start"
        return flash.redirect(self.state, request, rejected, page)

    async def control(self, request: Request, action: StudioControl) -> Response:
        """Pause, resume, terminate, restart, retry now, or send an event, then show the
        instance; a refusal shows on the instance's page too (with the event form's input)."""
        instance_id = self._instance_id(request)
        data = await self._form(request)
        store = await self.app.store()
        row = await require_instance(store, instance_id)
        instance = self.app.instance_handle(row.workflow, instance_id)
        page = f"/studio/instances/{studio_segment(instance_id)}"
        try:
            rejected = await self._apply(action, instance, data)
        except Exception as exc:
            problem = as_api_error(exc)
            if problem is None:
                raise
            rejected = Flash("control", instance_id, errors={GENERAL: [problem.message]})
        if rejected is not None:
            fragment = "#instance-event" if rejected.kind == "event" else ""
            return flash.redirect(self.state, request, rejected, page + fragment)
        return RedirectResponse(url(request, f"{page}?done={action}"), status_code=303)

    async def output(self, request: Request) -> Response:
        """The output of a complete instance as a JSON download (as the API's)."""
        return await output_download(await self.app.store(), self._instance_id(request))

    async def _apply(
        self, action: StudioControl, instance: Instance[Any, Any], data: FormData
    ) -> Flash | None:
        """Do ``action``; what is wrong with the form, or None when done."""
        if action == "event":
            return await _send_event(instance, data)
        await apply_action(instance, control_of(action, data))
        return None

    # Login.

    async def login_page(self, request: Request, error: str | None = None) -> Response:
        """The token form (only when a token is set)."""
        if not self.state.secured:
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
        access = security.token_access(self.state, str(data.get("token", "")))
        if access is None:
            self.state.attempts.record_failure(client)
            return await self.login_page(request, error="That is not the token.")
        target = security.safe_next(request, str(data.get("next", "")))
        response = RedirectResponse(target, status_code=303)
        cookie = await sessions.start_session(self.state, await self.app.store(), access)
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
        conditional: bool = False,
        **context: Any,
    ) -> Response:
        """A Studio page, with the CSRF cookie set on first visit. Only a page fetched by GET
        refreshes itself: the address it would fetch again is then its own.

        A ``conditional`` page carries an ETag of what it shows (a hash of its values, taken
        before rendering), and a request whose ``If-None-Match`` holds it gets a bodiless 304:
        a live refresh of a page that has not changed renders and sends nothing.
        """
        nonce, new = security.csrf_nonce(request)
        live = live and request.method in ("GET", "HEAD")
        poll_ms = round(self.state.settings.studio_poll * 1000) if live else 0
        values = {
            "prefix": request.scope.get("root_path", ""),
            "csrf_field": security.CSRF_FIELD,
            "csrf": security.csrf_token(self.state, nonce),
            "login_required": self.state.secured,
            "read_only": security.access_of(request) == "read",
            "app_name": self.app.settings.app.name or self.app.package,
            "poll_ms": poll_ms,
            "nav": nav,
            **context,
        }
        headers = dict(PAGE_HEADERS)
        if conditional and status == 200:
            headers["ETag"] = page_etag(template, values)
            if headers["ETag"] in request.headers.get("if-none-match", ""):
                return Response(status_code=304, headers=headers)
        values["etag"] = headers.get("ETag", "")
        response = HTMLResponse(render_page(template, values), status_code=status, headers=headers)
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


def page_etag(template: str, values: dict[str, Any]) -> str:
    """A weak ETag of a page: a hash of its template and the values it renders (their reprs
    are plain data: rows, filters, forms)."""
    digest = hashlib.sha256(f"{template}\n{values!r}".encode()).hexdigest()[:32]
    return f'W/"{digest}"'


def _restart_choices(detail: InstanceDetail) -> list[tuple[str, str]]:
    """(value, label) of each journaled step a restart may start from."""
    return [
        (f"{s.count}:{s.name}", s.name if s.count == 1 else f"{s.name} #{s.count}")
        for s in detail.steps[-MAX_ROWS:]  # those the waterfall shows
        if s.kind != "rollback"
    ]


def _logs_by_step(logs: list[LogRecord]) -> dict[str, list[LogRecord]]:
    """The log lines of each step, by the step's label in the waterfall."""
    by_step: dict[str, list[LogRecord]] = {}
    for line in logs:
        if line.step is not None:
            label = line.step if line.step_count in (None, 1) else f"{line.step} #{line.step_count}"
            by_step.setdefault(label, []).append(line)
    return by_step


def _awaited_events(detail: InstanceDetail) -> list[str]:
    """The event types the instance's journal waits for now (also while it is paused)."""
    waits = [s.event_type for s in detail.steps if s.kind == "event" and s.status == "waiting"]
    return sorted({w for w in waits if w})


async def _send_event(instance: Instance[Any, Any], data: FormData) -> Flash | None:
    """Send the event form's event; the rejected form, or None when sent."""
    form_type = data.get(PAYLOAD_FORM)
    if isinstance(form_type, str):
        return await _send_model_event(instance, data, form_type)
    event_type = str(data.get("type", "")).strip()
    payload_text = str(data.get("payload", ""))
    rejected = Flash("event", instance.id, {"type": event_type, "payload": payload_text})
    try:
        payload = parse_json(payload_text) if payload_text.strip() else None
    except UnreadableJsonError as exc:
        rejected.add(GENERAL, f"the payload is not valid JSON: {exc}")
        return rejected
    if not event_type or len(event_type) > MAX_NAME_LENGTH or "\x00" in event_type:
        rejected.add(GENERAL, f"give the event's type: 1 to {MAX_NAME_LENGTH} characters")
        return rejected
    try:
        await instance.send_event(event_type, payload)
    except (SerializationError, PayloadTooLargeError) as exc:
        rejected.add(GENERAL, str(exc))
        return rejected
    return None


async def _send_model_event(
    instance: Instance[Any, Any], data: FormData, event_type: str
) -> Flash | None:
    """Send an event whose payload fills the form of its model; the rejected form (errors
    by field), or None when sent."""
    choice = event_forms(instance.app, instance.workflow).choice(event_type)
    inputs = [] if choice is None or choice.form is None else choice.form.input_names
    fields = _form_fields(data, [PAYLOAD_FORM, *inputs])
    rejected = Flash("event", instance.id, fields)
    if choice is None or choice.form is None:
        rejected.add(GENERAL, f"the workflow declares no event {event_type!r} with a model")
        return rejected
    payload, errors = read_event_form(choice, fields)
    if errors:
        rejected.errors = {**errors.fields, GENERAL: errors.general}
        return rejected
    await instance.send_event(event_type, payload)
    return None


def _form_fields(data: FormData, names: list[str]) -> dict[str, str]:
    """The inputs of ``data`` named ``names`` (its form's): only those are read, and kept
    when the form is rejected."""
    return {name: value for name in names if isinstance(value := data.get(name), str)}


def _event_form(
    rejected: Flash | None, detail: InstanceDetail, events: EventForms
) -> dict[str, Any]:
    """The event form's values: a rejected form's, else the awaited type and no payload."""
    if rejected is None:
        awaited = _awaited_events(detail)
        return {"type": awaited[0] if awaited else "", "payload": "", "error": None}
    choice = events.choice(rejected.fields.get(PAYLOAD_FORM, ""))
    if choice is not None and choice.form is not None:
        errors = FormErrors(
            {k: v for k, v in rejected.errors.items() if k != GENERAL}, rejected.general
        )
        return {
            "type": choice.type,
            "payload": "",
            "error": None,
            "form_type": choice.type,
            "form": choice.form.filled(rejected.fields),
            "errors": errors,
        }
    return {
        "type": rejected.fields.get("type", ""),
        "payload": rejected.fields.get("payload", ""),
        "error": " ".join(m for messages in rejected.errors.values() for m in messages) or None,
    }


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
