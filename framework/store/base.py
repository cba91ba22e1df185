"""The store: a small protocol over durable state, implemented for SQLite and PostgreSQL.

The store knows rows, transactions and leases; what a step or a sleep means lives in the
runtime. Every write a running instance makes goes through ``apply``, fenced by the lease
token of the claim that is running it, so a worker that lost its lease can change nothing.
Times are seconds since the epoch as the runtime's clock tells them; the store never reads
a clock of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from framework.errors import InstanceIdConflictError

Status = Literal["queued", "running", "waiting", "paused", "complete", "errored", "terminated"]
StepKind = Literal["do", "sleep", "event", "child", "rollback", "patch"]
StepStatus = Literal["complete", "errored", "waiting"]

STATUSES: tuple[Status, ...] = (
    "queued",
    "running",
    "waiting",
    "paused",
    "complete",
    "errored",
    "terminated",
)
TERMINAL: frozenset[str] = frozenset({"complete", "errored", "terminated"})
"""Statuses an instance never leaves (but by ``restart``)."""

RUNNABLE: frozenset[str] = frozenset({"queued", "waiting", "running"})
"""Statuses in which ``wake_at`` says when a worker should next claim the instance."""


def cursor_seq(cursor: str) -> int:
    """The ``seq`` a page cursor stands for (a cursor is the ``seq`` in ASCII digits).

    Raises:
        ValueError: not such a cursor, or too large for a 64-bit integer.
    """
    if not _CURSOR.fullmatch(cursor):
        shown = cursor if len(cursor) <= 40 else cursor[:40] + "…"
        raise ValueError(f"invalid cursor {shown!r}: pass the next_cursor of a page")
    return int(cursor)


_CURSOR = re.compile(r"[0-9]{1,18}")


def contains_pattern(text: str) -> str:
    """A ``LIKE ... ESCAPE '\\'`` pattern matching ids that contain ``text`` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class NewInstance:
    """An instance to create."""

    id: str
    workflow: str
    params: str
    created_at: float
    version: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class InstanceRow:
    """One instance as stored."""

    seq: int
    id: str
    workflow: str
    status: Status
    params: str
    output: str | None
    error: str | None
    version: str | None
    parent_id: str | None
    generation: int
    created_at: float
    updated_at: float
    wake_at: float | None
    lease_owner: str | None
    crash_count: int
    crashes: str | None
    control: str | None = None
    """A pending request a worker must carry out: ``"terminate"`` (compensate, then end)."""


@dataclass(frozen=True)
class Created:
    """One instance ``create_instances`` was asked for: the row as stored, and whether this
    call created it (False: the id existed, and ``row`` is that instance, unchanged)."""

    row: InstanceRow
    created: bool


def check_distinct_ids(instances: Sequence[NewInstance]) -> None:
    """Refuse a batch that gives one id twice.

    Raises:
        InstanceIdConflictError: naming the id and both items.
    """
    first: dict[str, int] = {}
    for index, instance in enumerate(instances):
        seen = first.setdefault(instance.id, index)
        if seen != index:
            raise InstanceIdConflictError(instance.id, index, first_index=seen)


def check_same_workflow(
    instances: Sequence[NewInstance], existing: Mapping[str, InstanceRow]
) -> None:
    """Refuse a batch holding an id that belongs to an instance of another workflow
    (``existing``: the stored rows of the batch's ids, read in the creating transaction).

    Raises:
        InstanceIdConflictError: naming the id, its item and the workflow that holds it.
    """
    for index, instance in enumerate(instances):
        row = existing.get(instance.id)
        if row is not None and row.workflow != instance.workflow:
            position = index if len(instances) > 1 else None
            raise InstanceIdConflictError(instance.id, position, workflow=row.workflow)


@dataclass(frozen=True)
class StepRow:
    """One journal entry: the state of step ``name`` (occurrence ``count``) of an instance."""

    instance_id: str
    name: str
    count: int
    seq: int
    kind: StepKind
    status: StepStatus
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    wake_at: float | None = None
    input: str | None = None
    output: str | None = None
    error: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Claim:
    """An instance a worker now holds, with its journal in request order."""

    instance: InstanceRow
    steps: list[StepRow]
    token: str
    crashed: bool
    """The previous holder's lease expired while it ran the instance (its worker died)."""


