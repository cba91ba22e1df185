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

from framework.errors import InstanceIdConflictError, InstanceStateError
from framework.store.workers import WorkerInfo, WorkerRow

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


PRUNE_SECONDS = 0.02
"""How long one prune batch goes on deleting, ``PRUNE_CHUNK`` instances at a time, before it
commits: the write lock it holds on SQLite (one writer) stays short whatever the batch size
and however long the batch waited for the lock."""
PRUNE_CHUNK = 10


def contains_pattern(text: str) -> str:
    """A ``LIKE ... ESCAPE '\\'`` pattern matching ids that contain ``text`` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def unstorable(*texts: str | None) -> bool:
    """Whether a text (an id, a name, a filter) could never have been stored, so a read naming
    it finds nothing instead of failing: it holds a NUL (PostgreSQL text refuses it, and ids
    and names never hold one) or half of a surrogate pair (it has no UTF-8 form: a command-line
    argument that was not UTF-8, say)."""
    for text in texts:
        if text is None:
            continue
        if "\x00" in text:
            return True
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def newest_share(limit: int, now: float) -> int:
    """How many of a claim of ``limit`` go to the most recently due instances: half, and the
    odd one by the parity of ``now``'s millisecond (a claim of one, as a busy worker makes
    when a slot frees, goes to either end about as often: neither starves)."""
    return limit // 2 + (limit % 2) * (int(now * 1000) % 2)


def prefix_successor(prefix: str) -> str:
    """The least string above every string starting with ``prefix`` (in code point order, as
    SQLite compares text), so ``prefix <= id < prefix_successor(prefix)`` selects the ids
    starting with ``prefix`` from an index on ``id``."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:  # only the highest code point: nothing is above, bar longer runs of it
        return prefix + "\U0010ffff"
    after = ord(stem[-1]) + 1
    return stem[:-1] + chr(0xE000 if 0xD800 <= after <= 0xDFFF else after)


@dataclass(frozen=True)
class NewInstance:
    """An instance to create."""

    id: str
    workflow: str
    params: str
    created_at: float
    version: str | None = None
    parent_id: str | None = None
    retention: float | None = None
    """Seconds to keep it once ended (None: its workflow's or the app's retention)."""
    concurrency_key: str | None = None
    """The group its workflow's concurrency limit counts it in (``runtime/concurrency.py``)."""


@dataclass(frozen=True)
class ConcurrencyLimit:
    """At most ``limit`` instances of ``workflow`` hold a lease at once: in all, or per value
    of their ``concurrency_key`` when ``keyed``. A ``waiting`` instance holds none."""

    workflow: str
    limit: int
    keyed: bool = False


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
    runs: int = 0
    """How many times a worker claimed it to run it (restarts included)."""
    retention: float | None = None
    """Seconds to keep it once ended (None: its workflow's or the app's retention)."""


@dataclass(frozen=True)
class Created:
    """One instance ``create_instances`` was asked for: the row as stored, and whether this
    call created it (False: the id existed, and ``row`` is that instance, unchanged)."""

    row: InstanceRow
    created: bool
    claim: Claim | None = None
    """The claim of a ``Handoff``: the new instance is already held by that worker."""


@dataclass(frozen=True)
class Handoff:
    """A worker of the creating process that takes new instances in the creating
    transaction: at most ``limit`` of the instances it creates (the first ones) are claimed
    for ``owner`` there (as ``claim`` would), so that worker starts them at once, with no
    wake-up and no claim of its own. Instances that existed already are never claimed this
    way."""

    owner: str
    limit: int
    now: float
    lease_until: float


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


RETRIED_KINDS: tuple[StepKind, ...] = ("do", "rollback")
"""The kinds of step whose ``waiting`` entry is a retry delay."""


def no_retry_error(row: InstanceRow, waiting: Sequence[StepRow]) -> InstanceStateError:
    """Why ``retry_now`` does not apply to instance ``row`` (its ``waiting`` journal entries)."""
    if row.status != "waiting":
        return InstanceStateError(
            f"instance {row.id!r} is {row.status}: only a waiting instance has a retry to run now"
        )
    waits = sorted({WAIT_WORDS.get(step.kind, step.kind) for step in waiting})
    what = " and ".join(waits) or "a wake-up"
    return InstanceStateError(
        f"instance {row.id!r} waits for {what}, not for a retry: it has no retry to run now"
    )


WAIT_WORDS = {"sleep": "a timer", "event": "an event", "child": "its children"}


@dataclass(frozen=True)
class LogRow:
    """One ``ctx.log`` line of an instance (``runtime/logs.py``). ``run`` (the lease token of
    the claim that wrote it) and ``line`` (its number in that run) name it, so a commit
    replayed after a lost connection keeps it once; ``seq`` is the store's order."""

    instance_id: str
    run: str
    line: int
    at: float
    level: str
    message: str
    step: str | None = None
    step_count: int | None = None
    fields: str | None = None
    seq: int = 0


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
    logs: list[LogRow] = field(default_factory=list[LogRow])
    """``ctx.log`` lines to keep (the store keeps the last ``LOG_LIMIT`` of the instance)."""


