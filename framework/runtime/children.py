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
from framework.runtime.records import ErrorInfo
from framework.runtime.suspension import Suspend
from framework.store.base import InstanceRow, NewInstance, StepRow

if TYPE_CHECKING:
    from framework.runtime.execution import InstanceRun
    from framework.runtime.handles import Instance

MAX_BRANCHES = 100
"""The most branches one ``ctx.parallel`` call may start."""


async def run_children(run: InstanceRun, branches: list[Branch]) -> list[Any]:
    """``ctx.parallel``: start the branches not started yet, then collect their outputs."""
    if len(branches) > MAX_BRANCHES:
        raise ValueError(
            f"ctx.parallel got {len(branches)} branches; at most {MAX_BRANCHES} per call"
        )
    keys = [run.request(b.workflow, "child") for b in branches]
    rows: list[StepRow] = []
    children: list[NewInstance] = []
    now = run.clock.now()
    for (key, concurrent), item in zip(keys, branches, strict=True):
        if run.journal.get(key) is None:
            child = _new_child(run, key, item.workflow, item.params, now)
            children.append(child)
            rows.append(
                run.make_row(
                    key,
                    "child",
                    "waiting",
                    started_at=now,
                    concurrent=concurrent,
                    detail={"child_id": child.id, "workflow": item.workflow},
                )
            )
    if rows:
        await run.commit(rows, children=children)
    return await _collect_children(run, [key for key, _ in keys])


async def spawn_child(run: InstanceRun, name: str, params: Any) -> Instance[Any]:
    """``ctx.spawn``: start a child once, journaling its id, and return its handle."""
    key, concurrent = run.request(name, "child")
    entry = run.journal.get(key)
    if entry is None:
        now = run.clock.now()
        child = _new_child(run, key, name, params, now)
        entry = run.make_row(
            key,
            "child",
            "complete",
            started_at=now,
            finished_at=now,
            output=json.dumps(child.id),
            concurrent=concurrent,
            detail={"child_id": child.id, "workflow": name, "spawned": True},
        )
        await run.commit([entry], children=[child])
    return run.app.instance_handle(name, json.loads(entry.output or "null"))


def _child_id(run: InstanceRun, key: StepKey) -> str:
    suffix = f":r{run.row.generation}" if run.row.generation else ""
    return f"{run.instance_id}:{key.name}:{key.count}{suffix}"


def _new_child(
    run: InstanceRun, key: StepKey, workflow: str, params: Any, now: float
) -> NewInstance:
    definition = run.app.definition(workflow)
    value = serialization.validate(params, definition.params_type)
    data = serialization.dump(
        value, definition.params_type, run.payload_limit, f"the params of child {workflow!r}"
    )
    return NewInstance(
        id=_child_id(run, key),
        workflow=workflow,
        params=data,
        created_at=now,
        version=run.app.version_of(workflow),
        parent_id=run.instance_id,
    )


async def _collect_children(run: InstanceRun, keys: list[StepKey]) -> list[Any]:
    rows = [run.journal.get(key) for key in keys]
    assert all(rows)
    journaled = [row for row in rows if row is not None]
    for row in journaled:
        if row.status == "errored":
            raise _child_error(row)
    waiting = [row for row in journaled if row.status == "waiting"]
    if waiting and run.replay_only:
        run.frontier = run.frontier or waiting[0].name
        raise Suspend()
    if waiting:
        await _settle_children(run, waiting)
    return [
        serialization.load(
            run.journal.get(key).output,  # type: ignore[union-attr]
            run.app.definition(detail_of(row)["workflow"]).output_type,
        )
        for key, row in zip(keys, journaled, strict=True)
    ]


async def _settle_children(run: InstanceRun, waiting: list[StepRow]) -> None:
    ids = [detail_of(row)["child_id"] for row in waiting]
    children = {c.id: c for c in await run.store.get_instances(ids)}
    now = run.clock.now()
    for row, child_id in zip(waiting, ids, strict=True):
        child = children.get(child_id)
        if child is None or child.status in ("errored", "terminated"):
            await _fail_fast(run, row, child, ids, now)
    if any(children[i].status != "complete" for i in ids):
        pending = [i for i in ids if children[i].status != "complete"]
        run.suspend(children=pending)
    done = [
        replace(
            row,
            status="complete",
            finished_at=children[i].updated_at,
            output=children[i].output,
        )
        for row, i in zip(waiting, ids, strict=True)
    ]
    await run.commit(done)


async def _fail_fast(
    run: InstanceRun, row: StepRow, child: InstanceRow | None, ids: list[str], now: float
) -> None:
    for other in ids:
        if child is None or other != child.id:
            with contextlib.suppress(FwError):  # it had ended already
                await run.store.terminate(other, now)
    status = child.status if child is not None else "missing"
    message = _child_message(child)
    error = ErrorInfo(
        name=ChildWorkflowError.__name__,
        message=message,
        step=row.name,
        details={"child_id": detail_of(row)["child_id"], "status": status},
    )
    failed = replace(row, status="errored", finished_at=now, error=error.model_dump_json())
    await run.commit([failed])
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
