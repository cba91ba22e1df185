"""The JSON API: list workflows, start, find and control instances, send events.

Every error answers ``{"error": kind, "message": ...}`` (see ``problems``). Instance ids are
one path segment each; an id holding ``/`` is sent percent-encoded (``%2F``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from framework.http import catalog
from framework.http.instances import load_detail, require_instance, summary
from framework.http.problems import ApiError, field_errors
from framework.http.state import HttpState, quote_id, url
from framework.store.base import STATUSES

if TYPE_CHECKING:
    from framework.runtime.app import App

ACTIONS = ("pause", "resume", "terminate", "restart")
M = TypeVar("M", bound=BaseModel)
MAX_PAGE = 500


class StartBody(BaseModel):
    """``POST /api/workflows/{name}/instances``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=512)
    params: Any = None


class RestartBody(BaseModel):
    """``POST /api/instances/{id}/restart``: from the top, or from a journaled step."""

    model_config = ConfigDict(extra="forbid")

    from_step: str | None = None
    occurrence: int = Field(default=1, ge=1)


class TerminateBody(BaseModel):
    """``POST /api/instances/{id}/terminate``: with ``compensate``, rollbacks and
    ``on_failure`` run first."""

    model_config = ConfigDict(extra="forbid")

    compensate: bool = False


