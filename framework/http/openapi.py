"""The OpenAPI 3.1 document of the API, with every workflow's params and output schemas.

Its paths derive from ``API_ROUTES``, the list the app's routes come from; ``OPERATIONS`` says
what each operation takes and answers. Each workflow also gets a concrete path,
``/api/workflows/<name>/instances``, whose request body holds its params schema; the templated
``/api/workflows/{name}/instances`` serves the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import TypeAdapter
from pydantic.errors import PydanticUserError
from pydantic.json_schema import JsonSchemaMode

from framework.http.api import (
    API_ROUTES,
    ID_SCHEMA,
    RETENTION_SCHEMA,
    ApiRoute,
    EventBody,
    RestartBody,
    TerminateBody,
)
from framework.http.catalog import WorkflowInfo
from framework.http.inputs import CURSOR, MAX_LOOKUP, MAX_PAGE, MAX_WAIT
from framework.resources import VERSION
from framework.runtime import serialization
from framework.runtime.liveness import WorkerStatus
from framework.runtime.records import InstanceStatus, LogRecord, StepRecord
from framework.store.base import STATUSES

REF = "#/components/schemas/{model}"
SchemaInput = tuple[str, JsonSchemaMode, TypeAdapter[Any]]

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "The kind of error, like unknown_workflow."},
        "message": {"type": "string", "description": "What happened and what to do."},
        "close_matches": {"type": "array", "items": {"type": "string"}},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
_STARTED = {
    "type": "object",
    "required": ["id", "workflow", "status", "created", "params_match"],
    "properties": {
        "id": {"type": "string"},
        "workflow": {"type": "string"},
        "status": {"type": "string"},
        "created": {
            "type": "boolean",
            "description": "True (201) when this request stored the instance; false (200) "
            "when the id existed and that instance is returned unchanged.",
        },
        "params_match": {
            "type": "boolean",
            "description": "Whether the stored params equal those sent (always true when "
            "created).",
        },
    },
}


def openapi_document(workflows: list[WorkflowInfo], title: str, secured: bool) -> dict[str, Any]:
    """The OpenAPI document of an app's API."""
    schemas = _component_schemas(workflows)
    paths = api_paths(workflows, secured)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title} (fw API)",
            "version": VERSION,
            "description": "Start, follow and control durable workflow instances.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
    if secured:
        document["security"] = [{"bearerAuth": []}]
    return document


def component_name(workflow: str, part: str) -> str:
    """``order-pipeline`` + ``Params`` -> ``OrderPipelineParams``."""
    words = re.split(r"[^A-Za-z0-9]+", workflow)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + part


def _component_schemas(workflows: list[WorkflowInfo]) -> dict[str, Any]:
    inputs: list[SchemaInput] = [
        ("RestartBody", "validation", TypeAdapter(RestartBody)),
        ("EventBody", "validation", TypeAdapter(EventBody)),
        ("TerminateBody", "validation", TypeAdapter(TerminateBody)),
        ("Instance", "serialization", TypeAdapter(InstanceStatus[Any])),
        ("Step", "serialization", TypeAdapter(StepRecord)),
        ("LogLine", "serialization", TypeAdapter(LogRecord)),
        ("Worker", "serialization", TypeAdapter(WorkerStatus)),
    ]
    undescribed: dict[str, Any] = {}
    for info in workflows:
        if info.load_error is not None:
            continue
        for part, kind, mode in (
            ("Params", info.params_type, "validation"),
            ("Output", info.output_type, "serialization"),
        ):
            name = component_name(info.name, part)
            adapter = _adapter(kind)
            if adapter is None:
                undescribed[name] = {}
            else:
                inputs.append((name, cast(JsonSchemaMode, mode), adapter))
        for event_type, model in info.event_models.items():
            name = event_component(info.name, event_type)
            adapter = _adapter(model)
            if adapter is None:
                undescribed[name] = {}
            else:
                inputs.append((name, "validation", adapter))
    mapping, definitions = _json_schemas(inputs)
    schemas: dict[str, Any] = dict(definitions)
    for (name, _mode), schema in mapping.items():
        if schema.get("$ref") != REF.format(model=name):  # else the model has that name already
            schemas[name] = schema
    schemas.update(undescribed)
    for info in workflows:
        if info.load_error is None and (info.event_models or not info.open_events):
            schemas[component_name(info.name, "Events")] = _events_schema(info)
    schemas["ApiError"] = _ERROR
    schemas["StartedInstance"] = _STARTED
    return schemas


