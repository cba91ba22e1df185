"""SQLite with a long history: how an id search reads the trigram index, and how long a
prune batch goes on deleting (the answers are the conformance suite's; these pin the way)."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing

import pytest

from framework.store import open_store
from framework.store import sqlite as sqlite_store
from framework.store.base import Store, Transition
from tests.store.conformance.helpers import LEASE, T0, new

ALIKE = [f"order-{n:03d}-x" for n in range(12)]
RANDOM = [uuid.UUID(int=n * 7919 + 1).hex for n in range(5)] + ["0f3a9c2e5b7d1f00"]


async def searched(store: Store, text: str, limit: int = 50) -> list[str]:
    return [r.id for r in (await store.list_instances(search=text, limit=limit)).instances]


def contains(text: str) -> list[str]:
    """The ids holding ``text``, newest (last created) first."""
    return [i for i in (ALIKE + RANDOM)[::-1] if text.lower() in i.lower()]


async def test_a_search_reads_its_end_trigrams_first_and_the_covering_ones_if_they_leave_many(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "FEW_CANDIDATES", 3)
    store = open_store(sqlite_url)
    await store.open()
    try:
        await store.create_instances([new(i) for i in ALIKE + RANDOM])
        with closing(sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))) as c:
            # A random id's ends leave it alone: read by seq, no second index read.
            source, found = sqlite_store._searched(c, "3a9c2e5b7d")
            assert source == sqlite_store._BY_SEQ and len(found) == 1
            # Ids alike at both ends leave 10 candidates, more than 3: the covering trigrams.
            source, found = sqlite_store._searched(c, "order-00")
            assert source == sqlite_store._BY_TRIGRAMS
            assert found == ['"ord" AND "er-" AND "-00"']
        for text in ("3a9c2e5b7d", "3A9C2E5B", "order-00", "rder-01", "der-011-x", "r-0", "nope"):
            assert await searched(store, text) == contains(text), text
        # Page by page, on either way of reading.
        for text in ("order-0", "0f3a9c2e5"):
            page = await store.list_instances(search=text, limit=2)
            ids = [r.id for r in page.instances]
            while page.next_cursor is not None:
                page = await store.list_instances(search=text, limit=2, cursor=page.next_cursor)
                ids += [r.id for r in page.instances]
            assert ids == contains(text), text
    finally:
        await store.close()


async def test_a_prune_batch_past_its_time_stops_after_one_instance(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The time is checked after each chunk, the first of one instance: past its time at
    # once, a batch deletes that one (a fixed chunk deleted 10 before looking at the time).
    monkeypatch.setattr(sqlite_store, "PRUNE_SECONDS", 0.0)
    store = open_store(sqlite_url)
    await store.open()
    try:
        ids = [f"i{n}" for n in range(12)]
        await store.create_instances([new(i) for i in ids])
        claims = {c.instance.id: c for c in await store.claim("w1", 20, T0, T0 + LEASE)}
        for i in ids:
            await store.apply(Transition(i, claims[i].token, status="complete"), T0 + 1)
        pruned = [await store.prune(["complete"], T0 + 50, 500) for _ in range(13)]
        assert pruned == [1] * 12 + [0]
    finally:
        await store.close()


async def test_the_id_index_writes_small_pages_in_new_and_existing_files(sqlite_url: str) -> None:
    # FTS5 merges 64 pages per level at a time inside whichever commit crosses its count:
    # small pages keep each merge short. A file indexed before keeps its pages and writes
    # small ones from its next open on.
    path = sqlite_url.removeprefix("sqlite:///")

    def page_size() -> int | None:
        with closing(sqlite3.connect(path)) as c:
            row = c.execute("SELECT v FROM instance_search_config WHERE k = 'pgsz'").fetchone()
            return None if row is None else int(row[0])

    store = open_store(sqlite_url)
    await store.open()
    await store.create_instances([new(f"order-{n}") for n in range(3)])
    await store.close()
    assert page_size() == sqlite_store.SEARCH_PAGE_SIZE
    with closing(sqlite3.connect(path)) as c:  # as an index written by an earlier fw
        c.execute("DELETE FROM instance_search_config WHERE k = 'pgsz'")
        c.commit()
    assert page_size() is None
    store = open_store(sqlite_url)
    await store.open()
    try:
        assert page_size() == sqlite_store.SEARCH_PAGE_SIZE
        assert [r.id for r in (await store.list_instances(search="order")).instances] == [
            "order-2", "order-1", "order-0"
        ]
    finally:
        await store.close()