class EventBody(BaseModel):
    """``POST /api/instances/{id}/events``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=512)
    payload: Any = None


class Api:
    """The endpoints of ``/api``."""

    def __init__(self, state: HttpState) -> None:
        self.state = state

    @property
    def app(self) -> App:
        """The fw app served (looked up per request)."""
        return self.state.app

    def routes(self) -> list[BaseRoute]:
        """The API's routes; instance routes take any id, ``/`` included."""
        return [
            Route("/api/workflows", self.list_workflows, methods=["GET"]),
            Route("/api/workflows/{name}", self.get_workflow, methods=["GET"]),
            Route("/api/workflows/{name}/instances", self.start_instance, methods=["POST"]),
            Route("/api/workflows/{name}/instances", self.list_workflow_instances, methods=["GET"]),
            Route("/api/instances", self.list_instances, methods=["GET"]),
            Route("/api/instances/{id:path}/output", self.get_output, methods=["GET"]),
            Route("/api/instances/{id:path}/events", self.send_event, methods=["POST"]),
            Route("/api/instances/{id:path}/{action}", self.control, methods=["POST"]),
            Route("/api/instances/{id:path}", self.get_instance, methods=["GET"]),
        ]

    async def list_workflows(self, request: Request) -> Response:
        """Every workflow with its binding, class, file, version, counts and schemas."""
        workflows = await catalog.list_workflows(self.app)
        return JSONResponse({"workflows": [w.to_json() for w in workflows]})

    async def get_workflow(self, request: Request) -> Response:
        """One workflow, as in the list."""
        info = await catalog.one_workflow(self.app, request.path_params["name"])
        return JSONResponse(info.to_json())

    async def start_instance(self, request: Request) -> Response:
        """Start an instance: 201 when created, 200 when the id already existed."""
        name = request.path_params["name"]
        handle = self.app.handle(name)
        body = parse_body(StartBody, await read_json(request))
        store = await self.app.store()
        existed = body.id is not None and await store.get_instance(body.id) is not None
        try:
            instance = await handle.create(body.params, id=body.id)
        except ValidationError as exc:
            raise invalid_params(name, exc) from None
        row = await require_instance(store, instance.id)
        location = url(request, f"/api/instances/{quote_id(row.id)}")
        return JSONResponse(
            {"id": row.id, "workflow": row.workflow, "status": row.status},
            status_code=200 if existed else 201,
            headers={"Location": location},
        )

    async def list_workflow_instances(self, request: Request) -> Response:
        """Instances of one workflow, newest first, a page at a time."""
        name = request.path_params["name"]
        self.app.handle(name)  # 404 with close matches for an unknown name
        return await self._page(request, workflow=name)

    async def list_instances(self, request: Request) -> Response:
        """Instances of every workflow (``?workflow=`` narrows), newest first."""
        return await self._page(request, workflow=request.query_params.get("workflow") or None)

    async def get_instance(self, request: Request) -> Response:
        """Status, output, error, params, version, parent, children and steps."""
        detail = await load_detail(self.app, request.path_params["id"])
        return JSONResponse(detail.to_json())

    async def get_output(self, request: Request) -> Response:
        """The output of a complete instance as a JSON download."""
        instance_id = request.path_params["id"]
        row = await require_instance(await self.app.store(), instance_id)
        if row.status != "complete" or row.output is None:
            raise ApiError(
                409,
                "no_output",
                f"instance {instance_id!r} is {row.status}: it has an output once complete",
            )
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", instance_id)[:100] + "-output.json"
        return Response(
            row.output,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def control(self, request: Request) -> Response:
        """Pause, resume, terminate or restart; 409 when the action does not apply now."""
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise ApiError(
                404, "not_found", f"no action {action!r}; use one of {', '.join(ACTIONS)}"
            )
        instance_id = request.path_params["id"]
        store = await self.app.store()
        row = await require_instance(store, instance_id)
        instance = self.app.instance_handle(row.workflow, instance_id)
        if action == "restart":
            body = parse_body(RestartBody, await read_json(request))
            if body.from_step is not None:
                await check_step(self.app, instance_id, body.from_step, body.occurrence)
            await instance.restart(body.from_step, body.occurrence)
        elif action == "terminate":
            terminate = parse_body(TerminateBody, await read_json(request))
            await instance.terminate(compensate=terminate.compensate)
        else:
            await getattr(instance, action)()
        return JSONResponse(summary(await require_instance(store, instance_id)))

    async def send_event(self, request: Request) -> Response:
        """Deliver an event (buffered until the instance waits for its type): 202."""
        instance_id = request.path_params["id"]
        store = await self.app.store()
        row = await require_instance(store, instance_id)
        body = parse_body(EventBody, await read_json(request))
        await self.app.instance_handle(row.workflow, instance_id).send_event(
            body.type, body.payload
        )
        data = summary(await require_instance(store, instance_id))
        return JSONResponse({**data, "event": body.type}, status_code=202)

    async def _page(self, request: Request, workflow: str | None) -> Response:
        query = request.query_params
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise ApiError(
                400,
                "invalid_status",
                f"unknown status {status!r}; use one of {', '.join(STATUSES)}",
            )
        limit = parse_limit(query.get("limit"))
        store = await self.app.store()
        try:
            page = await store.list_instances(
                workflow=workflow,
                status=status,
                search=query.get("search") or None,
                limit=limit,
                cursor=query.get("cursor") or None,
            )
        except ValueError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        return JSONResponse(
            {"instances": [summary(row) for row in page.instances], "next_cursor": page.next_cursor}
        )


async def read_json(request: Request) -> Any:
    """The request body as JSON (None when empty).

    Raises:
        ApiError: 400 when the body is not JSON.
    """
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not JSON: {exc}") from None


def parse_body(model: type[M], data: Any) -> M:
    """Validate a JSON body into ``model`` (an empty body is ``{}``); 422 with field errors."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_body", "the request body is invalid", detail=field_errors(exc)
        ) from None


def invalid_params(workflow: str, exc: ValidationError) -> ApiError:
    """A 422 naming every invalid field of a workflow's params."""
    errors = field_errors(exc, ("params",))
    shown = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return ApiError(
        422, "invalid_params", f"invalid params for workflow {workflow!r}: {shown}", detail=errors
    )


def parse_limit(value: str | None) -> int:
    """``?limit=``: 1 to 500, default 50."""
    if value is None or value == "":
        return 50
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise ApiError(400, "invalid_limit", f"limit must be a number from 1 to {MAX_PAGE}")
    return int(value)


async def check_step(app: App, instance_id: str, step: str, occurrence: int) -> None:
    """422 unless the instance's journal holds step ``step`` (occurrence ``occurrence``)."""
    steps = await (await app.store()).list_steps(instance_id)
    if not any(s.name == step and s.count == occurrence for s in steps):
        names = sorted({s.name for s in steps})
        raise ApiError(
            422,
            "unknown_step",
            f"instance {instance_id!r} has no step {step!r} (occurrence {occurrence}) in its "
            f"journal; its steps: {', '.join(names) or 'none'}",
            steps=names,
        )
