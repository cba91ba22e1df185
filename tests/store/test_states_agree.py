"""Both stores agree with the state machine's table, row by row.

For every row of ``framework.store.states.TABLE`` an instance is brought to the row's state
through the store's own operations, the row's move is made (PostgreSQL's ``fw_apply_v2``,
``fw_wake_parent`` and control statements; SQLite's ``_apply`` and its controls), and what
the row says is read back: the status, the lease, ``wake_at``, the control request, the
error, the restart's reset, the crash count, the parent's wake-up, the children of a
terminated tree, and whether other workers were told (read from the real wake-up channel:
PostgreSQL's NOTIFY, SQLite's datagram sockets). Every row runs on one scratch database, each
in a time window of its own below the previous row's, so a claim sees only its row's
instances. A disagreement names the row, the field, what the store did and what the table says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import psycopg

from framework.errors import InstanceStateError, LeaseLostError
from framework.store import open_store
from framework.store.base import TERMINAL, InstanceRow, Store, Transition
from framework.store.postgres_listener import CHANNEL
from framework.store.states import (
    COMPLETE,
    ERRORED,
    PAUSED,
    PAUSED_HELD,
    QUEUED,
    RUNNING,
    TABLE,
    TERMINATED,
    WAITING,
    CommitMove,
    Move,
    Outcome,
    Refusal,
    State,
    decide,
    holds_after,
    next_control,
    next_status,
    resolve_wake_at,
    state_of,
)
from framework.store.wakeup import WakeupChannel
from tests.store.conformance.helpers import claim_one, new, row, step

TOP = 10_000_000.0
WINDOW = 1_000.0  # each row's times: base .. base + 60
SETUP, MOVE, ASKED, LEASE_UNTIL = 3.0, 10.0, 50.0, 40.0
ERROR = '{"name": "Held"}'


@dataclass
class Case:
    """One row under test: its instance (with a waiting parent) and its times."""

    state: State
    move: Move
    base: float
    id: str

    @property
    def parent(self) -> str:
        return f"{self.id}.parent"

    @property
    def kid(self) -> str:
        return f"{self.id}.kid"

    def at(self, offset: float) -> float:
        return self.base + offset


async def test_every_row_of_the_table_holds_on_the_store(database_url: str) -> None:
    store = open_store(database_url)
    await store.open()
    try:
        await _check_rows(store, database_url, list(TABLE))
    finally:
        await store.close()


async def test_the_previous_releases_commits_follow_the_table_too(postgres_url: str) -> None:
    """``fw_apply``, which workers of the release before schema version 2 still call during a
    rolling deploy, commits by the same rows as ``fw_apply_v2``."""
    store = open_store(postgres_url)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as c:
            commits = [(s, m) for s, m in TABLE if m in get_args(CommitMove)]
            await _check_rows(_PreviousRelease(store, c), postgres_url, commits)
    finally:
        await store.close()


async def _check_rows(store: Store, url: str, rows: list[tuple[State, Move]]) -> None:
    disagreements: list[str] = []
    async with _wakeups(store, url) as told:
        for number, (state, move) in enumerate(rows):
            case = Case(state, move, TOP - number * WINDOW, f"row{number}")
            disagreements += await _check(store, told, case)
    assert not disagreements, "\n".join(disagreements)


async def _check(store: Store, told: _Told, case: Case) -> list[str]:
    token = await _bring_to_state(store, case)
    before = await row(store, case.id)
    assert state_of(before.status, before.lease_owner) == case.state, f"setup of {case.state}"
    parent_before = await row(store, case.parent)
    await told()  # forget the wake-ups of the setup
    expected = TABLE[(case.state, case.move)]
    refused: InstanceStateError | None = None
    try:
        await _make_move(store, case, token)
    except InstanceStateError as exc:
        refused = exc
    notified = await told()
    after = await row(store, case.id)
    found: list[tuple[str, object, object]] = []
    if isinstance(expected, Refusal):
        found += _compare("refusal", refused and str(refused), _refusal_text(case))
        found += _compare("row", _fields(after), _fields(before))
        found += _compare("wake-up", notified, False)
    else:
        found += _compare("refusal", refused and str(refused), None)
        found += await _outcome_fields(store, case, expected, before, after, parent_before)
        parent = _parent_outcome(case, expected)
        found += _compare("wake-up", notified, expected.notify or parent.notify)
    return [
        f"{case.state} + {case.move}: {name} is {actual!r}, the table says {want!r}"
        for name, actual, want in found
    ]


def _refusal_text(case: Case) -> str:
    try:
        decide(case.id, case.state, case.move)
    except InstanceStateError as exc:
        return str(exc)
    raise AssertionError("the table refuses this row")


async def _outcome_fields(
    store: Store,
    case: Case,
    outcome: Outcome,
    before: InstanceRow,
    after: InstanceRow,
    parent_before: InstanceRow,
) -> list[tuple[str, object, object]]:
    asked_release = case.move in get_args(CommitMove) and case.move != "journal"
    asked = case.at(ASKED) if case.move in ("queue", "wait", "wait_ready") else None
    wake_at = resolve_wake_at(
        case.state,
        outcome,
        current=before.wake_at,
        now=case.at(MOVE),
        asked=asked,
        asked_release=asked_release,
        lease_until=case.at(LEASE_UNTIL),
    )
    held = holds_after(case.state, outcome, asked_release)
    status = next_status(case.state, outcome)
    cleared = outcome.clear_error or outcome.reset
    crashes = 0 if outcome.reset else before.crash_count + int(outcome.crash)
    parent = await row(store, case.parent)
    parent_wake_at = resolve_wake_at(
        WAITING, _parent_outcome(case, outcome), current=parent_before.wake_at, now=case.at(MOVE)
    )
    found = [
        *_compare("status", after.status, status),
        *_compare("held", after.lease_owner is not None, held),
        *_compare("wake_at", after.wake_at, wake_at),
        *_compare("control", after.control, next_control(before.control, outcome)),
        *_compare("error", after.error, None if cleared else _error_after(case, before)),
        *_compare("generation", after.generation, before.generation + int(outcome.reset)),
        *_compare("crash_count", after.crash_count, crashes),
        *_compare("parent's wake_at", parent.wake_at, parent_wake_at),
    ]
    if case.move in ("terminate", "compensate"):
        kid = await row(store, case.kid)
        found += _compare("child's status", kid.status, next_status(QUEUED, outcome))
        found += _compare("child's control", kid.control, next_control(None, outcome))
    return found


def _parent_outcome(case: Case, outcome: Outcome) -> Outcome:
    """What the move does to the row's parent (waiting for it): a child that ends wakes it."""
    ends = next_status(case.state, outcome) in TERMINAL and case.state.status not in TERMINAL
    if outcome.wake_parent and ends:
        return decide(case.parent, WAITING, "child_ended")
    return Outcome(None)


