"""Shared helpers of the store conformance suite: rows to create, claims, reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from framework.store.base import Claim, InstanceRow, NewInstance, StepRow, Store

T0 = 1_000_000.0
LEASE = 30.0
REPO = Path(__file__).resolve().parents[3]


def new(
    instance_id: str,
    *,
    at: float = T0,
    workflow: str = "wf",
    parent: str | None = None,
    params: str = "{}",
    version: str | None = None,
) -> NewInstance:
    return NewInstance(instance_id, workflow, params, at, version, parent)


def step(
    instance_id: str,
    name: str,
    seq: int,
    *,
    kind: Any = "do",
    status: Any = "complete",
    count: int = 1,
    detail: dict[str, Any] | None = None,
    **fields: Any,
) -> StepRow:
    return StepRow(
        instance_id,
        name,
        count,
        seq,
        kind,
        status,
        detail=None if detail is None else json.dumps(detail),
        **fields,
    )


async def claim_one(
    store: Store, instance_id: str, *, owner: str = "w1", now: float = T0, lease: float = LEASE
) -> Claim:
    claims = await store.claim(owner, 10, now, now + lease)
    matching = [c for c in claims if c.instance.id == instance_id]
    assert matching, f"{instance_id} was not claimed; got {[c.instance.id for c in claims]}"
    return matching[0]


async def row(store: Store, instance_id: str) -> InstanceRow:
    found = await store.get_instance(instance_id)
    assert found is not None
    return found


async def start(
    store: Store, instance_id: str, *, at: float = T0, owner: str = "w1", parent: str | None = None
) -> Claim:
    await store.create_instances([new(instance_id, at=at, parent=parent)])
    return await claim_one(store, instance_id, owner=owner, now=at)


async def is_due(store: Store, instance_id: str, now: float) -> bool:
    current = await row(store, instance_id)
    return (
        current.wake_at is not None
        and current.wake_at <= now
        and current.status
        in (
            "queued",
            "waiting",
            "running",
        )
    )
