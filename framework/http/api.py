"""The JSON API: list workflows, start, find and control instances, send events.

``API_ROUTES`` is the one list of what the API serves: the app's routes and the paths of the
OpenAPI document both derive from it. Every error answers ``{"error": kind, "message": ...}``
(see ``problems``). Instance ids are one path segment each: an id holding ``/`` is sent
percent-encoded (``%2F``), and ``w%2Foutput`` is the instance ``w/output``, never the output
of ``w`` (see ``routing``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    WithJsonSchema,
)
from pydantic.errors import PydanticUserError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from framework.http import catalog
from framework.http.controls import Action, Control, apply_action
from framework.http.inputs import (
    MAX_NAME_LENGTH,
    MAX_OCCURRENCE,
    NO_BODY,
    check_lookup,
    check_name,
    page_cursor,
    page_limit,
    read_json,
    status_filter,
    text_filter,
    wait_seconds,
)
from framework.http.instances import (
    load_detail,
    output_download,
    require_instance,
    summaries,
    wait_until_ended,
)
from framework.http.metrics import metrics_response
from framework.http.problems import ApiError, field_errors
from framework.http.routing import Endpoint
from framework.http.state import HttpState, quote_id, url
from framework.runtime import serialization
from framework.runtime.durations import DURATION_PATTERN, MAX_DURATION, parse_retention
from framework.runtime.ids import ID_PATTERN

if TYPE_CHECKING:
    from framework.runtime.app import App

M = TypeVar("M", bound=BaseModel)
ID_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": f"^{ID_PATTERN}$", "not": {"enum": [".", ".."]}},
        {"type": "null"},
    ],
    "description": "Optional (null or absent: a random id): 1-100 letters, digits and _ . : - "
    "(not . or .. alone); starting is idempotent on it.",
}
"""The ``id`` of a start body, as the OpenAPI document describes it (the id rule)."""
MAX_DURATION_LENGTH = 40
RETENTION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": MAX_DURATION_LENGTH,
            "examples": ["30 days", "12 hours"],
        },
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION},
        {"type": "null"},
    ],
    "description": "Optional: how long to keep the instance once it has ended (a duration, "
    "or a number of seconds), beating its workflow's and the app's retention.",
}
"""The ``retention`` of a start body, as the OpenAPI document describes it."""


def _duration(value: Any) -> Any:
    """A duration as JSON carries one: a string (``"30 days"``, as ``DURATION_PATTERN``
    says) or a number of seconds."""
    if value is None:
        return None
    if isinstance(value, str) and (
        len(value) > MAX_DURATION_LENGTH or not re.fullmatch(DURATION_PATTERN, value)
    ):
        shown = repr(value[:MAX_DURATION_LENGTH])
        if len(value) <= MAX_DURATION_LENGTH:
            parse_retention(value)  # its own error for a negative, too long or unknown one
            raise ValueError(
                f"{shown} has too many digits for its unit (at most 99999 days or 9999 weeks "
                "as text): give a longer duration as a number of seconds"
            )
        raise ValueError(f"{shown} is not a duration like '30 days'")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('Input should be a duration: a string like "30 days" or seconds')
    return parse_retention(value)


def _json_integer(value: Any) -> Any:
    """An integer as JSON means one: an int, or a float with no fraction (``3.0``); never a
    string or a boolean, which pydantic would otherwise turn into one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a valid integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("Input should be a valid integer, got a number with a fractional part")
    return int(value)


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
"""An ``int`` read as JSON Schema's ``integer``."""