def event_component(workflow: str, event_type: str) -> str:
    """``order-pipeline`` + ``approval`` -> ``OrderPipelineApprovalEvent``."""
    return component_name(workflow, component_name(event_type, "Event"))


def _events_schema(info: WorkflowInfo) -> dict[str, Any]:
    """The bodies ``POST /api/instances/{id}/events`` accepts for an instance of ``info``:
    one per event type it waits for (``type`` and its ``payload``), any type when open."""
    choices: list[dict[str, Any]] = [
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"const": event_type},
                "payload": _ref(event_component(info.name, event_type)),
            },
            "required": ["type"],
        }
        for event_type in sorted(info.event_models)
    ]
    if info.open_events:
        choices.append(_ref("EventBody"))
    if not choices:
        return {"description": f"An instance of {info.name} waits for no event: 422", "not": {}}
    description = (
        f"The events an instance of {info.name} waits for"
        + (" (and any other type: a wait computes its type)" if info.open_events else "")
        + "; another type, or a payload that fails its model, is refused with 422."
    )
    return {"description": description, "oneOf": choices}


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(annotation)
    except PydanticUserError:
        return None


def _json_schemas(
    inputs: list[SchemaInput],
) -> tuple[dict[tuple[str, JsonSchemaMode], Any], dict[str, Any]]:
    """Schemas of every input at once (shared models under one name), and the models they
    refer to; a type pydantic cannot describe is any JSON."""
    try:
        mapping, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)
        return mapping, defs.get("$defs", {})
    except PydanticUserError:
        if len(inputs) == 1:
            return {(inputs[0][0], inputs[0][1]): {}}, {}
        merged: dict[tuple[str, JsonSchemaMode], Any] = {}
        definitions: dict[str, Any] = {}
        for one in inputs:
            mapping, defs = _json_schemas([one])
            merged.update(mapping)
            definitions.update(defs)
        return merged, definitions


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR_TEXTS = {
    400: "Bad request: malformed JSON (invalid_json) or query (invalid_status, invalid_limit, "
    "invalid_cursor, invalid_workflow, invalid_search, invalid_wait), or a request the HTTP "
    "server could not read at all (invalid_request: malformed, or a request line and headers "
    "longer than 64 KiB)",
    401: "Missing or wrong token (when the server has one)",
    404: "Not found (with close matches)",
    409: "Not possible in the instance's current status",
    413: "Body too large",
    415: "The body is not sent as application/json",
    422: "Invalid body, params or id (field errors)",
    429: "Too many wrong tokens from this client (see Retry-After)",
    503: "No generated code yet, or the database is unavailable",
}


def _errors(statuses: tuple[int, ...]) -> dict[str, Any]:
    return {str(s): _json(_ref("ApiError"), ERROR_TEXTS[s]) for s in statuses}


@dataclass(frozen=True)
class OperationDoc:
    """What one operation of ``API_ROUTES`` takes and answers."""

    summary: str
    responses: dict[str, Any]
    errors: tuple[int, ...] = ()
    query: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    body: dict[str, Any] | None = None
    """The request body (``requestBody``), if the operation takes one."""
    per_workflow: str | None = None
    """For an operation of ``PER_WORKFLOW``: its ``operationId`` on each workflow's path
    (``{slug}`` stands for the workflow's name)."""


