"""The instance state machine, written once: (state, move) -> next state and effects.

A *state* is an instance's status and whether a worker holds its lease (only a ``running`` or
``paused`` instance can be held). A *move* is what happens to it: a worker's commit under its
lease (``Store.apply``, named by the status it asks for), an operator's control (pause, resume,
terminate, restart, an event), or the store's own bookkeeping (a claim, a heartbeat, a child
that ended). ``TABLE`` holds one row per (state, move): either the ``Outcome`` or the
``Refusal`` (an ``InstanceStateError``). A pair missing from the table never reaches the
store's rules: a commit or a heartbeat needs the lease (the fence refuses it first), a claim
takes only due ``queued``, ``waiting`` or ``running`` instances.

Three rules hold across the table, so rows need not repeat them:

- A held ``running`` or ``paused`` instance keeps its lease expiry as ``wake_at`` (a dead
  holder is noticed when it passes); ``resolve_wake_at`` applies this after the row's wake.
- A commit that creates child instances wakes the workers, whatever its row says.
- A commit asks for its lease to be released (``Transition.release``); a row whose lease is
  ``"asked"`` does as asked, and an ending (``complete``, ``errored``, ``terminated``) always
  releases. The runtime asks for the release with every status it commits, and for none
  mid-run, so only a ``running`` or ``paused`` instance is ever held.

The SQLite store (``sqlite.py``) looks its rows up here. PostgreSQL implements the same rows in
PL/pgSQL (``fw_apply_v2``, ``fw_wake_parent``) and in its control statements
(``postgres.py``); ``tests/store/test_states.py`` drives every row on both stores and checks
that each agrees with this table. docs/runtime.md ("Instance states") shows it as a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from framework.errors import InstanceStateError
from framework.store.base import TERMINAL, Status


@dataclass(frozen=True)
class State:
    """An instance's status, and whether a worker holds its lease."""

    status: Status
    held: bool = False

    def __str__(self) -> str:
        return f"{self.status} (held)" if self.held else self.status


QUEUED = State("queued")
WAITING = State("waiting")
RUNNING = State("running", held=True)
PAUSED = State("paused")
PAUSED_HELD = State("paused", held=True)
COMPLETE = State("complete")
ERRORED = State("errored")
TERMINATED = State("terminated")
STATES: tuple[State, ...] = (
    QUEUED, WAITING, RUNNING, PAUSED, PAUSED_HELD, COMPLETE, ERRORED, TERMINATED,
)  # fmt: skip
"""Every state an instance can be in."""

CommitMove = Literal[
    "journal", "queue", "wait", "wait_ready", "hold", "complete", "error", "end",
]  # fmt: skip
"""A worker's commit (``Store.apply``), by the status it asks for: none (``journal``: steps,
children or output mid-run), ``queued`` (``queue``), ``waiting`` (``wait``; ``wait_ready`` when
an event it waits for is already buffered or a child it awaits already ended), ``paused``
(``hold``: a fatal error under ``on_nondeterminism = "block"``), ``complete``, ``errored``
(``error``) or ``terminated`` (``end``: terminated after compensating)."""
ControlMove = Literal[
    "pause", "resume", "terminate", "compensate", "restart", "event", "awaited_event",
]  # fmt: skip
"""An operator's control: ``terminate`` ends the instance and its unended children at once,
``compensate`` queues them for a worker to compensate and end; ``event`` is an event the
instance does not wait for (it is buffered), ``awaited_event`` one it waits for."""
StoreMove = Literal["claim", "heartbeat", "child_ended"]
"""The store's own: a worker claims a due instance, or extends its lease; a child the
instance awaits (a waiting ``child`` step names it) ends."""
Move = CommitMove | ControlMove | StoreMove

Wake = Literal["keep", "clear", "now", "asked", "asked_or_now", "lease"]
"""The next ``wake_at``: unchanged, NULL, the move's time, the commit's ``wake_at`` (or the
move's time when it gives none), or the new lease's expiry."""
Lease = Literal["keep", "release", "asked", "take"]
"""What becomes of the lease: kept, released, released if the commit asks, taken by a claim."""
Control = Literal["keep", "clear", "terminate"]
"""What becomes of the pending control request (``InstanceRow.control``)."""


