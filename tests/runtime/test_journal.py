"""framework/runtime/journal.py: replaying a journal, and the check that the code still
matches it (same kinds, sequential entries in journal order)."""

from __future__ import annotations

import json
import re

import pytest

from framework.errors import NonDeterminismError
from framework.runtime.journal import Journal, StepKey, detail_of, is_concurrent
from framework.store.base import StepKind, StepRow


def _row(spec: str, seq: int) -> StepRow:
    """``"name#count:kind"``, with ``+`` at the end for an entry journaled concurrently."""
    concurrent = spec.endswith("+")
    key, kind = spec.rstrip("+").split(":")
    name, _, count = key.partition("#")
    detail = json.dumps({"concurrent": True}) if concurrent else None
    return StepRow("i-1", name, int(count or 1), seq, _kind(kind), "complete", detail=detail)


def _kind(kind: str) -> StepKind:
    kinds: dict[str, StepKind] = {
        "do": "do", "sleep": "sleep", "event": "event", "child": "child",
        "rollback": "rollback", "patch": "patch",
    }
    return kinds[kind]


def _journal(specs: str) -> Journal:
    """A journal of space-separated ``_row`` specs, in order."""
    return Journal("i-1", [_row(spec, seq) for seq, spec in enumerate(specs.split())])


def _request_all(journal: Journal, requests: str) -> str:
    """Request each space-separated ``name:kind``; the keys as ``name#count@seq``."""
    keys = []
    for request in requests.split():
        name, kind = request.split(":")
        key = journal.request(name, _kind(kind))
        keys.append(f"{key.name}#{key.count}@{key.seq}")
    return " ".join(keys)


@pytest.mark.parametrize(
    ("journaled", "requests", "keys"),
    [
        pytest.param("", "a:do b:sleep", "a#1@0 b#1@1", id="empty journal"),
        pytest.param("a:do w:event b:do", "a:do w:event b:do", "a#1@0 w#1@1 b#1@2", id="in order"),
        pytest.param("a:do", "a:do b:do c:do", "a#1@0 b#1@1 c#1@2", id="past the journal"),
        pytest.param("a#1:do a#2:do", "a:do a:do a:do", "a#1@0 a#2@1 a#3@2", id="a loop"),
        pytest.param("p:do+ q:do+", "q:do p:do", "q#1@1 p#1@0", id="concurrent in any order"),
        pytest.param(
            "a:do p:do+ q:do+ b:do",
            "a:do q:do p:do b:do",
            "a#1@0 q#1@2 p#1@1 b#1@3",
            id="concurrent between sequential",
        ),
        pytest.param("a:do undo:rollback", "a:do x:do", "a#1@0 x#1@2", id="rollbacks not ordered"),
        pytest.param("a:do c:child s:sleep", "a:do c:child s:sleep", "a#1@0 c#1@1 s#1@2"),
    ],
)
def test_requests_that_match_the_journal(journaled: str, requests: str, keys: str) -> None:
    journal = _journal(journaled)

    assert _request_all(journal, requests) == keys
    assert {r.kind for r in journal.unreplayed()} <= {"rollback"}


@pytest.mark.parametrize(
    ("journaled", "requests", "asked", "held"),
    [
        pytest.param("a:do", "a:sleep", "a sleep step 'a'", "do step 'a'", id="kind"),
        pytest.param("a:do b:do", "a:do x:do", "a new step 'x'", "do step 'b'", id="added"),
        pytest.param("a:do b:do", "b:do", "the step 'b'", "do step 'a'", id="reordered"),
        pytest.param("a:do b:do c:do", "a:do c:do", "the step 'c'", "do step 'b'", id="removed"),
        pytest.param("w:event", "w:do", "a do step 'w'", "event step 'w'", id="event"),
        pytest.param(
            "a:do a#2:event", "a:do a:do", "a do step 'a'", "event step 'a' (occurrence 2)"
        ),
    ],
)
def test_requests_that_do_not_match_are_nondeterminism(
    journaled: str, requests: str, asked: str, held: str
) -> None:
    journal = _journal(journaled)
    message = f"the code asks for {asked} where the journal holds the {held};"

    with pytest.raises(NonDeterminismError, match=re.escape(message)) as raised:
        _request_all(journal, requests)

    assert "instance 'i-1'" in str(raised.value)
    assert "ctx.patched(...)" in str(raised.value)


@pytest.mark.parametrize(
    ("journaled", "before", "patched"),
    [
        ("a:do fix:patch b:do", "a:do", True),
        ("a:do b:do", "a:do", False),
        ("a:do", "a:do", None),
        ("", "", None),
    ],
    ids=["marker journaled", "older entries without it", "past the journal", "new instance"],
)
def test_peek_patch(journaled: str, before: str, patched: bool | None) -> None:
    journal = _journal(journaled)
    _request_all(journal, before)

    assert journal.peek_patch("fix") is patched


def test_replaying_lasts_until_every_entry_was_asked_for() -> None:
    journal = _journal("a:do b:do")
    assert (len(journal), journal.replaying) == (2, True)

    journal.request("a", "do")
    assert [r.name for r in journal.unreplayed()] == ["b"]
    journal.request("b", "do")
    assert not journal.replaying

    journal.record(_row("c:do", 2))
    assert len(journal) == 3 and journal.get(StepKey("c", 1, 2)) is not None
    assert journal.get(StepKey("d", 1, 3)) is None


@pytest.mark.parametrize(
    ("key", "label"),
    [(StepKey("charge", 1, 0), "charge"), (StepKey("charge", 3, 7), "charge (occurrence 3)")],
)
def test_step_key_label(key: StepKey, label: str) -> None:
    assert key.label == label


@pytest.mark.parametrize(
    ("detail", "parsed", "concurrent"),
    [
        (None, {}, False),
        ("", {}, False),
        ('{"type": "approval"}', {"type": "approval"}, False),
        ('{"concurrent": true}', {"concurrent": True}, True),
        ('{"concurrent": false, "child_id": "c"}', {"concurrent": False, "child_id": "c"}, False),
    ],
)
def test_detail_of_and_is_concurrent(
    detail: str | None, parsed: dict[str, object], concurrent: bool
) -> None:
    row = StepRow("i-1", "s", 1, 0, "do", "complete", detail=detail)

    assert detail_of(row) == parsed
    assert is_concurrent(row) is concurrent
