"""What a ``ctx.step.do`` step was called with, journaled for people to read.

The journal keeps a step's arguments as ``{"args": [...], "kwargs": {...}}`` so Studio, the API
and ``fw instance show`` can show them. They are never read back to run anything: a replay
calls the step's function with the arguments the body passes again. A value JSON cannot hold
is kept as its ``repr``; arguments over the payload limit are cut to their start, saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic_core

from framework.runtime.records import cut_text
from framework.runtime.serialization import MAX_DEPTH, json_depth

PREVIEW_LIMIT = 4_000
"""Characters of JSON kept of arguments that are over the payload limit."""
REPR_LIMIT = 200
"""Characters kept of the ``repr`` of an argument JSON cannot hold."""


def arguments_json(args: Sequence[Any], kwargs: Mapping[str, Any], limit: int) -> str:
    """The JSON text the journal keeps of a step's arguments, at most about ``limit`` bytes.

    Never raises: arguments that cannot be written, or are too large or too deep to keep, are
    journaled as ``{"cut": true, "note": "<why>", "preview": "<the start of their JSON>"}``.
    """
    try:
        data = pydantic_core.to_json(
            {"args": list(args), "kwargs": dict(kwargs)},
            fallback=_shown,
            inf_nan_mode="strings",
            serialize_unknown=True,
        )
    except Exception as exc:  # a circular reference, a failing serializer
        return _cut(f"the arguments could not be written as JSON: {exc}", b"")
    if len(data) > limit:
        return _cut(
            f"the arguments are {len(data):,} bytes of JSON, over the payload limit of "
            f"{limit:,} bytes: only their start is kept",
            data,
        )
    if len(data) > 2 * MAX_DEPTH and json_depth(data) > MAX_DEPTH:  # shorter is never so deep
        return _cut(f"the arguments are nested deeper than {MAX_DEPTH} levels", data)
    return data.decode()


def _shown(value: Any) -> str:
    """An argument JSON cannot hold, as its ``repr``."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return cut_text(text, REPR_LIMIT)


def _cut(note: str, data: bytes) -> str:
    preview = data[:PREVIEW_LIMIT].decode(errors="ignore")
    return json.dumps({"cut": True, "note": note, "preview": preview})
