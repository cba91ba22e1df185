"""The state machine's table, row by row, against a spec written as a matrix (pure, fast)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from framework.errors import InstanceStateError
from framework.store.base import RUNNABLE, TERMINAL
from framework.store.states import (
    COMPLETE,
    PAUSED,
    PAUSED_HELD,
    QUEUED,
    RUNNING,
    STATES,
    TABLE,
    WAITING,
    CommitMove,
    ControlMove,
    Move,
    Outcome,
    Refusal,
    State,
    StoreMove,
    commit_move,
    decide,
    holds_after,
    next_status,
    releases,
    resolve_wake_at,
)

# The next status of every (state, move): "!" refused, "=" unchanged, "-" never reaches the
# rules (the fence, the claim's filter or the heartbeat's owner check stops it first).
SPEC = """
state          journal  queue   wait     wait_ready hold    complete error   end
queued         -        -       -        -          -       -        -       -
waiting        -        -       -        -          -       -        -       -
running(held)  running  queued  waiting  waiting    paused  complete errored terminated
paused         -        -       -        -          -       -        -       -
paused(held)   paused   paused  paused   paused     paused  complete errored terminated
complete       -        -       -        -          -       -        -       -
errored        -        -       -        -          -       -        -       -
terminated     -        -       -        -          -       -        -       -

state          pause    resume  terminate  compensate restart event awaited_event child_ended
queued         paused   !       terminated queued     queued  =     =             =
waiting        paused   !       terminated queued     queued  =     =             =
running(held)  paused   !       terminated queued     queued  =     =             =
paused         !        queued  terminated queued     queued  =     =             =
paused(held)   !        running terminated queued     queued  =     =             =
complete       !        !       !          !          queued  !     !             =
errored        !        !       !          !          queued  !     !             =
terminated     !        !       !          !          queued  !     !             =

