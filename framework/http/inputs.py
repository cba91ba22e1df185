"""What the API and Studio accept from a request, checked before anything reaches the store.

Every value a client sends is read here, so that no input can make the server answer 500:
JSON text (nesting a parser cannot follow, integers past Python's digit limit, ``NaN`` and
numbers too large for a float are refused with 400), the ``Content-Type`` of API bodies (415),
query parameters (ASCII digits only for numbers; a cursor fits a 64-bit integer) and the length
of ids, names and search strings (4,096 characters at most: no store holds a longer id, and the
id rule allows 100).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from starlette.requests import Request

from framework.http.problems import ApiError
from framework.runtime.journal import MAX_STEP_NAME
from framework.store.base import STATUSES, Status

MAX_LOOKUP = 4096
"""The longest id, workflow name or search string a request may send. The id rule allows 100
characters; ids stored before it through the API had at most 512, and PostgreSQL's unique
index cannot hold an id much past 2,700 bytes."""
MAX_NAME_LENGTH = MAX_STEP_NAME
"""The longest event type or step name a body or form may hold (the runtime's limit)."""
MAX_OCCURRENCE = 2**31 - 1
"""The highest occurrence of a step a restart may name."""
MAX_PAGE = 500
DEFAULT_PAGE = 50
CURSOR = re.compile(r"[0-9]{0,18}")
"""A page cursor: ASCII digits, below 10**18 (an empty one is the first page)."""
LIMIT = re.compile(r"[0-9]{1,3}")
MAX_WAIT = 60
"""The longest ``?wait=`` of ``GET /api/instances/{id}``, in seconds."""
WAIT = re.compile(r"[0-9]{1,2}")
JSON_MEDIA_TYPE = "application/json"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class UnreadableJsonError(ValueError):
    """JSON text that cannot be read; the message says why, for a person."""


def parse_json(text: str | bytes) -> Any:
    """JSON text as Python values, refusing what ``json.loads`` accepts but JSON does not mean.

    Raises:
        UnreadableJsonError: not JSON, nested too deeply to read, an integer of more digits
            than Python converts, a number too large for a float, ``NaN`` or ``Infinity``,
            or a string holding half of a surrogate pair.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise UnreadableJsonError(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise UnreadableJsonError(
            "it is nested too deeply to read (arrays and objects inside one another)"
        ) from None
    except UnreadableJsonError:
        raise
    except ValueError as exc:
        if "digits" in str(exc):
            limit = sys.get_int_max_str_digits()
            raise UnreadableJsonError(f"an integer has more than {limit:,} digits") from None
        raise UnreadableJsonError(str(exc)) from None
    source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if _SURROGATE_ESCAPE.search(source) and not _encodable(value):
        raise UnreadableJsonError("a string holds half of a surrogate pair (\\uD800-\\uDFFF)")
    return value


def _refuse_constant(name: str) -> Any:
    raise UnreadableJsonError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise UnreadableJsonError(f"the number {shown} is too large for a float")
    return value


def _encodable(value: Any) -> bool:
    """Whether every string in ``value`` (keys too) encodes as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


NO_BODY: Any = object()
"""What ``read_json`` returns for an empty body."""


async def read_json(request: Request) -> Any:
    """The API request's JSON body (``NO_BODY`` when empty).

    Raises:
        ApiError: 415 when a body is not declared ``application/json``, or declares a charset
            other than UTF-8; 400 when it is not JSON fw can read.
    """
    body = await request.body()
    if not body.strip():
        return NO_BODY
    media_type, *parameters = request.headers.get("content-type", "").split(";")
    media_type = media_type.strip()
    if media_type.lower() != JSON_MEDIA_TYPE:
        shown = repr(media_type) if media_type else "no Content-Type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the request body must be JSON sent as `Content-Type: application/json`, not {shown}",
        )
    for charset in _charsets(parameters):
        if charset.lower() != "utf-8":
            raise ApiError(
                415,
                "unsupported_media_type",
                f"the request body must be JSON in UTF-8, not charset {shorten(charset)!r}: "
                "send it as `Content-Type: application/json` (or `; charset=utf-8`)",
            )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "invalid_json", f"the request body is not UTF-8 (byte {exc.start})"
        ) from None
    try:
        return parse_json(text)
    except UnreadableJsonError as exc:
        raise ApiError(400, "invalid_json", f"the request body is not JSON: {exc}") from None


