"""Studio's Jinja2 environment: the ``templates/studio`` pages, every value escaped."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from pydantic import TypeAdapter

from framework.http.state import quote_id, studio_segment
from framework.resources import templates_dir
from framework.runtime.durations import format_duration, format_relative
from framework.runtime.waiting import wait_label

_ANY: TypeAdapter[Any] = TypeAdapter(Any)


@dataclass(frozen=True)
class Preview:
    """A value as indented JSON, cut at a limit; ``size`` is the full text's length."""

    text: str
    truncated: bool
    size: int


@functools.cache
def studio_environment() -> jinja2.Environment:
    """The environment of Studio's pages (autoescaped; an unknown variable fails)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "studio"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        quote_id=quote_id,
        studio_segment=studio_segment,
        query=query,
        ts=timestamp,
        when=moment,
        duration=duration,
        wait_label=wait_label,
    )
    cast(dict[str, Any], env.globals)["preview"] = preview
    return env


def render_page(template: str, context: dict[str, Any]) -> str:
    """Render ``templates/studio/<template>``."""
    return studio_environment().get_template(template).render(context)


def query(value: object) -> str:
    """``value`` percent-encoded for a query string or a path segment."""
    return quote(str(value), safe="")


def duration(seconds: float | None) -> str:
    """Seconds as fw shows every duration (``250 ms``, ``3 min 5 s``)."""
    return "" if seconds is None else format_duration(seconds)


def timestamp(value: datetime | None) -> str:
    """A UTC time as ``2025-01-31 12:00:05``."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def moment(value: datetime | float | None) -> Markup:
    """A time (or seconds since the epoch) as people read it: ``<time>`` saying how long ago
    (or how soon) it is, with the exact UTC time on hover; ``studio.js`` keeps the words
    current."""
    if value is None:
        return Markup("")
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    exact = f"{timestamp(value)} UTC"
    relative = format_relative(value.timestamp() - time.time())
    return Markup('<time datetime="{}" title="{}" data-relative>{}</time>').format(
        value.isoformat(), exact, relative
    )


def preview(value: Any, limit: int = 20_000) -> Preview:
    """``value`` as indented JSON, at most ``limit`` characters."""
    try:
        text = json.dumps(_ANY.dump_python(value, mode="json"), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return Preview(text[:limit], len(text) > limit, len(text))