PER_WORKFLOW = "/api/workflows/{name}/instances"
"""The path the document writes once per workflow, ``/api/workflows/<name>/instances``, each
with that workflow's params schema (the name of no workflow answers 404)."""


PATH_PARAMETERS = {
    "id": {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LOOKUP},
        "description": "The instance id (percent-encode a `/`; `.` and `..` as `%2E`).",
    },
    "name": {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LOOKUP},
        "description": "The workflow's name.",
    },
}
LIST_QUERY = [
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}},
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string", "pattern": f"^{CURSOR.pattern}$"},
        "description": "The next_cursor of the previous page (empty or absent: the first).",
    },
    {
        "name": "search",
        "in": "query",
        "schema": {"type": "string", "maxLength": MAX_LOOKUP},
        "description": "Instances whose id contains this text (empty: any).",
    },
]
WORKFLOW_QUERY = {
    "name": "workflow",
    "in": "query",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LOOKUP},
    "description": "Only instances of this workflow.",
}
PAGE = {
    "type": "object",
    "required": ["instances", "next_cursor"],
    "properties": {
        "instances": {"type": "array", "items": _ref("Instance")},
        "next_cursor": {"type": ["string", "null"]},
    },
}
WAIT_QUERY = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT, "default": 0},
    "description": "Seconds to wait for the instance to end before answering (a long poll). "
    "An instance still going then says why in `reason` (with `wait=0` too, at once).",
}
BODY_ERRORS = (400, 413, 415, 422)


def _body(component: str, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(component)}}}


def _control(action: str, body: str | None = None, summary: str | None = None) -> OperationDoc:
    return OperationDoc(
        summary or f"{action.capitalize()} an instance",
        {"200": _json(_ref("Instance"), "The instance after the action")},
        (404, 409, *BODY_ERRORS),  # a body the action takes no options from is checked too
        body=_body(body, required=False) if body else None,
    )