def _charsets(parameters: list[str]) -> list[str]:
    """The ``charset`` values among a ``Content-Type``'s parameters, unquoted."""
    found: list[str] = []
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            found.append(value.strip().strip('"'))
    return found


def page_limit(value: str | None) -> int:
    """``?limit=``: 1 to 500 in ASCII digits, default 50.

    Raises:
        ApiError: 400 ``invalid_limit``.
    """
    if value is None:
        return DEFAULT_PAGE
    if not LIMIT.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE:
        raise ApiError(400, "invalid_limit", f"limit must be a number from 1 to {MAX_PAGE}")
    return int(value)


def wait_seconds(value: str) -> int:
    """``?wait=``: 0 to 60 whole seconds in ASCII digits.

    Raises:
        ApiError: 400 ``invalid_wait``.
    """
    if not WAIT.fullmatch(value) or int(value) > MAX_WAIT:
        raise ApiError(
            400, "invalid_wait", f"wait must be a whole number of seconds from 0 to {MAX_WAIT}"
        )
    return int(value)


def page_cursor(value: str | None) -> str | None:
    """``?cursor=``: the ``next_cursor`` of a page (None or empty: the first page).

    Raises:
        ApiError: 400 ``invalid_cursor``.
    """
    if not value:
        return None
    if not CURSOR.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise ApiError(
            400,
            "invalid_cursor",
            f"invalid cursor {shown!r}: pass the next_cursor of a page (digits), or none "
            "for the first page",
        )
    return value


def status_filter(value: str | None) -> Status | None:
    """``?status=``: one of the statuses (None: any).

    Raises:
        ApiError: 400 ``invalid_status``.
    """
    if value is None:
        return None
    for status in STATUSES:
        if value == status:
            return status
    raise ApiError(
        400,
        "invalid_status",
        f"unknown status {shorten(value)!r}; use one of {', '.join(STATUSES)}",
    )


def text_filter(value: str | None, name: str, *, allow_empty: bool) -> str | None:
    """A text query parameter (``workflow``, ``search``), at most ``MAX_LOOKUP`` characters.

    Raises:
        ApiError: 400 ``invalid_<name>`` when too long, or empty where that means nothing.
    """
    if value is None or (allow_empty and value == ""):
        return None
    if value == "":
        raise ApiError(400, f"invalid_{name}", f"{name} is empty: leave it out to list every one")
    if len(value) > MAX_LOOKUP:
        raise ApiError(
            400,
            f"invalid_{name}",
            f"{name} has {len(value):,} characters; at most {MAX_LOOKUP:,}",
        )
    return value


def check_lookup(instance_id: str) -> str:
    """An instance id named by a request, refused before the store when no store could
    hold it.

    Raises:
        ApiError: 404 ``instance_not_found`` for an id over ``MAX_LOOKUP`` characters.
    """
    if len(instance_id) > MAX_LOOKUP:
        raise ApiError(
            404,
            "instance_not_found",
            f"no instance has an id of {len(instance_id):,} characters: ids have at most 100 "
            f"(and instances stored before the id rule at most {MAX_LOOKUP:,})",
            close_matches=[],
        )
    return instance_id


def check_name(name: str) -> str:
    """A workflow name named by a request, refused when far longer than any name.

    Raises:
        ApiError: 404 ``unknown_workflow``.
    """
    if len(name) > MAX_LOOKUP:
        raise ApiError(
            404,
            "unknown_workflow",
            f"no workflow has a name of {len(name):,} characters",
            close_matches=[],
        )
    return name


def ascii_int(text: str) -> int | None:
    """``text`` as an integer when it is ASCII digits of a 64-bit size, else None."""
    if re.fullmatch(r"[0-9]{1,18}", text):
        return int(text)
    return None


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[:limit] + "…"