def _error_after(case: Case, before: InstanceRow) -> str | None:
    return ERROR if case.move in ("hold", "error", "end") else before.error


def _compare(name: str, actual: object, expected: object) -> list[tuple[str, object, object]]:
    return [] if actual == expected else [(name, actual, expected)]


def _fields(r: InstanceRow) -> tuple[Any, ...]:
    return (r.status, r.lease_owner, r.wake_at, r.control, r.error, r.generation, r.crash_count)


async def _bring_to_state(store: Store, case: Case) -> str:
    """Put the row's instance in its state, under a parent waiting for it; return its token.

    Its journal holds a waiting event step (type ``go``) and a waiting child step (its kid),
    so an event or an ended child can be one it awaits; it carries a control request (it was
    terminated with compensation before its claim) until a row clears it.
    """
    i, at = case.id, case.at
    await store.create_instances([new(case.parent, at=case.base)])
    parent = await claim_one(store, case.parent, now=case.base)
    awaits = step(case.parent, "kid", 0, kind="child", status="waiting", detail={"child_id": i})
    await store.apply(
        Transition(case.parent, parent.token, steps=[awaits], status="waiting", release=True),
        case.base,
    )
    await store.create_instances([new(i, at=at(1), parent=case.parent)])
    await store.terminate(i, at(1), compensate=True)  # a control request to keep or clear
    claim = await claim_one(store, i, now=at(1), lease=7.0)  # expired by the move's time
    waits = [
        step(i, "go", 0, kind="event", status="waiting", detail={"type": "go"}),
        step(i, "kid", 1, kind="child", status="waiting", detail={"child_id": case.kid}),
    ]
    await store.apply(Transition(i, claim.token, steps=waits), at(2))
    token = claim.token
    setups: dict[State, Transition | None] = {
        RUNNING: None,
        PAUSED_HELD: None,
        QUEUED: Transition(i, token, status="queued", wake_at=at(5), release=True),
        WAITING: Transition(
            i, token, status="waiting", wake_at=at(6), release=True,
            wake_on_events=["go"], wake_on_children=[case.kid],
        ),
        PAUSED: Transition(i, token, status="paused", error=ERROR, release=True),
        COMPLETE: Transition(i, token, status="complete", output="1", release=True),
        ERRORED: Transition(i, token, status="errored", error=ERROR, release=True),
        TERMINATED: None,
    }  # fmt: skip
    transition = setups[case.state]
    if transition is not None:
        await store.apply(transition, at(SETUP))
    if case.state == PAUSED_HELD:
        await store.pause(i, at(SETUP))
    if case.state == TERMINATED:
        await store.terminate(i, at(SETUP))
    if case.move in ("terminate", "compensate", "child_ended"):
        await store.create_instances([new(case.kid, at=at(9), parent=i)])
    if case.move == "wait_ready":
        await store.send_event(i, "go", "1", at(9))
    return token