@dataclass(frozen=True)
class Outcome:
    """What a move does to an instance in a given state."""

    status: Status | None
    """The next status; None keeps the current one."""
    wake: Wake = "keep"
    lease: Lease = "keep"
    notify: bool = False
    """Other workers should look now: the instance is runnable at once."""
    wake_parent: bool = False
    """It ended: a parent waiting for it becomes runnable now (and then workers are told)."""
    control: Control = "keep"
    clear_error: bool = False
    reset: bool = False
    """A restart: output, error and crash count cleared, the journal dropped from the step
    asked for, the events those steps consumed given back, the generation counted up."""
    crash: bool = False
    """A claim of an instance whose holder's lease expired: its crash count and history grow."""
    tree: bool = False
    """The move also applies, depth first, to every child of the instance that has not ended."""


@dataclass(frozen=True)
class Refusal:
    """The move does not apply in this state: ``InstanceStateError`` with this reason."""

    reason: str
    """Completes ``instance 'id' is <status>: ...``."""
    already: bool = False
    """Says ``is already <status>``."""


Row = Outcome | Refusal

_END = {
    "complete": Outcome("complete", "asked", "release", wake_parent=True, control="clear"),
    "error": Outcome("errored", "asked", "release", wake_parent=True, control="clear"),
    "end": Outcome("terminated", "asked", "release", wake_parent=True, control="clear"),
}
_STAY_PAUSED = Outcome("paused", "clear", "asked")
_NOT_PAUSABLE = Refusal("cannot pause")
_NOT_PAUSED = Refusal("not paused")
_ENDED = Refusal("cannot terminate", already=True)
_NO_EVENTS = Refusal("it takes no more events")
_TERMINATE = Outcome("terminated", "clear", "release", wake_parent=True, control="clear", tree=True)
_COMPENSATE = Outcome("queued", "now", "release", notify=True, control="terminate", tree=True)
_RESTART = Outcome("queued", "now", "release", notify=True, control="clear", reset=True)
_UNCHANGED = Outcome(None)
_JOURNAL = Outcome(None, "clear", "asked")  # with the lease kept, the held rule keeps wake_at
_CLAIM = Outcome("running", "lease", "take")

_ROWS: dict[tuple[State, Move], Row] = {
    # A worker's commit under its lease. A paused instance stays paused until it ends.
    (RUNNING, "journal"): _JOURNAL,
    (RUNNING, "queue"): Outcome("queued", "asked_or_now", "asked", notify=True),
    (RUNNING, "wait"): Outcome("waiting", "asked", "asked"),
    (RUNNING, "wait_ready"): Outcome("waiting", "now", "asked", notify=True),
    (RUNNING, "hold"): Outcome("paused", "asked", "asked"),
    (RUNNING, "complete"): _END["complete"],
    (RUNNING, "error"): _END["error"],
    (RUNNING, "end"): _END["end"],
    (PAUSED_HELD, "journal"): _JOURNAL,
    (PAUSED_HELD, "queue"): _STAY_PAUSED,
    (PAUSED_HELD, "wait"): _STAY_PAUSED,
    (PAUSED_HELD, "wait_ready"): _STAY_PAUSED,
    (PAUSED_HELD, "hold"): _STAY_PAUSED,
    (PAUSED_HELD, "complete"): _END["complete"],
    (PAUSED_HELD, "error"): _END["error"],
    (PAUSED_HELD, "end"): _END["end"],
    # Pause: a held instance keeps its lease (its worker stops at the next step).
    (QUEUED, "pause"): Outcome("paused", "clear"),
    (WAITING, "pause"): Outcome("paused", "clear"),
    (RUNNING, "pause"): Outcome("paused"),
    (PAUSED, "pause"): _NOT_PAUSABLE,
    (PAUSED_HELD, "pause"): _NOT_PAUSABLE,
    (COMPLETE, "pause"): _NOT_PAUSABLE,
    (ERRORED, "pause"): _NOT_PAUSABLE,
    (TERMINATED, "pause"): _NOT_PAUSABLE,
    # Resume: queued again, or running on under the lease it kept.
    (QUEUED, "resume"): _NOT_PAUSED,
    (WAITING, "resume"): _NOT_PAUSED,
    (RUNNING, "resume"): _NOT_PAUSED,
    (PAUSED, "resume"): Outcome("queued", "now", notify=True, clear_error=True),
    (PAUSED_HELD, "resume"): Outcome("running", notify=True),
    (COMPLETE, "resume"): _NOT_PAUSED,
    (ERRORED, "resume"): _NOT_PAUSED,
    (TERMINATED, "resume"): _NOT_PAUSED,
    # Terminate at once, or after a worker compensates.
    **{(s, "terminate"): _TERMINATE for s in STATES if s.status not in TERMINAL},
    **{(s, "terminate"): _ENDED for s in STATES if s.status in TERMINAL},
    **{(s, "compensate"): _COMPENSATE for s in STATES if s.status not in TERMINAL},
    **{(s, "compensate"): _ENDED for s in STATES if s.status in TERMINAL},
    # Restart applies in every state, even to a running instance (its worker's next write
    # finds the lease gone).
    **{(s, "restart"): _RESTART for s in STATES},
    # An event is buffered for any instance that has not ended; one it waits for wakes it.
    **{(s, "event"): _UNCHANGED for s in STATES if s.status not in TERMINAL},
    **{(s, "event"): _NO_EVENTS for s in STATES if s.status in TERMINAL},
    # An event or an ended child the instance waits for (a waiting step names it) wakes it
    # if it is waiting; a running one sees it when it commits (``wait_ready``).
    **{(s, "awaited_event"): _UNCHANGED for s in STATES if s.status not in TERMINAL},
    **{(s, "awaited_event"): _NO_EVENTS for s in STATES if s.status in TERMINAL},
    (WAITING, "awaited_event"): Outcome(None, "now", notify=True),
    **{(s, "child_ended"): _UNCHANGED for s in STATES},
    (WAITING, "child_ended"): Outcome(None, "now", notify=True),
    # The store's own.
    (QUEUED, "claim"): _CLAIM,
    (WAITING, "claim"): _CLAIM,
    (RUNNING, "claim"): Outcome("running", "lease", "take", crash=True),
    (RUNNING, "heartbeat"): Outcome(None, "lease"),
    (PAUSED_HELD, "heartbeat"): Outcome(None, "lease"),
}
TABLE: Mapping[tuple[State, Move], Row] = MappingProxyType(_ROWS)
"""Every (state, move) that reaches the rules, and what it does; read-only."""


