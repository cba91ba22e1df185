"""Child instances: ``ctx.parallel`` (awaited, fail-fast) and ``ctx.spawn`` (not awaited).

Each branch is a ``child`` step of the parent, whose id derives from the parent's
(``order-1:image-tag:1``), so a replay re-attaches instead of starting it twice. The parent
waits holding no worker; a child that ends wakes it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from framework.errors import ChildWorkflowError, FwError
from framework.runtime import serialization
from framework.runtime.definition import Branch
from framework.runtime.journal import StepKey, detail_of
from framework.runtime.recorder import Recorder
from framework.runtime.records import ErrorInfo
from framework.store.base import InstanceRow, NewInstance, StepRow

if TYPE_CHECKING:
    from framework.runtime.app import App
    from framework.runtime.handles import Instance

MAX_BRANCHES = 100
"""The most branches one ``ctx.parallel`` call may start."""
MAX_CHILD_ID_LENGTH = 1024
"""The longest id a child may get. A child's id is its parent's and the step's (``parent:name:n``),
so it grows with each level of nesting: a workflow that starts itself without end would make
ids of thousands of characters, past what lookups accept and PostgreSQL's index can hold."""


async def run_children(app: App, recorder: Recorder, branches: list[Branch[Any]]) -> list[Any]:
    """``ctx.parallel``: start the branches not started yet, then collect their outputs."""
    if len(branches) > MAX_BRANCHES:
        raise ValueError(
            f"ctx.parallel got {len(branches)} branches; at most {MAX_BRANCHES} per call"
        )
    keys = [recorder.request(b.workflow, "child") for b in branches]
    rows: list[StepRow] = []
    children: list[NewInstance] = []
    now = recorder.clock.now()
    for (key, concurrent), item in zip(keys, branches, strict=True):
        if recorder.journal.get(key) is None:
            child = _new_child(app, recorder, key, item.workflow, item.params, now)
            children.append(child)
            rows.append(
                recorder.make_row(
                    key,
                    "child",
                    "waiting",
                    started_at=now,
                    concurrent=concurrent,
                    detail={"child_id": child.id, "workflow": item.workflow},
                )
            )
    if rows:
        await recorder.commit(rows, children=children)
    return await _collect_children(app, recorder, [key for key, _ in keys])


async def spawn_child(app: App, recorder: Recorder, name: str, params: Any) -> Instance[Any, Any]:
    """``ctx.spawn``: start a child once, journaling its id, and return its handle."""
    key, concurrent = recorder.request(name, "child")
    entry = recorder.journal.get(key)
    if entry is None:
        now = recorder.clock.now()
        child = _new_child(app, recorder, key, name, params, now)
        entry = recorder.make_row(
            key,
            "child",
            "complete",
            started_at=now,
            finished_at=now,
            output=json.dumps(child.id),
            concurrent=concurrent,
            detail={"child_id": child.id, "workflow": name, "spawned": True},
        )
        await recorder.commit([entry], children=[child])
    return app.instance_handle(name, json.loads(entry.output or "null"))


def _new_child(
    app: App, recorder: Recorder, key: StepKey, workflow: str, params: Any, now: float
) -> NewInstance:
    definition = app.definition(workflow)
    value = serialization.validate(params, definition.params_type)
    data = serialization.dump(
        value,
        definition.params_type,
        app.settings.runtime.payload_limit,
        f"the params of child {workflow!r}",
    )
    child_id = recorder.idempotency_key(key)
    if len(child_id) > MAX_CHILD_ID_LENGTH:
        raise ValueError(
            f"child {workflow!r} of instance {recorder.instance_id[:60]!r}... would get an id "
            f"of {len(child_id):,} characters (at most {MAX_CHILD_ID_LENGTH:,}): children "
            "nest too deep (a workflow that starts itself without end?)"
        )
    concurrency = app.concurrency_limits.get(workflow)
    return NewInstance(
        id=child_id,
        workflow=workflow,
        params=data,
        created_at=now,
        version=app.version_of(workflow),
        parent_id=recorder.instance_id,
        concurrency_key=None if concurrency is None else concurrency.key_of(data),
    )


async def _collect_children(app: App, recorder: Recorder, keys: list[StepKey]) -> list[Any]:
    rows = [recorder.journal.get(key) for key in keys]
    assert all(rows)
    journaled = [row for row in rows if row is not None]
    for row in journaled:
        if row.status == "errored":
            raise _child_error(row)
    waiting = [row for row in journaled if row.status == "waiting"]
    if waiting and recorder.replay_only:
        recorder.stop_at_frontier(waiting[0].name)
    if waiting:
        await _settle_children(recorder, waiting)
    return [
        serialization.load(
            recorder.journal.get(key).output,  # type: ignore[union-attr]
            app.definition(detail_of(row)["workflow"]).output_type,
        )
        for key, row in zip(keys, journaled, strict=True)
    ]


async def _settle_children(recorder: Recorder, waiting: list[StepRow]) -> None:
    ids = [detail_of(row)["child_id"] for row in waiting]
    children = {c.id: c for c in await recorder.store.get_instances(ids)}
    now = recorder.clock.now()
    for row, child_id in zip(waiting, ids, strict=True):
        child = children.get(child_id)
        if child is None or child.status in ("errored", "terminated"):
            await _fail_fast(recorder, row, child, ids, now)
    if any(children[i].status != "complete" for i in ids):
        pending = [i for i in ids if children[i].status != "complete"]
        recorder.suspend(children=pending)
    done = [
        replace(
            row,
            status="complete",
            finished_at=children[i].updated_at,
            output=children[i].output,
        )
        for row, i in zip(waiting, ids, strict=True)
    ]
    await recorder.commit(done)


async def _fail_fast(
    recorder: Recorder, row: StepRow, child: InstanceRow | None, ids: list[str], now: float
) -> None:
    for other in ids:
        if child is None or other != child.id:
            with contextlib.suppress(FwError):  # it had ended already
                await recorder.store.terminate(other, now)
    status = child.status if child is not None else "missing"
    message = _child_message(child)
    error = ErrorInfo(
        name=ChildWorkflowError.__name__,
        message=message,
        step=row.name,
        details={"child_id": detail_of(row)["child_id"], "status": status},
        retryable=False,
    )
    failed = replace(row, status="errored", finished_at=now, error=error.model_dump_json())
    await recorder.commit([failed])
    raise _child_error(failed)


def _child_message(child: InstanceRow | None) -> str:
    if child is None:
        return "the child instance no longer exists"
    if child.error:
        return str(ErrorInfo.model_validate_json(child.error))
    return f"it was {child.status}"


def _child_error(row: StepRow) -> ChildWorkflowError:
    detail = detail_of(row)
    error = ErrorInfo.model_validate_json(row.error or "{}")
    return ChildWorkflowError(
        detail.get("child_id", "?"),
        detail.get("workflow", row.name),
        error.details.get("status", "errored"),
        error.message,
    )