@dataclass
class Transition:
    """Everything one commit of a running instance changes, applied atomically.

    ``status`` None keeps the instance running under its lease. ``wake_on_events`` and
    ``wake_on_children``, with a waiting status, make the instance runnable at once when a
    matching event is already buffered or an awaited child already ended, closing the race
    with a writer that saw the instance still running.
    """

    instance_id: str
    token: str
    steps: list[StepRow] = field(default_factory=list[StepRow])
    status: Status | None = None
    wake_at: float | None = None
    output: str | None = None
    error: str | None = None
    release: bool = False
    children: list[NewInstance] = field(default_factory=list[NewInstance])
    wake_parent: str | None = None
    wake_on_events: list[str] = field(default_factory=list[str])
    wake_on_children: list[str] = field(default_factory=list[str])
    version: str | None = None


@dataclass(frozen=True)
class Page:
    """A page of instances, newest first, and the cursor of the next page (None: last)."""

    instances: list[InstanceRow]
    next_cursor: str | None


@dataclass(frozen=True)
class TakenEvent:
    """An event consumed by a wait step."""

    payload: str
    created_at: float


class Store(Protocol):
    """Durable state of instances, journals and events."""

    url: str

    async def open(self) -> None:
        """Connect and migrate the schema to the current version."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...

    # Instances, as handles see them.
    async def create_instances(self, instances: Sequence[NewInstance]) -> list[Created]:
        """Insert in one transaction, all or nothing, and say which rows this call created.

        An id that exists is kept and returned as it is (``created`` False). Checked in the
        same transaction, so racing creators of one id see exactly one ``created``.

        Raises:
            InstanceIdConflictError: two instances share an id, or an id belongs to an
                instance of another workflow; nothing is stored.
        """
        ...

    async def get_instance(self, instance_id: str) -> InstanceRow | None: ...

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRow]: ...

    async def list_instances(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        search: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page: ...

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        """workflow -> status -> number of instances."""
        ...

    async def list_steps(self, instance_id: str) -> list[StepRow]: ...

    # Control.
    async def pause(self, instance_id: str, now: float) -> InstanceRow: ...

    async def resume(self, instance_id: str, now: float) -> InstanceRow: ...

    async def terminate(
        self, instance_id: str, now: float, compensate: bool = False
    ) -> InstanceRow:
        """Terminate the instance and, depth first, every child that has not ended.

        With ``compensate``, each is instead queued with ``control = "terminate"`` for a
        worker to run its rollbacks and ``on_failure`` and then end it terminated.
        """
        ...

    async def restart(
        self, instance_id: str, now: float, from_step: tuple[str, int] | None
    ) -> InstanceRow:
        """Queue the instance again, dropping its journal from ``from_step`` on (all of it
        when None) and releasing the events those steps consumed."""
        ...

    async def send_event(
        self, instance_id: str, event_type: str, payload: str, now: float
    ) -> InstanceRow: ...

    # Workers.
    async def claim(
        self, owner: str, limit: int, now: float, lease_until: float
    ) -> list[Claim]: ...

    async def heartbeat(
        self, owner: str, instance_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        """Extend the leases ``owner`` holds on ``instance_ids`` (the runs it still has);
        return those ids it still holds. A lease of a run that ended without releasing it
        (its last write failed) is not extended, so it expires and the instance is reclaimed."""
        ...

    async def apply(self, transition: Transition, now: float) -> Status:
        """Commit a transition if ``transition.token`` still holds the lease; return the
        instance's status after it. Raises LeaseLostError otherwise."""
        ...

    async def take_event(
        self, token: str, instance_id: str, event_type: str, step: StepRow, now: float
    ) -> TakenEvent | None:
        """Consume the oldest buffered event of ``event_type`` and journal ``step`` complete
        with its payload, in one fenced transaction; None when no such event waits."""
        ...

    async def next_wake_at(self) -> float | None:
        """The earliest time an instance becomes runnable, if any is scheduled."""
        ...

    def note_load(self, running: int) -> None:
        """How many instances this process runs now; a store may commit differently when
        one runs alone (SQLite then commits on the caller's thread)."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when another process may have made work runnable, or after ``timeout``."""
        ...

    async def prune(self, statuses: Sequence[str], before: float, batch: int) -> int:
        """Delete up to ``batch`` instances in ``statuses`` last updated before ``before``,
        with their journals and events; return how many."""
        ...

    # Studio login sessions, shared by every server process using the store.
    async def create_session(self, session: str, now: float, expires_at: float) -> None:
        """Store a login session (a hash of its secret), dropping those expired by ``now``."""
        ...

    async def session_active(self, session: str, now: float) -> bool:
        """Whether the session exists and has not expired by ``now``."""
        ...

    async def delete_session(self, session: str) -> None:
        """End a session (logging out); ending an unknown one does nothing."""
        ...
