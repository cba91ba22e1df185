"""What the API and Studio read about instances: an instance with its steps, parent and
children, list summaries, and close matches for an id that does not exist."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from framework.errors import (
    InstanceFailedError,
    InstanceNotFoundError,
    InstanceTerminatedError,
    ResultTimeoutError,
    SerializationError,
    UnknownWorkflowError,
)
from framework.http.problems import ApiError
from framework.runtime.handles import instance_status, step_record
from framework.runtime.instance_ids import close_instance_ids
from framework.runtime.records import (
    AnyInstanceStatus,
    ErrorInfo,
    InstanceStatus,
    StepRecord,
    WaitingFor,
    timestamp,
)
from framework.runtime.waiting import waits_of
from framework.store.base import TERMINAL, InstanceRow

if TYPE_CHECKING:
    from framework.runtime.app import App
    from framework.store.base import Store

MAX_CHILDREN = 1000
"""The most children an instance's detail lists."""


@dataclass(frozen=True)
class InstanceDetail:
    """One instance as the API and Studio show it."""

    status: InstanceStatus[Any]
    steps: list[StepRecord]
    parent: InstanceRow | None
    children: list[InstanceRow]

    @property
    def child_status(self) -> dict[str, str]:
        """Child id -> its current status."""
        return {child.id: child.status for child in self.children}

    @property
    def live(self) -> bool:
        """Whether the instance or one of its children may still change."""
        return not self.status.terminal or any(c.status not in TERMINAL for c in self.children)

    def to_json(self) -> dict[str, Any]:
        """The body of ``GET /api/instances/{id}``."""
        data = self.status.model_dump(mode="json")
        data["parent"] = summary(self.parent) if self.parent else None
        data["children"] = [summary(child) for child in self.children]
        statuses = self.child_status
        data["steps"] = [
            {
                **step.model_dump(mode="json"),
                "duration": step.duration,
                "child_status": statuses.get(step.child_id) if step.child_id else None,
            }
            for step in self.steps
        ]
        return data


async def load_detail(app: App, instance_id: str) -> InstanceDetail:
    """The instance ``instance_id`` with its steps, parent and children.

    Raises:
        ApiError: 404 when no instance has that id, with close matches.
    """
    store = await app.store()
    row = await require_instance(store, instance_id)
    ended = row.status in TERMINAL
    rows = await store.list_steps(instance_id)
    steps = [step_record(step, ended) for step in rows]
    parent = await store.get_instance(row.parent_id) if row.parent_id else None
    children = (await store.list_instances(parent_id=instance_id, limit=MAX_CHILDREN)).instances
    known = {child.id for child in children}
    missing = [s.child_id for s in steps if s.child_id and s.child_id not in known]
    if missing:
        children += await store.get_instances(missing)
    children.sort(key=lambda child: child.seq)
    return InstanceDetail(instance_status(row, Any, rows), steps, parent, children)


async def wait_until_ended(app: App, instance_id: str, seconds: float) -> str | None:
    """Wait up to ``seconds`` for instance ``instance_id`` to end (as ``result()`` waits);
    None once it has, else why it has not (``ResultTimeoutError.reason``).

    Raises:
        ApiError: 404 when no instance has that id, with close matches.
    """
    row = await require_instance(await app.store(), instance_id)
    try:
        await app.instance_handle(row.workflow, instance_id).result(timeout=seconds)
    except ResultTimeoutError as exc:
        return exc.reason or exc.status
    except (
        InstanceFailedError,
        InstanceTerminatedError,
        SerializationError,  # ended with an output its type cannot read: the detail says so
        UnknownWorkflowError,  # ended, of a workflow the app no longer declares
        InstanceNotFoundError,  # deleted meanwhile: the detail answers 404
    ):
        pass
    return None


async def require_instance(store: Store, instance_id: str) -> InstanceRow:
    """The stored instance ``instance_id``, else a 404 ``ApiError`` with close matches."""
    row = await store.get_instance(instance_id)
    if row is None:
        raise await instance_not_found(store, instance_id)
    return row


async def output_download(store: Store, instance_id: str) -> Response:
    """The output of a complete instance as a JSON download (``<id>-output.json``).

    Raises:
        ApiError: 404 for an unknown id; 409 ``no_output`` unless the instance is complete.
    """
    row = await require_instance(store, instance_id)
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


async def instance_not_found(store: Store, instance_id: str) -> ApiError:
    """A 404 for ``instance_id``, suggesting ids that look like it."""
    matches = await close_instance_ids(store, instance_id)
    hint = f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
    return ApiError(
        404,
        "instance_not_found",
        f"no instance with id {instance_id!r}{hint}",
        close_matches=matches,
    )


def summary(row: InstanceRow) -> dict[str, Any]:
    """An instance in a list: id, workflow, status, error, times, version, parent."""
    return summary_of(instance_status_light(row))


def summary_of(status: InstanceStatus[Any]) -> dict[str, Any]:
    """The list form of a status (without output and params)."""
    return status.model_dump(mode="json", exclude={"output", "params", "unreadable"})


async def summaries(store: Store, rows: list[InstanceRow]) -> list[dict[str, Any]]:
    """The list forms of ``rows``, each saying what it waits for."""
    return [summary_of(status) for status in await statuses_of(store, rows)]


async def statuses_of(store: Store, rows: list[InstanceRow]) -> list[InstanceStatus[Any]]:
    """The light statuses of a page of instances, each saying what it waits for."""
    waits = await waits_of(store, rows)
    return [instance_status_light(row, waits.get(row.id)) for row in rows]


def instance_status_light(
    row: InstanceRow, waits: list[WaitingFor] | None = None
) -> InstanceStatus[Any]:
    """The status of ``row`` without reading its output or params (for lists)."""
    return AnyInstanceStatus(
        id=row.id,
        workflow=row.workflow,
        status=row.status,
        error=ErrorInfo.model_validate_json(row.error) if row.error else None,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        version=row.version,
        parent_id=row.parent_id,
        waiting_for=waits or [],
        runs=row.runs,
        retention=row.retention,
    )
