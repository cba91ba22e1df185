"""Store conformance: ``ctx.log`` lines kept with a commit, bounded per instance, fenced by
the lease, deleted by prune."""

from __future__ import annotations

import json

import pytest

from framework.errors import LeaseLostError
from framework.store.base import LOG_LIMIT, LogRow, Store, Transition
from tests.store.conformance.helpers import T0, start


def line(instance_id: str, run: str, n: int, *, step: str | None = None) -> LogRow:
    fields = json.dumps({"n": n})
    return LogRow(
        instance_id, run, n, T0 + n, "info", f"line {n}", step, 1 if step else None, fields
    )


async def test_lines_are_kept_with_their_commit_in_order(store: Store) -> None:
    claim = await start(store, "a")
    first = Transition(
        "a", claim.token, logs=[line("a", claim.token, 1), line("a", claim.token, 2, step="s")]
    )
    await store.apply(first, T0 + 1)
    await store.apply(Transition("a", claim.token, logs=[line("a", claim.token, 3)]), T0 + 2)

    kept = await store.list_logs("a")

    assert [(r.line, r.message, r.step, r.step_count, r.fields) for r in kept] == [
        (1, "line 1", None, None, '{"n": 1}'),
        (2, "line 2", "s", 1, '{"n": 2}'),
        (3, "line 3", None, None, '{"n": 3}'),
    ]
    assert [r.line for r in await store.list_logs("a", limit=2)] == [2, 3]
    assert await store.list_logs("missing") == []


async def test_only_the_last_lines_are_kept(store: Store) -> None:
    claim = await start(store, "a")
    lines = [line("a", claim.token, n) for n in range(1, LOG_LIMIT + 26)]
    await store.apply(Transition("a", claim.token, logs=lines[:500]), T0 + 1)
    await store.apply(Transition("a", claim.token, logs=lines[500:]), T0 + 2)

    kept = await store.list_logs("a", limit=LOG_LIMIT + 100)

    assert len(kept) == LOG_LIMIT
    assert (kept[0].line, kept[-1].line) == (26, LOG_LIMIT + 25)


async def test_a_lost_lease_keeps_no_line_and_prune_deletes_them(store: Store) -> None:
    claim = await start(store, "a")
    await store.apply(Transition("a", claim.token, logs=[line("a", claim.token, 1)]), T0 + 1)
    await store.terminate("a", T0 + 2)
    with pytest.raises(LeaseLostError):
        await store.apply(Transition("a", claim.token, logs=[line("a", claim.token, 2)]), T0 + 3)
    assert [r.line for r in await store.list_logs("a")] == [1]

    assert await store.prune(["terminated"], T0 + 10, 100) == 1

    assert await store.list_logs("a") == []
