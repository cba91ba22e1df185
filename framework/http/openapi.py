"""The OpenAPI 3.1 document of the API, with every workflow's params and output schemas.

Each workflow gets a concrete path, ``/api/workflows/<name>/instances``, whose request body
holds its params schema; the templated ``/api/workflows/{name}/instances`` serves the rest.
"""

from __future__ import annotations

import re
from typing import Any, cast

from pydantic import TypeAdapter
from pydantic.errors import PydanticUserError
from pydantic.json_schema import JsonSchemaMode

import framework
from framework.http.api import EventBody, RestartBody, StartBody, TerminateBody
from framework.http.catalog import WorkflowInfo
from framework.runtime.records import InstanceStatus, StepRecord

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
    "required": ["id", "workflow", "status"],
    "properties": {
        "id": {"type": "string"},
        "workflow": {"type": "string"},
        "status": {"type": "string"},
    },
}


def openapi_document(workflows: list[WorkflowInfo], title: str, secured: bool) -> dict[str, Any]:
    """The OpenAPI document of an app's API."""
    schemas = _component_schemas(workflows)
    paths: dict[str, Any] = {**_common_paths()}
    for info in workflows:
        paths[f"/api/workflows/{info.name}/instances"] = _workflow_paths(info)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title} (fw API)",
            "version": framework.__version__,
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
        ("StartBody", "validation", TypeAdapter(StartBody)),
        ("RestartBody", "validation", TypeAdapter(RestartBody)),
        ("EventBody", "validation", TypeAdapter(EventBody)),
        ("TerminateBody", "validation", TypeAdapter(TerminateBody)),
        ("Instance", "serialization", TypeAdapter(InstanceStatus[Any])),
        ("Step", "serialization", TypeAdapter(StepRecord)),
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
    mapping, definitions = _json_schemas(inputs)
    schemas: dict[str, Any] = dict(definitions)
    for (name, _mode), schema in mapping.items():
        if schema.get("$ref") != REF.format(model=name):  # else the model has that name already
            schemas[name] = schema
    schemas.update(undescribed)
    schemas["ApiError"] = _ERROR
    schemas["StartedInstance"] = _STARTED
    return schemas


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


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Bad request",
        401: "Missing or wrong token",
        404: "Not found (with close matches)",
        409: "Not possible in the instance's current status",
        413: "Body too large",
        422: "Invalid body or params (field errors)",
    }
    return {str(s): _json(_ref("ApiError"), texts[s]) for s in statuses}


def _operation(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, "responses": responses, **extra}


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The instance id (percent-encode a `/`).",
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_LIST_QUERY = [
    {
        "name": "status",
        "in": "query",
        "schema": {
            "type": "string",
            "enum": ["queued", "running", "waiting", "paused", "complete", "errored", "terminated"],
        },
    },
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    {
        "name": "search",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Instances whose id contains this text.",
    },
]
_PAGE = {
    "type": "object",
    "properties": {
        "instances": {"type": "array", "items": _ref("Instance")},
        "next_cursor": {"type": ["string", "null"]},
    },
}


def _optional_body(component: str) -> dict[str, Any]:
    return {"required": False, "content": {"application/json": {"schema": _ref(component)}}}


def _common_paths() -> dict[str, Any]:
    ok = "OK"
    bodies = {"restart": "RestartBody", "terminate": "TerminateBody"}
    control = {
        action: {
            "post": _operation(
                f"{action}_instance",
                f"{action.capitalize()} an instance",
                {"200": _json(_ref("Instance"), ok), **_errors(404, 409)},
                parameters=[_ID],
                **({"requestBody": _optional_body(bodies[action])} if action in bodies else {}),
            )
        }
        for action in ("pause", "resume", "terminate", "restart")
    }
    return {
        "/api/workflows": {
            "get": _operation(
                "list_workflows",
                "Every workflow, with counts and params schema",
                {
                    "200": _json(
                        {"type": "object", "properties": {"workflows": {"type": "array"}}}, ok
                    )
                },
            )
        },
        "/api/workflows/{name}": {
            "get": _operation(
                "get_workflow",
                "One workflow",
                {"200": _json({"type": "object"}, ok), **_errors(404)},
                parameters=[_NAME],
            )
        },
        "/api/workflows/{name}/instances": {
            "post": _operation(
                "start_instance",
                "Start an instance of any workflow",
                {
                    "201": _json(_ref("StartedInstance"), "Created"),
                    "200": _json(_ref("StartedInstance"), "The id existed: that instance"),
                    **_errors(404, 409, 413, 422),
                },
                parameters=[_NAME],
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("StartBody")}},
                },
            ),
            "get": _operation(
                "list_workflow_instances",
                "Instances of a workflow, newest first",
                {"200": _json(_PAGE, ok), **_errors(400, 404)},
                parameters=[_NAME, *_LIST_QUERY],
            ),
        },
        "/api/instances": {
            "get": _operation(
                "list_instances",
                "Instances of every workflow, newest first",
                {"200": _json(_PAGE, ok), **_errors(400)},
                parameters=[
                    {"name": "workflow", "in": "query", "schema": {"type": "string"}},
                    *_LIST_QUERY,
                ],
            )
        },
        "/api/instances/{id}": {
            "get": _operation(
                "get_instance",
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
                        ok,
                    ),
                    **_errors(404),
                },
                parameters=[_ID],
            )
        },
        "/api/instances/{id}/output": {
            "get": _operation(
                "get_instance_output",
                "The output of a complete instance, as a download",
                {"200": _json({}, ok), **_errors(404, 409)},
                parameters=[_ID],
            )
        },
        "/api/instances/{id}/events": {
            "post": _operation(
                "send_event",
                "Send an event (buffered until the instance waits for its type)",
                {"202": _json(_ref("Instance"), "Accepted"), **_errors(404, 409, 413, 422)},
                parameters=[_ID],
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("EventBody")}},
                },
            )
        },
        **{f"/api/instances/{{id}}/{action}": item for action, item in control.items()},
    }


def _workflow_paths(info: WorkflowInfo) -> dict[str, Any]:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", info.name).strip("_")
    params = _ref(component_name(info.name, "Params")) if info.load_error is None else {}
    body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "Optional; starting is idempotent on it."},
            "params": params,
        },
    }
    return {
        "post": _operation(
            f"start_{slug}",
            f"Start an instance of {info.name}",
            {
                "201": _json(_ref("StartedInstance"), "Created"),
                "200": _json(_ref("StartedInstance"), "The id existed: that instance"),
                **_errors(409, 413, 422),
            },
            requestBody={"required": True, "content": {"application/json": {"schema": body}}},
            tags=[info.name],
        ),
        "get": _operation(
            f"list_{slug}",
            f"Instances of {info.name}, newest first",
            {"200": _json(_PAGE, "OK"), **_errors(400)},
            parameters=_LIST_QUERY,
            tags=[info.name],
        ),
    }