OPERATIONS: dict[str, OperationDoc] = {
    "list_workflows": OperationDoc(
        "Every workflow, with counts and params schema",
        {
            "200": _json(
                {
                    "type": "object",
                    "required": ["workflows"],
                    "properties": {"workflows": {"type": "array", "items": {"type": "object"}}},
                },
                "OK",
            )
        },
    ),
    "get_workflow": OperationDoc("One workflow", {"200": _json({"type": "object"}, "OK")}, (404,)),
    "start_instance": OperationDoc(
        "Start an instance of {name}",
        {
            "201": _json(_ref("StartedInstance"), "Created"),
            "200": _json(_ref("StartedInstance"), "The id existed: that instance"),
        },
        (409, *BODY_ERRORS),
        per_workflow="start_{slug}",
    ),
    "list_workflow_instances": OperationDoc(
        "Instances of {name}, newest first",
        {"200": _json(PAGE, "OK")},
        (400,),
        LIST_QUERY,
        per_workflow="list_{slug}",
    ),
    "list_instances": OperationDoc(
        "Instances of every workflow, newest first",
        {"200": _json(PAGE, "OK")},
        (400,),
        [WORKFLOW_QUERY, *LIST_QUERY],
    ),
    "get_instance": OperationDoc(
        "Status, output, error, params, parent, children and steps",
        {
            "200": _json(
                {
                    "allOf": [
                        _ref("Instance"),
                        {
                            "type": "object",
                            "properties": {
                                "steps": {"type": "array", "items": _ref("Step")},
                                "children": {"type": "array", "items": _ref("Instance")},
                            },
                        },
                    ]
                },
                "OK",
            )
        },
        (400, 404),
        [WAIT_QUERY],
    ),
    "get_instance_logs": OperationDoc(
        "The instance's ctx.log lines, oldest first (the last 1,000 are kept)",
        {
            "200": _json(
                {
                    "type": "object",
                    "properties": {"logs": {"type": "array", "items": _ref("LogLine")}},
                    "required": ["logs"],
                },
                "OK",
            )
        },
        (404,),
    ),
    "get_instance_output": OperationDoc(
        "The output of a complete instance, as a download", {"200": _json({}, "OK")}, (404, 409)
    ),
    "send_event": OperationDoc(
        "Send an event (buffered until the instance waits for its type); the types and "
        "payloads each workflow accepts are the components <Workflow>Events",
        {"202": _json(_ref("Instance"), "Accepted")},
        (404, 409, *BODY_ERRORS),
        body=_body("EventBody", required=True),
    ),
    "pause_instance": _control("pause"),
    "resume_instance": _control("resume"),
    "terminate_instance": _control("terminate", "TerminateBody"),
    "restart_instance": _control("restart", "RestartBody"),
    "get_metrics": OperationDoc(
        "Prometheus metrics: this process's counters and histograms, the store's gauges "
        "(docs/operations.md#metrics)",
        {
            "200": {
                "description": "The Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    ),
    "list_workers": OperationDoc(
        "The registered workers: alive, stale (late to beat) or dead, and the instances each "
        "holds",
        {
            "200": _json(
                {
                    "type": "object",
                    "required": ["workers"],
                    "properties": {"workers": {"type": "array", "items": _ref("Worker")}},
                },
                "OK",
            )
        },
    ),
    "retry_instance_now": _control(
        "retry-now", summary="Run the pending retry of a step now (409: no retry waits)"
    ),
}


def api_paths(workflows: list[WorkflowInfo], secured: bool) -> dict[str, Any]:
    """The paths of the document: one operation per entry of ``API_ROUTES``, those of
    ``PER_WORKFLOW`` once per workflow."""
    paths: dict[str, Any] = {}
    for route in API_ROUTES:
        doc = OPERATIONS[route.operation_id]
        if doc.per_workflow is not None:
            for info in workflows:
                path = route.path.replace("{name}", info.name)
                paths.setdefault(path, {})[route.method.lower()] = _workflow_operation(
                    route, doc, doc.per_workflow, info, secured
                )
            continue
        parameters = [
            PATH_PARAMETERS[part[1:-1]]
            for part in route.path.split("/")
            if part.startswith("{") and part.endswith("}")
        ]
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route.operation_id, doc, [*parameters, *doc.query], doc.body, secured
        )
    return paths


def _operation(
    operation_id: str,
    doc: OperationDoc,
    parameters: list[dict[str, Any]],
    body: dict[str, Any] | None,
    secured: bool,
    **extra: Any,
) -> dict[str, Any]:
    errors = (*doc.errors, 400, 503, *((401, 429) if secured else ()))
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": doc.summary,
        "responses": {**doc.responses, **_errors(tuple(sorted(set(errors))))},
        **extra,
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _workflow_operation(
    route: ApiRoute, doc: OperationDoc, operation_id: str, info: WorkflowInfo, secured: bool
) -> dict[str, Any]:
    """An operation of ``PER_WORKFLOW`` on the path of workflow ``info``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", info.name).strip("_")
    named = OperationDoc(doc.summary.format(name=info.name), doc.responses, doc.errors, doc.query)
    body = _start_body(info) if route.method == "POST" else None
    return _operation(
        operation_id.format(slug=slug), named, doc.query, body, secured, tags=[info.name]
    )


def _start_body(info: WorkflowInfo) -> dict[str, Any]:
    """The body that starts workflow ``info``: an optional id and its params (required
    unless they may be ``null``)."""
    loaded = info.load_error is None
    params = _ref(component_name(info.name, "Params")) if loaded else {}
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"id": ID_SCHEMA, "params": params, "retention": RETENTION_SCHEMA},
    }
    if loaded and not _accepts_null(info.params_type):
        schema["required"] = ["params"]
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _accepts_null(params_type: Any) -> bool:
    """Whether a workflow's params may be ``null`` (then ``params`` may be left out)."""
    try:
        serialization.validate(None, params_type)
    except Exception:
        return False
    return True
