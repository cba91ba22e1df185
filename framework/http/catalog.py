"""The app's workflows as the API, Studio and the OpenAPI document describe them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic.errors import PydanticUserError
from pydantic.json_schema import JsonSchemaMode

from framework.errors import WorkflowImportError
from framework.runtime import serialization
from framework.runtime.events import declared_events
from framework.runtime.failures import message_of, raised_by_user
from framework.store.base import STATUSES

if TYPE_CHECKING:
    from framework.runtime.app import App


@dataclass(frozen=True)
class WorkflowInfo:
    """One declared workflow: where it lives, its code version, counts and schemas.

    ``load_error`` says why its module could not be imported (its schemas are then empty).
    """

    name: str
    binding: str
    class_name: str
    module: str
    file: str
    version: str
    counts: dict[str, int]
    params_type: Any = None
    output_type: Any = None
    load_error: str | None = None
    params_schema: dict[str, Any] = field(default_factory=dict[str, Any])
    output_schema: dict[str, Any] = field(default_factory=dict[str, Any])
    event_models: dict[str, Any] = field(default_factory=dict[str, Any])
    """Event type -> payload model (``Any``: none), as its ``wait_for_event`` calls name them."""
    open_events: bool = True
    """Some wait computes its type: any event type may be sent."""
    event_schemas: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    concurrency: dict[str, Any] | None = None
    """Its concurrency limit (``limit``, ``key``) with its instances ``running`` and ``queued``;
    None: unlimited."""

    @property
    def total(self) -> int:
        """How many instances the workflow has."""
        return sum(self.counts.values())

    @property
    def live(self) -> int:
        """How many of its instances have not ended."""
        return sum(
            n for s, n in self.counts.items() if s not in ("complete", "errored", "terminated")
        )

    def to_json(self) -> dict[str, Any]:
        """The workflow in ``GET /api/workflows``."""
        return {
            "name": self.name,
            "binding": self.binding,
            "class_name": self.class_name,
            "module": self.module,
            "file": self.file,
            "version": self.version,
            "counts": self.counts,
            "total": self.total,
            "params_schema": self.params_schema,
            "output_schema": self.output_schema,
            "events": {"types": self.event_schemas, "open": self.open_events},
            "load_error": self.load_error,
            "concurrency": self.concurrency,
        }


async def list_workflows(app: App) -> list[WorkflowInfo]:
    """Every declared workflow, sorted by name, with its instance counts."""
    counts = await (await app.store()).count_by_status()
    return [describe(app, name, counts.get(name, {})) for name in sorted(app.entrypoints)]


async def one_workflow(app: App, name: str) -> WorkflowInfo:
    """Workflow ``name``.

    Raises:
        UnknownWorkflowError: no workflow has that name (with close matches).
    """
    app.handle(name)  # an unknown name raises here, with close matches
    counts = await (await app.store()).count_by_status()
    return describe(app, name, counts.get(name, {}))


def describe(app: App, name: str, counts: dict[str, int]) -> WorkflowInfo:
    """Workflow ``name`` with ``counts``; a module that fails to import is reported, not raised."""
    entrypoint = app.entrypoints[name]
    limit = app.concurrency_limits.get(name)
    info = WorkflowInfo(
        name=name,
        binding=entrypoint.binding,
        class_name=entrypoint.__name__,
        module=entrypoint.module,
        file=entrypoint.file,
        version=app.version_of(name),
        counts={status: counts.get(status, 0) for status in STATUSES},
        concurrency=None if limit is None else limit.usage(counts),
    )
    try:
        definition = app.definition(name)
        params_type, output_type = definition.params_type, definition.output_type
        events = declared_events(entrypoint)
    except BaseException as exc:  # a user's module that fails to import must not hide the rest
        if not raised_by_user(exc):  # a cancelled request
            raise
        error = exc.error if isinstance(exc, WorkflowImportError) else None
        return replace(info, load_error=error or f"{type(exc).__name__}: {message_of(exc)}")
    return replace(
        info,
        params_type=params_type,
        output_type=output_type,
        params_schema=json_schema(params_type),
        output_schema=json_schema(output_type, "serialization"),
        event_models=events.models,
        open_events=events.open,
        event_schemas={t: json_schema(model) for t, model in events.models.items()},
    )


def json_schema(annotation: Any, mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The JSON schema of a type (``{}``, any JSON, when pydantic cannot describe it)."""
    try:
        adapter: TypeAdapter[Any] = serialization.adapter(annotation)
        return adapter.json_schema(mode=mode)
    except PydanticUserError:
        return {}