async def _make_move(store: Store, case: Case, token: str) -> None:
    i, now = case.id, case.at(MOVE)
    commits: dict[str, Transition] = {
        "journal": Transition(i, token, steps=[step(i, "more", 2)]),
        "queue": Transition(i, token, status="queued", wake_at=case.at(ASKED), release=True),
        "wait": Transition(
            i, token, status="waiting", wake_at=case.at(ASKED), release=True,
            wake_on_events=["go"], wake_on_children=[case.kid],
        ),
        "hold": Transition(i, token, status="paused", error=ERROR, release=True),
        "complete": Transition(i, token, status="complete", output="2", release=True),
        "error": Transition(i, token, status="errored", error=ERROR, release=True),
        "end": Transition(i, token, status="terminated", error=ERROR, release=True),
    }  # fmt: skip
    commits["wait_ready"] = commits["wait"]
    if case.move in commits:
        await store.apply(commits[case.move], now)
    elif case.move == "pause":
        await store.pause(i, now)
    elif case.move == "resume":
        await store.resume(i, now)
    elif case.move in ("terminate", "compensate"):
        await store.terminate(i, now, compensate=case.move == "compensate")
    elif case.move == "restart":
        await store.restart(i, now, None)
    elif case.move in ("event", "awaited_event"):
        await store.send_event(i, "go" if case.move == "awaited_event" else "other", "1", now)
    elif case.move == "child_ended":
        await store.terminate(case.kid, now)
    elif case.move == "claim":
        claimed = await store.claim("w2", 100, now, case.at(LEASE_UNTIL))
        assert [c.instance.id for c in claimed] == [i]
    elif case.move == "heartbeat":
        await store.heartbeat("w1", [i], case.at(LEASE_UNTIL))
    else:  # pragma: no cover - a move added to the table needs a way to make it here
        raise AssertionError(f"no way to make move {case.move!r}")


class _Told:
    """Whether other workers were told to look since the last call (a real wake-up)."""

    async def __call__(self) -> bool:
        raise NotImplementedError


@contextlib.asynccontextmanager
async def _wakeups(store: Store, url: str) -> AsyncIterator[_Told]:
    if url.startswith("sqlite"):
        with _SocketTold(Path(url.removeprefix("sqlite:///"))) as told:
            yield told
    else:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            await c.execute(f"LISTEN {CHANNEL}")
            yield _NotifyTold(c)


class _SocketTold(_Told):
    """A datagram socket in the SQLite file's wake-up folder, as a waiting worker binds one.

    A commit sends its wake-up before the write returns, so it is queued here by then."""

    def __init__(self, database: Path) -> None:
        folder = WakeupChannel(database).folder
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.socket.bind(str(self.path))

    def __enter__(self) -> _SocketTold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.socket.close()
        self.path.unlink(missing_ok=True)

    async def __call__(self) -> bool:
        told = False
        with contextlib.suppress(BlockingIOError):
            while self.socket.recv(64):
                told = True
        return told


class _NotifyTold(_Told):
    """A LISTEN connection; a NOTIFY of its own marks where the move's notifications end
    (notifications arrive in the order their transactions committed)."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection
        self.marks = 0

    async def __call__(self) -> bool:
        self.marks += 1
        mark = f"mark-{self.marks}"
        await self.connection.execute("SELECT pg_notify(%s, %s)", [CHANNEL, mark])
        told = False
        async with asyncio.timeout(10):
            async for note in self.connection.notifies():
                if note.payload == mark:
                    break
                told = True
        return told


FW_APPLY_ARGUMENTS = (
    "text", "text", "float8", "text", "float8", "text", "text", "boolean", "text", "text[]",
    "text[]", "text[]", "int[]", "int[]", "text[]", "text[]", "int[]", "float8[]", "float8[]",
    "float8[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]",
    "text[]", "float8[]",
)  # fmt: skip


class _PreviousRelease:
    """The store, but for commits, which go through ``fw_apply`` and its 30 arguments."""

    def __init__(self, store: Store, connection: psycopg.AsyncConnection[Any]) -> None:
        self._store = store
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def apply(self, t: Transition, now: float) -> str:
        steps = [
            [s.name, s.count, s.seq, s.kind, s.status, s.attempts, s.started_at, s.finished_at,
             s.wake_at, s.input, s.output, s.error, s.detail]
            for s in t.steps
        ]  # fmt: skip
        columns = [list(column) for column in zip(*steps, strict=True)] or [None] * 13
        marks = ", ".join(f"%s::{kind}" for kind in FW_APPLY_ARGUMENTS)
        cur = await self._connection.execute(
            f"SELECT fw_apply({marks})",
            [
                t.instance_id, t.token, now, t.status, t.wake_at, t.output, t.error, t.release,
                t.version, t.wake_on_events or None, t.wake_on_children or None, *columns,
                *[None] * 6,
            ],
        )  # fmt: skip
        found = await cur.fetchone()
        if found is None or found[0] is None:
            raise LeaseLostError(t.instance_id)
        return str(found[0])