def state_of(status: Status, lease_owner: str | None) -> State:
    """The state of an instance with ``status`` whose lease ``lease_owner`` holds (or not)."""
    return State(status, lease_owner is not None and status in ("running", "paused"))


def commit_move(status: Status | None, ready: bool = False) -> CommitMove:
    """The move of a commit asking for ``status``; ``ready``: it waits for an event already
    buffered or a child already ended."""
    if status is None:
        return "journal"
    if status == "waiting":
        return "wait_ready" if ready else "wait"
    moves: dict[str, CommitMove] = {
        "queued": "queue",
        "paused": "hold",
        "complete": "complete",
        "errored": "error",
        "terminated": "end",
    }
    if status not in moves:
        raise ValueError(f"a commit cannot ask for status {status!r}")
    return moves[status]


def decide(instance_id: str, state: State, move: Move) -> Outcome:
    """The outcome of ``move`` on instance ``instance_id`` in ``state``.

    Raises:
        InstanceStateError: the table refuses the move in this state.
        LookupError: the pair never reaches the rules (see the module's docstring).
    """
    row = TABLE.get((state, move))
    if row is None:
        raise LookupError(f"no transition {move!r} from {state}")
    if isinstance(row, Refusal):
        already = "already " if row.already else ""
        raise InstanceStateError(
            f"instance {instance_id!r} is {already}{state.status}: {row.reason}"
        )
    return row


def next_status(state: State, outcome: Outcome) -> Status:
    """The status after ``outcome``."""
    return state.status if outcome.status is None else outcome.status


def next_control(current: str | None, outcome: Outcome) -> str | None:
    """The pending control request after ``outcome``."""
    values = {"keep": current, "clear": None, "terminate": "terminate"}
    return values[outcome.control]


def releases(outcome: Outcome, asked: bool) -> bool:
    """Whether ``outcome`` ends the lease (``asked``: the commit asks to release it)."""
    ends = outcome.status in TERMINAL
    return ends or outcome.lease == "release" or (outcome.lease == "asked" and asked)


def holds_after(state: State, outcome: Outcome, asked_release: bool = False) -> bool:
    """Whether a worker holds the lease after ``outcome``."""
    if outcome.lease == "take":
        return True
    return state.held and not releases(outcome, asked_release)


def resolve_wake_at(
    state: State,
    outcome: Outcome,
    *,
    current: float | None,
    now: float,
    asked: float | None = None,
    asked_release: bool = False,
    lease_until: float | None = None,
) -> float | None:
    """The ``wake_at`` after ``outcome``: its row's wake, then the held-lease rule (a held
    running or paused instance keeps its lease expiry)."""
    if outcome.wake == "lease":
        return lease_until
    if holds_after(state, outcome, asked_release) and next_status(state, outcome) in (
        "running",
        "paused",
    ):
        return current
    values: dict[Wake, float | None] = {
        "keep": current,
        "clear": None,
        "now": now,
        "asked": asked,
        "asked_or_now": now if asked is None else asked,
    }
    return values[outcome.wake]
