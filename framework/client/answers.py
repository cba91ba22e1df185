"""What the remote client sends and how it reads the API's errors.

Sending: values become JSON text as fw stores them (pydantic models, dataclasses and dates as
JSON; NaN, infinity or nesting past the reader's limit refused before any request). Reading:
an API error body ``{"error": kind, "message": ...}`` (``framework.http.problems``) becomes the
fw error a local call raises for the same mistake, so code written against local handles
catches the same classes: ``pydantic.ValidationError`` for invalid params (``loc`` and
``msg`` as the server found them), ``UnknownWorkflowError`` with close matches,
``InstanceNotFoundError``, ``InstanceStateError`` and ``UnknownStepError``, and so on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import httpx
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError, to_jsonable_python

from framework.errors import (
    ConcurrencyKeyError,
    InstanceIdConflictError,
    InstanceNotFoundError,
    InstanceStateError,
    InvalidEventPayloadError,
    InvalidInstanceIdError,
    PayloadTooLargeError,
    RemoteAuthError,
    RemoteError,
    RemoteUnavailableError,
    SerializationError,
    UnknownEventTypeError,
    UnknownStepError,
    UnknownWorkflowError,
)

ERROR_BODY_LIMIT = 500
"""Characters of an answer that is not an fw error body quoted in the error."""


@dataclass(frozen=True)
class Call:
    """What a request was about, to name it in the error its answer stands for."""

    workflow: str | None = None
    instance_id: str | None = None
    params: Any = None
    step: str | None = None
    occurrence: int = 1
    event_type: str | None = None


def json_text(value: Any, what: str) -> str:
    """``value`` as JSON text, as fw would store it.

    Raises:
        SerializationError: the value is not JSON data, holds NaN or infinity, or is nested
            too deeply; the message names ``what``.
    """
    try:
        return json.dumps(to_jsonable_python(value), allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        if "Out of range float values" in str(exc):
            raise SerializationError(f"{what} holds NaN or infinity, not JSON numbers") from None
        raise SerializationError(f"{what} cannot be sent as JSON: {exc}") from None
    except RecursionError:
        raise SerializationError(f"{what} is nested too deeply to send as JSON") from None


def error_of(response: httpx.Response, url: str, call: Call) -> Exception:
    """The fw error an API answer that is no success stands for."""
    body = _error_body(response)
    status = response.status_code
    if body is None:
        text = response.text[:ERROR_BODY_LIMIT]
        return _by_status(status, f"the fw API at {url} answered {status}: {text}", url, None)
    kind, message = str(body.get("error")), str(body.get("message"))
    known = _named_error(kind, message, body, call)
    if known is not None:
        return known
    if kind == "read_only":
        return RemoteAuthError(
            f"the fw API at {url} refused a change: {message}", url=url, status=status, kind=kind
        )
    if status in (401, 429):
        return RemoteAuthError(
            _auth_message(status, message, url, response),
            url=url,
            status=status,
            kind=kind,
            retry_after=_retry_after(response),
        )
    return _by_status(status, f"{message} ({status} {kind} from {url})", url, kind)


def _by_status(status: int, message: str, url: str, kind: str | None) -> RemoteError:
    if status == 503:
        return RemoteUnavailableError(message, url=url, status=status, kind=kind)
    return RemoteError(message, url=url, status=status, kind=kind)


def _named_error(kind: str, message: str, body: dict[str, Any], call: Call) -> Exception | None:
    """The error a local call raises for the same mistake, with the server's message."""
    error: Exception
    if kind == "invalid_params":
        return validation_error(call.workflow or "params", body.get("detail"), call.params)
    if kind == "unknown_workflow":
        error = UnknownWorkflowError(call.workflow or "", _strings(body.get("close_matches")))
    elif kind == "instance_not_found":
        error = InstanceNotFoundError(call.instance_id or "")
    elif kind == "invalid_id":
        error = InvalidInstanceIdError(call.instance_id or "")
    elif kind == "unknown_step":
        steps = _strings(body.get("steps"))
        error = UnknownStepError(call.instance_id or "", call.step or "", call.occurrence, steps)
    elif kind == "id_conflict":
        error = InstanceIdConflictError(call.instance_id or "", None, workflow=call.workflow)
    elif kind == "unknown_event_type":
        known = _strings(body.get("known"))
        error = UnknownEventTypeError(call.workflow or "", call.event_type or "", known)
    elif kind == "invalid_payload":
        errors = [_under("payload", entry) for entry in _entries(body.get("detail"))]
        error = InvalidEventPayloadError(call.workflow or "", call.event_type or "", errors)
    elif kind == "invalid_state":
        error = InstanceStateError(message)
    elif kind == "payload_too_large":
        error = PayloadTooLargeError(message)
    elif kind == "not_serializable":
        error = SerializationError(message)
    elif kind == "no_concurrency_key":
        error = ConcurrencyKeyError(message)
    else:
        return None
    error.args = (message,)
    return error


def validation_error(title: str, detail: Any, params: Any) -> ValidationError:
    """A ``pydantic.ValidationError`` holding the field errors of a 422 ``invalid_params``
    (each ``loc`` without its leading ``"params"``, ``input`` read from the params sent)."""
    errors: list[InitErrorDetails] = []
    for entry in (_under("params", entry) for entry in _entries(detail)):
        loc: list[str | int] = entry["loc"]
        kind = str(entry.get("type", "value_error"))
        message = str(entry.get("msg", "invalid"))
        errors.append(
            InitErrorDetails(
                type=PydanticCustomError(cast(Any, kind), cast(Any, message)),
                loc=tuple(loc),
                input=_input_at(params, loc),
            )
        )
    return ValidationError.from_exception_data(title, errors)


def _entries(detail: Any) -> list[dict[str, Any]]:
    """The field errors of a 422 answer's ``detail`` (objects only)."""
    items: list[Any] = cast(Any, detail) if isinstance(detail, list) else []
    return [cast(dict[str, Any], item) for item in items if isinstance(item, dict)]


def _under(field: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A field error whose ``loc`` no longer starts with ``field`` (``params``, ``payload``)."""
    loc: list[Any] = cast(Any, entry.get("loc")) if isinstance(entry.get("loc"), list) else []
    parts = [part for part in loc if isinstance(part, str | int)]
    return {**entry, "loc": parts[1:] if parts[:1] == [field] else parts}


def _input_at(value: Any, loc: list[str | int]) -> Any:
    """The part of the params sent at ``loc`` (None where it holds nothing)."""
    current: Any = to_jsonable_python(value, fallback=lambda _: None)
    for part in loc:
        if isinstance(current, dict):
            members = cast(dict[str, Any], current)
            current = members.get(str(part)) if isinstance(part, str) else None
        elif isinstance(current, list) and isinstance(part, int):
            items: list[Any] = cast(Any, current)
            current = items[part] if 0 <= part < len(items) else None
        else:
            return None
    return current


def _auth_message(status: int, message: str, url: str, response: httpx.Response) -> str:
    if status == 429:
        return f"{message}: too many wrong tokens were sent to {url} from this address"
    sent = "Authorization" in response.request.headers
    if sent:
        return (
            f"the fw API at {url} refused the token: give connect() the server's API token "
            "(its FW_API_TOKEN)"
        )
    return f"the fw API at {url} wants a token: connect(url, token=...) with its FW_API_TOKEN"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    fields = cast(dict[str, Any], body)
    return fields if isinstance(fields.get("error"), str) else None


def _strings(value: Any) -> list[str]:
    items: list[Any] = cast(Any, value) if isinstance(value, list) else []
    return [str(item) for item in items]
