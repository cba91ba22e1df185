"""What the API and Studio read about instances: an instance with its steps, parent and
children, list summaries, and close matches for an id that does not exist."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from framework.http.problems import ApiError
from framework.runtime.handles import instance_status, step_record
from framework.runtime.records import ErrorInfo, InstanceStatus, StepRecord, timestamp
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
    steps = [step_record(step) for step in await store.list_steps(instance_id)]
    parent = await store.get_instance(row.parent_id) if row.parent_id else None
    children = (await store.list_instances(parent_id=instance_id, limit=MAX_CHILDREN)).instances
    known = {child.id for child in children}
    missing = [s.child_id for s in steps if s.child_id and s.child_id not in known]
    if missing:
        children += await store.get_instances(missing)
    children.sort(key=lambda child: child.seq)
    return InstanceDetail(instance_status(row, Any), steps, parent, children)


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


async def close_instance_ids(store: Store, instance_id: str) -> list[str]:
    """Up to three stored ids that look like ``instance_id`` (sharing its first half)."""
    stem = instance_id[: max(2, len(instance_id) // 2)]
    page = await store.list_instances(search=stem, limit=200)
    return difflib.get_close_matches(
        instance_id, [row.id for row in page.instances], n=3, cutoff=0.6
    )


def summary(row: InstanceRow) -> dict[str, Any]:
    """An instance in a list: id, workflow, status, error, times, version, parent."""
    status = instance_status_light(row)
    return status.model_dump(mode="json", exclude={"output", "params", "unreadable"})


def instance_status_light(row: InstanceRow) -> InstanceStatus[Any]:
    """The status of ``row`` without reading its output or params (for lists)."""
    return InstanceStatus[Any](
        id=row.id,
        workflow=row.workflow,
        status=row.status,
        error=ErrorInfo.model_validate_json(row.error) if row.error else None,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        version=row.version,
        parent_id=row.parent_id,
    )