class StartBody(BaseModel):
    """``POST /api/workflows/{name}/instances``: ``params`` may be left out only when the
    workflow's params accept ``null``."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str | None, WithJsonSchema(ID_SCHEMA)] = None
    """Checked by the id rule when the instance is created (422 ``invalid_id``)."""
    params: Any = None
    retention: Annotated[
        float | None, BeforeValidator(_duration), WithJsonSchema(RETENTION_SCHEMA)
    ] = None


class RestartBody(BaseModel):
    """``POST /api/instances/{id}/restart``: from the top, or from a journaled step."""

    model_config = ConfigDict(extra="forbid")

    from_step: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    occurrence: JsonInt = Field(default=1, ge=1, le=MAX_OCCURRENCE)


class TerminateBody(BaseModel):
    """``POST /api/instances/{id}/terminate``: with ``compensate``, rollbacks and
    ``on_failure`` run first."""

    model_config = ConfigDict(extra="forbid")

    compensate: StrictBool = False


class NoOptionsBody(BaseModel):
    """``POST /api/instances/{id}/pause``, ``resume`` and ``retry-now``: no body, or ``{}``."""

    model_config = ConfigDict(extra="forbid")


class EventBody(BaseModel):
    """``POST /api/instances/{id}/events``."""

    model_config = ConfigDict(extra="forbid")

    type: StrictStr = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[^\x00]*$")
    payload: Any = None


@dataclass(frozen=True)
class ApiRoute:
    """One operation of the API: its method, path template and ``Api`` method (its name is
    the OpenAPI ``operationId``)."""

    method: str
    path: str
    operation_id: str


API_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("GET", "/api/workflows", "list_workflows"),
    ApiRoute("GET", "/api/workflows/{name}", "get_workflow"),
    ApiRoute("POST", "/api/workflows/{name}/instances", "start_instance"),
    ApiRoute("GET", "/api/workflows/{name}/instances", "list_workflow_instances"),
    ApiRoute("GET", "/api/instances", "list_instances"),
    ApiRoute("GET", "/api/instances/{id}", "get_instance"),
    ApiRoute("GET", "/api/instances/{id}/output", "get_instance_output"),
    ApiRoute("GET", "/api/instances/{id}/logs", "get_instance_logs"),
    ApiRoute("POST", "/api/instances/{id}/events", "send_event"),
    ApiRoute("POST", "/api/instances/{id}/pause", "pause_instance"),
    ApiRoute("POST", "/api/instances/{id}/resume", "resume_instance"),
    ApiRoute("POST", "/api/instances/{id}/terminate", "terminate_instance"),
    ApiRoute("POST", "/api/instances/{id}/restart", "restart_instance"),
    ApiRoute("POST", "/api/instances/{id}/retry-now", "retry_instance_now"),
    ApiRoute("GET", "/metrics", "get_metrics"),
    ApiRoute("GET", "/api/workers", "list_workers"),
)


class Api:
    """The endpoints of ``/api``."""

    def __init__(self, state: HttpState) -> None:
        self.state = state

    @property
    def app(self) -> App:
        """The fw app served (looked up per request)."""
        return self.state.app

    def endpoints(self) -> list[Endpoint]:
        """The API's endpoints, from ``API_ROUTES``."""
        return [Endpoint(r.method, r.path, getattr(self, r.operation_id)) for r in API_ROUTES]

    async def get_metrics(self, request: Request) -> Response:
        """Prometheus metrics: this process's counters, the store's gauges."""
        return await metrics_response(self.app)

    async def list_workflows(self, request: Request) -> Response:
        """Every workflow with its binding, class, file, version, counts and schemas."""
        workflows = await catalog.list_workflows(self.app)
        return JSONResponse({"workflows": [w.to_json() for w in workflows]})

    async def get_workflow(self, request: Request) -> Response:
        """One workflow, as in the list."""
        info = await catalog.one_workflow(self.app, check_name(request.path_params["name"]))
        return JSONResponse(info.to_json())

    async def start_instance(self, request: Request) -> Response:
        """Start an instance: 201 when this request created it, 200 when the id existed
        (``params_match`` says whether the stored params equal those sent)."""
        name = check_name(request.path_params["name"])
        app = self.app
        handle = app.handle(name)
        body = parse_body(StartBody, await read_json(request))
        check_json_types(name, body.params, app.definition(name).params_type)
        try:
            instance = await handle.create(body.params, id=body.id, retention=body.retention)
        except ValidationError as exc:
            raise invalid_params(name, exc) from None
        location = url(request, f"/api/instances/{quote_id(instance.id)}")
        return JSONResponse(
            {  # as the create's transaction stored (or found) it: no second read
                "id": instance.id,
                "workflow": instance.workflow,
                "status": instance.created_status,
                "created": bool(instance.created),
                "params_match": bool(instance.params_match),
            },
            status_code=201 if instance.created else 200,
            headers={"Location": location},
        )

    async def list_workflow_instances(self, request: Request) -> Response:
        """Instances of one workflow, newest first, a page at a time."""
        name = check_name(request.path_params["name"])
        self.app.handle(name)  # 404 with close matches for an unknown name
        return await self._page(request, workflow=name)

    async def list_instances(self, request: Request) -> Response:
        """Instances of every workflow (``?workflow=`` narrows), newest first."""
        workflow = text_filter(request.query_params.get("workflow"), "workflow", allow_empty=False)
        return await self._page(request, workflow=workflow)

    async def get_instance(self, request: Request) -> Response:
        """Status, output, error, params, version, parent, children and steps.

        With ``?wait=S``, answers once the instance has ended or after ``S`` seconds (a long
        poll, as the remote client's ``result()`` makes); an instance still going then says
        why in ``reason`` (``?wait=0``: at once).
        """
        instance_id = check_lookup(request.path_params["id"])
        wait = request.query_params.get("wait")
        reason = None
        if wait is not None:
            reason = await wait_until_ended(self.app, instance_id, wait_seconds(wait))
        data = (await load_detail(self.app, instance_id)).to_json()
        if reason is not None:
            data["reason"] = reason
        return JSONResponse(data)

    async def get_instance_output(self, request: Request) -> Response:
        """The output of a complete instance as a JSON download."""
        instance_id = check_lookup(request.path_params["id"])
        return await output_download(await self.app.store(), instance_id)

    async def get_instance_logs(self, request: Request) -> Response:
        """The instance's ``ctx.log`` lines, oldest first (the last 1,000 are kept)."""
        instance_id = check_lookup(request.path_params["id"])
        row = await require_instance(await self.app.store(), instance_id)
        logs = await self.app.instance_handle(row.workflow, row.id).logs()
        return JSONResponse({"logs": [line.model_dump(mode="json") for line in logs]})

    async def pause_instance(self, request: Request) -> Response:
        """Pause: a waiting instance stays put, a running one stops at its next step."""
        return await self._control(request, "pause")

    async def resume_instance(self, request: Request) -> Response:
        """Resume a paused instance."""
        return await self._control(request, "resume")

    async def terminate_instance(self, request: Request) -> Response:
        """End an instance and its children (``compensate``: rollbacks first)."""
        return await self._control(request, "terminate")

    async def restart_instance(self, request: Request) -> Response:
        """Run an instance again, from the top or from a journaled step."""
        return await self._control(request, "restart")

    async def retry_instance_now(self, request: Request) -> Response:
        """Run the pending retry of a step now; 409 when the instance waits for no retry."""
        return await self._control(request, "retry-now")

    async def list_workers(self, request: Request) -> Response:
        """The registered workers, oldest first: alive, stale or dead, and what each holds."""
        from framework.runtime.liveness import worker_statuses

        found = await worker_statuses(self.app)
        return JSONResponse({"workers": [w.to_json() for w in found]})

    async def _control(self, request: Request, action: Action) -> Response:
        """Do ``action``; 409 when it does not apply now."""
        instance_id = check_lookup(request.path_params["id"])
        store = await self.app.store()
        row = await require_instance(store, instance_id)
        instance = self.app.instance_handle(row.workflow, instance_id)
        await apply_action(instance, await _control_body(request, action))
        [answer] = await summaries(store, [await require_instance(store, instance_id)])
        return JSONResponse(answer)

    async def send_event(self, request: Request) -> Response:
        """Deliver an event (buffered until the instance waits for its type): 202."""
        instance_id = check_lookup(request.path_params["id"])
        store = await self.app.store()
        row = await require_instance(store, instance_id)
        body = parse_body(EventBody, await read_json(request))
        await self.app.instance_handle(row.workflow, instance_id).send_event(
            body.type, body.payload
        )
        [answer] = await summaries(store, [await require_instance(store, instance_id)])
        return JSONResponse({**answer, "event": body.type}, status_code=202)

    async def _page(self, request: Request, workflow: str | None) -> Response:
        query = request.query_params
        status = status_filter(query.get("status"))
        limit = page_limit(query.get("limit"))
        search = text_filter(query.get("search"), "search", allow_empty=True)
        cursor = page_cursor(query.get("cursor"))
        store = await self.app.store()
        page = await store.list_instances(
            workflow=workflow, status=status, search=search, limit=limit, cursor=cursor
        )
        return JSONResponse(
            {
                "instances": await summaries(store, page.instances),
                "next_cursor": page.next_cursor,
            }
        )


