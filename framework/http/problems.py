"""How errors become HTTP answers: one JSON shape for every API error.

An error body is ``{"error": "<kind>", "message": "<what happened and what to do>"}`` plus
fields of its kind: ``close_matches`` (an unknown workflow, 404; an event type the workflow
never waits for, 422, with ``known``), ``detail`` (422: pydantic's ``loc``, ``msg``, ``type`` of
each invalid field of the params, or of an event's payload), ``steps`` (an unknown restart step),
``file``, ``line`` and ``cause`` (a workflow module that fails to import: 500
``workflow_import_error``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from framework.errors import (
    ConcurrencyKeyError,
    ConfigError,
    InstanceIdConflictError,
    InstanceStateError,
    InvalidEventPayloadError,
    InvalidInstanceIdError,
    PayloadTooLargeError,
    SerializationError,
    StoreError,
    UnknownEventTypeError,
    UnknownStepError,
    UnknownWorkflowError,
    WorkflowImportError,
)

_HTTP_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_attempts",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as ``status`` with a JSON body (or a Studio error page)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return {"error": self.error, "message": self.message, **self.extra}

    def response(self) -> JSONResponse:
        """This error as a JSON response, with its headers (``Allow``, ``Retry-After``)."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def field_errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as ``{"loc", "msg", "type"}`` dicts, each ``loc`` under ``prefix``."""
    return [
        {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False)
    ]


def as_api_error(exc: Exception) -> ApiError | None:
    """The API error an exception raised by fw (or Starlette) stands for, if any."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        kind = _HTTP_KINDS.get(exc.status_code, "error")
        return ApiError(exc.status_code, kind, str(exc.detail), headers=dict(exc.headers or {}))
    if isinstance(exc, UnknownWorkflowError):
        return ApiError(404, "unknown_workflow", str(exc), close_matches=exc.close_matches)
    if isinstance(exc, ValidationError):
        return ApiError(422, "invalid_params", "the params are invalid", detail=field_errors(exc))
    if isinstance(exc, UnknownEventTypeError):
        return ApiError(
            422, "unknown_event_type", str(exc), close_matches=exc.close_matches, known=exc.known
        )
    if isinstance(exc, InvalidEventPayloadError):
        detail = [{**error, "loc": ["payload", *error["loc"]]} for error in exc.errors]
        return ApiError(422, "invalid_payload", str(exc), detail=detail)
    if isinstance(exc, InvalidInstanceIdError):
        return ApiError(422, "invalid_id", str(exc))
    if isinstance(exc, PayloadTooLargeError):
        return ApiError(413, "payload_too_large", str(exc))
    if isinstance(exc, SerializationError):
        return ApiError(422, "not_serializable", str(exc))
    if isinstance(exc, ConcurrencyKeyError):
        return ApiError(422, "no_concurrency_key", str(exc))
    if isinstance(exc, UnknownStepError):
        return ApiError(409, "unknown_step", str(exc), steps=sorted(exc.steps))
    if isinstance(exc, InstanceIdConflictError):
        return ApiError(409, "id_conflict", str(exc))
    if isinstance(exc, InstanceStateError):
        return ApiError(409, "invalid_state", str(exc))
    if isinstance(exc, WorkflowImportError):
        return ApiError(
            500, "workflow_import_error", str(exc), file=exc.file, line=exc.line, cause=exc.error
        )
    if isinstance(exc, ConfigError):
        return ApiError(503, "app_not_ready", str(exc))
    if isinstance(exc, StoreError):
        return ApiError(503, "store_unavailable", str(exc))
    return None