LOG_LIMIT = 1_000
"""The most ``ctx.log`` lines of one instance a store keeps (the latest)."""
MAX_BUFFERED_EVENTS = 1_000
"""The most events one instance holds that it has not taken yet: a client sending events to
an instance that never takes them (paused, or waiting for another type) would fill the store."""


def too_many_events_error(instance_id: str) -> InstanceStateError:
    """What ``send_event`` raises for an instance holding ``MAX_BUFFERED_EVENTS`` untaken."""
    return InstanceStateError(
        f"instance {instance_id!r} holds {MAX_BUFFERED_EVENTS:,} events it has not taken yet: "
        "it takes no more until its workflow takes some"
    )


DURATION_EDGES: tuple[float, ...] = tuple(
    round(mantissa * 10.0**exponent, 6)
    for exponent in range(-3, 7)
    for mantissa in (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
)
"""The upper edges, in seconds, of the duration classes ``count_ended`` counts ended instances
in (1 ms to 7,000,000 s, six per decade): class ``i`` holds durations below
``DURATION_EDGES[i]`` (and at or above the edge before it); class ``len(DURATION_EDGES)``
holds the rest."""


def duration_class_sql(duration: str) -> str:
    """A SQL ``CASE`` giving the ``DURATION_EDGES`` class of the expression ``duration``
    (the same text on both stores: the edges are numbers written into it). The ``CASE`` is
    nested as a binary search, so a row costs six comparisons, not up to sixty."""

    def classes(first: int, last: int) -> str:  # the classes first..last (inclusive)
        if first == last:
            return str(first)
        middle = (first + last + 1) // 2  # class ``middle`` starts at edge ``middle - 1``
        edge = DURATION_EDGES[middle - 1]
        return (
            f"CASE WHEN {duration} < {edge!r} THEN {classes(first, middle - 1)} "
            f"ELSE {classes(middle, last)} END"
        )

    return classes(0, len(DURATION_EDGES))


@dataclass(frozen=True)
class EndedCount:
    """How many instances ended ``status`` in time bucket ``bucket`` with a duration
    (creation to end) in class ``duration_class`` of ``DURATION_EDGES``."""

    bucket: int
    status: str
    duration_class: int
    count: int


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
    async def create_instances(
        self, instances: Sequence[NewInstance], handoff: Handoff | None = None
    ) -> list[Created]:
        """Insert in one transaction, all or nothing, and say which rows this call created.

        An id that exists is kept and returned as it is (``created`` False). Checked in the
        same transaction, so racing creators of one id see exactly one ``created``. With a
        ``handoff``, at most ``handoff.limit`` created rows are claimed for it in the same
        transaction (their ``claim`` is set, their ``row`` is the claimed one) and wake no
        other worker.

        Raises:
            InstanceIdConflictError: two instances share an id, or an id belongs to an
                instance of another workflow; nothing is stored.
        """
        ...

    async def get_instance(self, instance_id: str) -> InstanceRow | None: ...

    async def restarted_at(self, instance_id: str) -> float | None:
        """When the instance was last restarted (None: never, or no such instance)."""
        ...

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRow]: ...

    async def list_instances(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        search: str | None = None,
        id_prefix: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Instances, newest first: ``search`` matches ids containing it (any case),
        ``id_prefix`` ids starting with it (exactly), the others are equalities."""
        ...

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        """workflow -> status -> number of instances."""
        ...

    async def count_due(self, now: float) -> dict[str, int]:
        """workflow -> number of instances a worker could claim at ``now`` (queued, waiting or
        running on an expired lease, and due by then); workflows with none are left out."""
        ...

    async def count_ended(
        self, workflow: str, since: float, width: float, buckets: int
    ) -> list[EndedCount]:
        """Instances of ``workflow`` that ended (their last change, ``updated_at``, in an
        ended status) from ``since`` for ``buckets`` buckets of ``width`` seconds, counted by
        bucket, status and duration class: one query, at most ``buckets`` x 3 x
        ``len(DURATION_EDGES) + 1`` rows whatever the number of instances."""
        ...

    async def list_steps(self, instance_id: str) -> list[StepRow]: ...

    async def list_logs(self, instance_id: str, limit: int = LOG_LIMIT) -> list[LogRow]:
        """The last ``limit`` ``ctx.log`` lines of the instance, oldest first."""
        ...

    async def list_waiting_steps(self, instance_ids: Sequence[str]) -> list[StepRow]:
        """The journal entries in status ``waiting`` of the given instances (what a list of
        instances reads to say what each waits for), by instance and journal order."""
        ...

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
        self,
        instance_id: str,
        now: float,
        from_step: tuple[str, int] | None,
        version: str | None = None,
    ) -> InstanceRow:
        """Queue the instance again, dropping its journal from ``from_step`` on (all of it
        when None) and releasing the events those steps consumed. ``version``: the code
        version that runs it from now on (None: the next worker to run it records its own)."""
        ...

    async def send_event(
        self, instance_id: str, event_type: str, payload: str, now: float
    ) -> InstanceRow: ...

    async def retry_now(self, instance_id: str, now: float) -> InstanceRow:
        """Make the pending retries of a ``waiting`` instance due at ``now``: its waiting
        ``do`` and ``rollback`` steps and the instance itself, in one transaction.

        Raises:
            InstanceStateError: the instance is not waiting for a retry (it names what it
                is or waits for instead).
        """
        ...

    # Workers.
    async def claim(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_until: float,
        limits: Sequence[ConcurrencyLimit] = (),
        since: float | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` due instances to ``owner``; with ``since``, only instances
        due at or after ``since`` (a worker's headroom claim: what fell due after its last
        full claim; not with ``limits``: ValueError).

        When more are due than ``limit`` (and no ``limits`` are given), half of the claim
        (``newest_share``) goes to the most recently due and the rest to the longest due: a
        timer that falls due during a backlog (100,000 sleepers woken at one instant, say)
        starts within a claim or two of its due time instead of after the whole backlog, and
        the backlog still drains oldest first.

        With ``limits``, an instance of a limited workflow is claimed only while its group
        holds fewer leases than its limit (counted atomically with the claim, across every
        worker of the store), earliest due then earliest created first; the instances of a
        full group are passed over and stay due.
        """
        ...

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

    async def next_wake_at(
        self,
        limits: Sequence[ConcurrencyLimit] = (),
        now: float | None = None,
        since: float | None = None,
    ) -> float | None:
        """The earliest time an instance becomes runnable, if any is scheduled. With
        ``limits`` and ``now``, the instances due by ``now`` whose group is full are left
        out: they become runnable when a slot frees, not at a time. With ``since`` (and no
        ``limits``), only instances due at or after ``since`` count."""
        ...

    def note_load(self, running: int) -> None:
        """How many instances this process runs now; a store may commit differently when
        one runs alone (SQLite then commits on the caller's thread)."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when another process may have made work runnable, or after ``timeout``."""
        ...

    # The worker registry and liveness (store/workers.py).
    liveness_final: bool
    """Whether a free liveness lock proves its worker dead at the first look (SQLite: the
    kernel's file lock) or only once it stays free a moment (PostgreSQL: a server restart
    frees every lock until each worker takes its own again)."""

    async def locks_lost_at(self) -> float | None:
        """When every liveness lock was last freed at once (seconds since the epoch): the
        PostgreSQL server's start; None where that never happens (SQLite)."""
        ...

    async def register_worker(self, worker: WorkerInfo) -> None:
        """Take the worker's liveness lock (held until ``deregister_worker`` or the end of the
        process), then insert its row."""
        ...

    async def beat_worker(self, worker_id: str, now: float, running: int) -> bool:
        """Record a heartbeat; False when the row is gone (found dead and pruned meanwhile)."""
        ...

    async def ensure_worker_lock(self, worker_id: str) -> bool:
        """Make sure the worker still holds its liveness lock; False when it had lost it (a
        lost connection) and took it again just now."""
        ...

    async def deregister_worker(self, worker_id: str) -> None:
        """Delete the worker's row and release its lock (a clean stop)."""
        ...

    async def list_workers(self, with_held: bool = True) -> list[WorkerRow]:
        """Every registered worker, oldest first, with what its lock says now and (with
        ``with_held``) the ids of the instances whose lease it holds."""
        ...

    async def reclaim_worker(self, worker_id: str, now: float) -> int:
        """Mark a worker found dead and make its running instances due at ``now``, waking the
        workers; return how many instances it held. Call it only once its lock is free."""
        ...

    async def forget_workers(self, before: float) -> int:
        """Delete the rows of workers found dead before ``before``; return how many."""
        ...

    async def prune(
        self,
        statuses: Sequence[str],
        before: float,
        batch: int,
        *,
        workflows: Sequence[str] | None = None,
        other_than: Sequence[str] = (),
    ) -> int:
        """Delete up to ``batch`` instances in ``statuses`` last updated before ``before``,
        with their journals, events and logs, in one transaction that takes no more after
        ``PRUNE_SECONDS`` (so it may delete fewer while more match); return how many (0: no
        more match). Only instances without a retention of their own, of ``workflows``
        (None: any) and of none in ``other_than``; never a child whose parent has not
        ended."""
        ...

    async def prune_own_retention(
        self, statuses: Sequence[str], now: float, batch: int
    ) -> int:
        """Delete up to ``batch`` instances in ``statuses`` (ended ones) whose own retention
        has passed by ``now`` (as ``prune`` deletes); return how many."""
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