async def _control_body(request: Request, action: Action) -> Control:
    """The action with the options its body gives (terminate and restart take some; the
    others none, but their body is read and checked all the same)."""
    if action == "restart":
        restart = parse_body(RestartBody, await read_json(request))
        return Control(action, from_step=restart.from_step, occurrence=restart.occurrence)
    if action == "terminate":
        terminate = parse_body(TerminateBody, await read_json(request))
        return Control(action, compensate=terminate.compensate)
    parse_body(NoOptionsBody, await read_json(request))
    return Control(action)


def parse_body(model: type[M], data: Any) -> M:
    """Validate a JSON body into ``model`` (no body at all is ``{}``); 422 with field errors.

    A body of JSON ``null`` is not an object, so it is refused like any other non-object.
    """
    try:
        return model.model_validate({} if data is NO_BODY else data)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_body", "the request body is invalid", detail=field_errors(exc)
        ) from None


def check_json_types(workflow: str, params: Any, params_type: Any) -> None:
    """Refuse params whose JSON types differ from the params schema's, though pydantic would
    convert them (``"5"`` or ``true`` for an integer, ``1`` for a boolean): the API takes what
    its OpenAPI document describes. An integral float (``5.0``) is an integer, as in JSON Schema.

    Raises:
        ApiError: 422 ``invalid_params`` with pydantic's field errors.
    """
    try:
        validator = serialization.adapter(params_type)
    except PydanticUserError:  # a type pydantic cannot check; create says what is wrong
        return
    try:
        text = json.dumps(json.loads(json.dumps(params), parse_float=_integral_as_int))
    except RecursionError:
        raise ApiError(400, "invalid_json", "the params are nested too deeply to read") from None
    try:
        validator.validate_json(text, strict=True)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return  # nested past the reader's limit: create refuses it, naming the limit
        raise invalid_params(workflow, exc) from None


def _integral_as_int(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def invalid_params(workflow: str, exc: ValidationError) -> ApiError:
    """A 422 naming every invalid field of a workflow's params."""
    errors = field_errors(exc, ("params",))
    shown = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return ApiError(
        422, "invalid_params", f"invalid params for workflow {workflow!r}: {shown}", detail=errors
    )
