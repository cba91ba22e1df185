"""The journal of one instance during a run: replayed entries, and the determinism check.

Steps are keyed by name and occurrence (``("charge", 1)``, ``("charge", 2)`` in a loop).
Replay runs the body from the top; each step it asks for is looked up by key. The check that
the code still matches the journal: a step must be asked for with the kind it was journaled
with, and, for entries journaled while no other step of the instance was in flight (the
common, sequential case), in journal order: asking for anything else while such an entry is
still unreplayed means the code changed under the instance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from framework.errors import NonDeterminismError
from framework.store.base import StepKind, StepRow

MAX_STEP_NAME = 512
"""The longest step name or event type a body may use (the API's and Studio's limit too)."""


def check_step_name(name: object, what: str = "step name") -> None:
    """Refuse a step name (or event type, ``what``) that could not be journaled, restarted
    from or shown: not a str, empty, longer than ``MAX_STEP_NAME``, holding a NUL
    (PostgreSQL text refuses it) or half of a surrogate pair (it has no UTF-8 form).

    Raises:
        TypeError: not a str.
        ValueError: the message names the value and what is wrong with it.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} {name!r:.100} is of type {type(name).__name__}, not str")
    problem = None
    if not name:
        problem = "is empty"
    elif len(name) > MAX_STEP_NAME:
        problem = f"has {len(name):,} characters (at most {MAX_STEP_NAME})"
    elif "\x00" in name:
        problem = "holds a NUL character"
    elif not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            problem = "holds half of a surrogate pair, which has no UTF-8 form"
    if problem is not None:
        raise ValueError(f"{what} {name[:100]!r}{'...' if len(name) > 100 else ''} {problem}")


@dataclass(frozen=True)
class StepKey:
    """A step's identity in the journal, and its position."""

    name: str
    count: int
    seq: int

    @property
    def label(self) -> str:
        return self.name if self.count == 1 else f"{self.name} (occurrence {self.count})"


class Journal:
    """The journal of a run, in memory."""

    def __init__(self, instance_id: str, rows: list[StepRow]) -> None:
        self.instance_id = instance_id
        self._rows = {(r.name, r.count): r for r in rows}
        self._unreplayed = {(r.name, r.count): r for r in rows}
        self._counts: dict[str, int] = {}
        self._next_seq = max((r.seq for r in rows), default=-1) + 1
        self._sequential = sorted(
            (r for r in rows if r.kind != "rollback" and not is_concurrent(r)), key=lambda r: r.seq
        )
        self._sequential_done = 0  # entries of _sequential before this one were all replayed

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: StepKey) -> StepRow | None:
        """The journaled entry of ``key``, if any."""
        return self._rows.get((key.name, key.count))

    def record(self, row: StepRow) -> None:
        """Remember a row that was just written."""
        self._rows[(row.name, row.count)] = row

    @property
    def replaying(self) -> bool:
        """Whether journaled entries remain that the body has not asked for again."""
        return bool(self._unreplayed)

    def unreplayed(self) -> list[StepRow]:
        """Entries the body has not asked for, in journal order."""
        return sorted(self._unreplayed.values(), key=lambda r: r.seq)

    def request(self, name: str, kind: StepKind) -> StepKey:
        """The key of the next step called ``name``; checks it against the journal.

        Raises:
            NonDeterminismError: the journal holds another kind of step under this key, or
                a sequential entry that should have come first.
            ValueError: ``name`` could not be journaled (see ``check_step_name``).
        """
        check_step_name(name)
        count = self._counts.get(name, 0) + 1
        journaled = self._rows.get((name, count))
        if journaled is not None and journaled.kind != kind:
            raise self._mismatch(f"a {kind} step {name!r}", journaled)
        self._check_order(name, count, journaled)
        self._counts[name] = count
        if journaled is not None:
            self._unreplayed.pop((name, count), None)
            return StepKey(name, count, journaled.seq)
        key = StepKey(name, count, self._next_seq)
        self._next_seq += 1
        return key

    def peek_patch(self, change_id: str) -> bool | None:
        """For ``patched``: True when the journal holds the marker next, False when it is
        replaying older entries without it, None when past the journal (new code path)."""
        count = self._counts.get(change_id, 0) + 1
        if (change_id, count) in self._rows:
            return True
        return False if self._next_sequential() is not None else None

    def _check_order(self, name: str, count: int, journaled: StepRow | None) -> None:
        expected = self._next_sequential()
        if expected is None or (expected.name, expected.count) == (name, count):
            return
        if journaled is None or expected.seq < journaled.seq:
            what = f"{'a new' if journaled is None else 'the'} step {name!r}"
            raise self._mismatch(what, expected)

    def _next_sequential(self) -> StepRow | None:
        """The first sequential entry, in journal order, the body has not asked for yet."""
        while self._sequential_done < len(self._sequential):
            row = self._sequential[self._sequential_done]
            if (row.name, row.count) in self._unreplayed:
                return row
            self._sequential_done += 1
        return None

    def _mismatch(self, requested: str, journaled: StepRow) -> NonDeterminismError:
        occurrence = f" (occurrence {journaled.count})" if journaled.count > 1 else ""
        return NonDeterminismError(
            f"instance {self.instance_id!r}: the code asks for {requested} where the journal "
            f"holds the {journaled.kind} step {journaled.name!r}{occurrence}; the workflow "
            "changed under this instance. Deploy the old code for it, branch with "
            "ctx.patched(...), or restart it",
            step=journaled.name,
        )


def detail_of(row: StepRow) -> dict[str, Any]:
    """The kind-specific details of a journal entry (event type, child id, ...)."""
    return json.loads(row.detail) if row.detail else {}


def is_concurrent(row: StepRow) -> bool:
    """Whether the entry was requested while another step of the instance was in flight."""
    return bool(detail_of(row).get("concurrent"))