state          claim    heartbeat
queued         running  -
waiting        running  -
running(held)  running  =
paused         -        -
paused(held)   -        =
complete       -        -
errored        -        -
terminated     -        -
"""


def _spec() -> dict[tuple[State, str], str]:
    by_name = {str(s).replace(" (held)", "(held)"): s for s in STATES}
    cells: dict[tuple[State, str], str] = {}
    for block in SPEC.strip().split("\n\n"):
        header, *lines = block.splitlines()
        moves = header.split()[1:]
        for line in lines:
            name, *values = line.split()
            cells.update({(by_name[name], m): v for m, v in zip(moves, values, strict=True)})
    return cells


CELLS = _spec()
REPO = Path(__file__).resolve().parents[2]
MOVES: list[str] = [*get_args(CommitMove), *get_args(ControlMove), *get_args(StoreMove)]


def test_the_spec_covers_every_state_and_move() -> None:
    assert set(CELLS) == {(s, m) for s in STATES for m in MOVES}


@pytest.mark.parametrize(("state", "move"), list(CELLS), ids=lambda x: str(x))
def test_each_row_matches_the_spec(state: State, move: Move) -> None:
    expected = CELLS[(state, move)]
    row = TABLE.get((state, move))
    if expected == "-":
        assert row is None
        with pytest.raises(LookupError):
            decide("a", state, move)
    elif expected == "!":
        assert isinstance(row, Refusal)
        with pytest.raises(InstanceStateError, match=rf"^instance 'a' is .*{state.status}: "):
            decide("a", state, move)
    else:
        assert isinstance(row, Outcome)
        want = state.status if expected == "=" else expected
        assert next_status(state, decide("a", state, move)) == want


ROWS = [(state, move, row) for (state, move), row in TABLE.items() if isinstance(row, Outcome)]


@pytest.mark.parametrize(("state", "move", "outcome"), ROWS, ids=lambda x: str(x)[:30])
def test_each_row_keeps_the_invariants(state: State, move: Move, outcome: Outcome) -> None:
    status = next_status(state, outcome)
    # Only a running or paused instance is ever held (the runtime's commits release the lease
    # whenever they ask for a status, and keep it otherwise).
    asked = move in get_args(CommitMove) and move != "journal"
    assert State(status, holds_after(state, outcome, asked)) in STATES
    if status in TERMINAL and state.status not in TERMINAL:
        # Ending releases the lease, drops any control request and tells a waiting parent.
        assert releases(outcome, asked=False)
        assert outcome.control == "clear"
        assert outcome.wake_parent
    if outcome.notify:
        assert status in RUNNABLE  # workers are told only about work they can take
    if outcome.wake in ("now", "asked_or_now") and status in ("queued", "waiting"):
        assert outcome.notify  # runnable at once: someone must look
    if outcome.lease == "take":
        assert move == "claim"


def test_refusals_are_only_for_an_operators_controls() -> None:
    refused = {move for (_, move), row in TABLE.items() if isinstance(row, Refusal)}
    assert refused <= set(get_args(ControlMove))


@pytest.mark.parametrize(
    ("state", "move", "message"),
    [
        (PAUSED, "pause", "instance 'a' is paused: cannot pause"),
        (COMPLETE, "pause", "instance 'a' is complete: cannot pause"),
        (QUEUED, "resume", "instance 'a' is queued: not paused"),
        (COMPLETE, "terminate", "instance 'a' is already complete: cannot terminate"),
        (COMPLETE, "compensate", "instance 'a' is already complete: cannot terminate"),
        (COMPLETE, "event", "instance 'a' is complete: it takes no more events"),
    ],
)
def test_refusals_say_what_and_why(state: State, move: Move, message: str) -> None:
    with pytest.raises(InstanceStateError) as raised:
        decide("a", state, move)
    assert str(raised.value) == message


NOW, ASKED, CURRENT, LEASE = 100.0, 150.0, 130.0, 160.0


@pytest.mark.parametrize(
    ("state", "move", "asked", "asked_release", "expected"),
    [
        (RUNNING, "queue", ASKED, True, ASKED),
        (RUNNING, "queue", None, True, NOW),  # asked_or_now
        (RUNNING, "wait", None, True, None),  # waits for a signal only
        (RUNNING, "wait_ready", ASKED, True, NOW),
        (RUNNING, "journal", None, False, CURRENT),  # still held: the lease expiry stays
        (RUNNING, "journal", None, True, None),
        (RUNNING, "hold", None, False, CURRENT),
        (RUNNING, "hold", None, True, None),
        (PAUSED_HELD, "queue", ASKED, True, None),  # stays paused, released
        (PAUSED_HELD, "queue", ASKED, False, CURRENT),
        (RUNNING, "complete", None, True, None),
        (RUNNING, "pause", None, False, CURRENT),
        (WAITING, "pause", None, False, None),
        (PAUSED, "resume", None, False, NOW),
        (PAUSED_HELD, "resume", None, False, CURRENT),
        (RUNNING, "terminate", None, False, None),
        (RUNNING, "compensate", None, False, NOW),
        (RUNNING, "restart", None, False, NOW),
        (WAITING, "event", None, False, CURRENT),
        (WAITING, "awaited_event", None, False, NOW),
        (WAITING, "child_ended", None, False, NOW),
        (QUEUED, "child_ended", None, False, CURRENT),
        (RUNNING, "claim", None, False, LEASE),
        (PAUSED_HELD, "heartbeat", None, False, LEASE),
    ],
)
def test_wake_at_after_a_move(
    state: State, move: Move, asked: float | None, asked_release: bool, expected: float | None
) -> None:
    outcome = decide("a", state, move)
    wake_at = resolve_wake_at(
        state,
        outcome,
        current=CURRENT,
        now=NOW,
        asked=asked,
        asked_release=asked_release,
        lease_until=LEASE,
    )
    assert wake_at == expected


@pytest.mark.parametrize(
    ("status", "ready", "move"),
    [
        (None, False, "journal"),
        ("queued", False, "queue"),
        ("waiting", False, "wait"),
        ("waiting", True, "wait_ready"),
        ("paused", False, "hold"),
        ("complete", False, "complete"),
        ("errored", False, "error"),
        ("terminated", False, "end"),
    ],
)
def test_a_commit_is_named_by_the_status_it_asks_for(
    status: str | None, ready: bool, move: str
) -> None:
    assert commit_move(status, ready) == move  # type: ignore[arg-type]


def test_a_commit_cannot_ask_to_run() -> None:
    with pytest.raises(ValueError, match="'running'"):
        commit_move("running")


# The table as docs/runtime.md shows it ("Instance states"), rendered from TABLE.
DOCS = REPO / "docs" / "runtime.md"
BEGIN = "<!-- instance states: rendered from framework/store/states.py; tests/store/test_states.py checks it -->"
END = "<!-- end of instance states -->"
WAKES = {
    "keep": "kept",
    "clear": "none",
    "now": "now",
    "asked": "as asked",
    "asked_or_now": "as asked, else now",
    "lease": "lease expiry",
}
LEASES = {"keep": "kept", "release": "released", "asked": "released if asked", "take": "taken"}


def render_table() -> str:
    """One line per move and outcome, the states it applies in grouped together."""
    lines = [
        "| move | in state | next status | `wake_at` | lease | also |",
        "|---|---|---|---|---|---|",
    ]
    for move in MOVES:
        groups: dict[Outcome | Refusal, list[str]] = {}
        for state in STATES:
            row = TABLE.get((state, move))
            if row is not None:
                groups.setdefault(row, []).append(str(state))
        for row, states in groups.items():
            lines.append(f"| `{move}` | {', '.join(states)} | {_cells(row)} |")
    return "\n".join(lines)


def _cells(row: Outcome | Refusal) -> str:
    if isinstance(row, Refusal):
        already = "already … " if row.already else ""
        return f"refused ({already}{row.reason}) | | |"
    also = [
        text
        for flag, text in (
            (row.notify, "workers told"),
            (row.wake_parent, "a parent waiting for it woken"),
            (row.control == "clear", "control cleared"),
            (row.control == "terminate", "control `terminate`"),
            (row.clear_error, "error cleared"),
            (row.reset, "restart reset"),
            (row.crash, "a crash counted"),
            (row.tree, "same for its unended children"),
        )
        if flag
    ]
    status = row.status or "unchanged"
    return f"{status} | {WAKES[row.wake]} | {LEASES[row.lease]} | {'; '.join(also)}"


def test_the_docs_show_the_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{DOCS} lacks the markers {BEGIN} ... {END}"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == render_table(), f"update {DOCS} between the markers to:\n{render_table()}"
