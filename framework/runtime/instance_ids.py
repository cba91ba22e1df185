"""Finding an instance from what a person typed: its id, a unique start of it, or a near
miss answered with the ids that look like it."""

from __future__ import annotations

import difflib

from framework.errors import AmbiguousInstanceIdError, InstanceNotFoundError
from framework.store.base import InstanceRow, Store

MAX_CANDIDATES = 10
"""Ids listed at most when a prefix matches several."""


async def find_instance(store: Store, typed: str) -> InstanceRow:
    """The instance whose id is ``typed``, else the only one whose id starts with it.

    Raises:
        AmbiguousInstanceIdError: several ids start with ``typed`` (some are listed).
        InstanceNotFoundError: none does (with close matches).
    """
    row = await store.get_instance(typed)
    if row is not None:
        return row
    if typed:
        page = await store.list_instances(id_prefix=typed, limit=MAX_CANDIDATES)
        if len(page.instances) == 1:
            return page.instances[0]
        if page.instances:
            ids = sorted(r.id for r in page.instances)
            raise AmbiguousInstanceIdError(typed, ids, more=page.next_cursor is not None)
    raise InstanceNotFoundError(typed, await close_instance_ids(store, typed))


async def close_instance_ids(store: Store, instance_id: str) -> list[str]:
    """Up to three stored ids that look like ``instance_id`` (sharing its first half)."""
    stem = instance_id[: max(2, len(instance_id) // 2)]
    page = await store.list_instances(search=stem, limit=200)
    return difflib.get_close_matches(
        instance_id, [row.id for row in page.instances], n=3, cutoff=0.6
    )
