"""framework/runtime/recorder.py: the journal bookkeeping of one run, through its methods:
which step comes next, when the body must stop and why, what a commit writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from framework.errors import NonDeterminismError
from framework.runtime.clock import Clock
from framework.runtime.journal import StepKey
from framework.runtime.recorder import Recorder
from framework.runtime.signals import Ended
from framework.runtime.suspension import Suspend
from framework.store import open_store
from framework.store.base import Claim, InstanceRow, StepRow, Store
from tests.store.conformance.helpers import T0, start, step

LEASE = 30.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """An open store on a fresh database (both stores)."""
    opened = open_store(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


class _StoppedClock(Clock):
    """Time stands at ``T0``, when the conformance helpers claim."""

    def now(self) -> float:
        return T0


def _claim(steps: list[StepRow], *, generation: int = 0, control: str | None = None) -> Claim:
    row = InstanceRow(
        seq=1,
        id="i-1",
        workflow="wf",
        status="running",
        params="{}",
        output=None,
        error=None,
        version=None,
        parent_id=None,
        generation=generation,
        created_at=T0,
        updated_at=T0,
        wake_at=None,
        lease_owner="w1",
        crash_count=0,
        crashes=None,
        control=control,
    )
    return Claim(row, steps, "token", False)


def _recorder(
    claim: Claim,
    store: Store | None = None,
    *,
    replay_only: bool = False,
    ended: list[tuple[str, Ended | None]] | None = None,
) -> Recorder:
    told = ended if ended is not None else []
    return Recorder(
        store,  # type: ignore[arg-type]  # None where nothing is committed
        _StoppedClock(),
        claim,
        replay_only=replay_only,
        retry_budget=LEASE / 2,
        on_ended=lambda instance_id, how: told.append((instance_id, how)),
    )


def test_request_gives_the_next_key_and_whether_another_step_runs_meanwhile() -> None:
    recorder = _recorder(_claim([]))

    first = recorder.request("a", "do")
    recorder.enter_step()
    second = recorder.request("a", "do")
    recorder.leave_step()
    third = recorder.request("b", "do")

    assert [(key.name, key.count, concurrent) for key, concurrent in (first, second, third)] == [
        ("a", 1, False),
        ("a", 2, True),
        ("b", 1, False),
    ]


@pytest.mark.parametrize("reason", ["pause", "shutdown"])
def test_a_stop_stops_the_body_at_its_next_step_and_keeps_the_first_reason(reason: str) -> None:
    recorder = _recorder(_claim([]))

    recorder.stop(reason)  # type: ignore[arg-type]
    recorder.stop("shutdown" if reason == "pause" else "pause")

    with pytest.raises(Suspend):
        recorder.request("a", "do")
    assert recorder.stop_reason == reason


def test_suspend_keeps_the_earliest_wake_and_every_event_and_child() -> None:
    recorder = _recorder(_claim([]))

    for wake_at, event, children in (
        (T0 + 60, None, ()),
        (T0 + 5, "paid", ("c-1",)),
        (None, "shipped", ("c-2",)),
    ):
        with pytest.raises(Suspend):
            recorder.suspend(wake_at=wake_at, event_type=event, children=children)

    assert recorder.stop_reason == "wait"
    assert (recorder.waits.wake_at, recorder.waits.event_types, recorder.waits.children) == (
        T0 + 5,
        ["paid", "shipped"],
        ["c-1", "c-2"],
    )


def test_a_step_the_journal_does_not_expect_holds_the_run() -> None:
    recorder = _recorder(_claim([step("i-1", "charge", 0)]))

    with pytest.raises(Suspend):
        recorder.request("refund", "do")

    assert isinstance(recorder.fatal, NonDeterminismError)
    assert recorder.stop_reason == "fatal"


def test_replay_only_stops_at_the_first_step_the_journal_lacks() -> None:
    recorder = _recorder(_claim([step("i-1", "a", 0)]), replay_only=True)

    recorder.request("a", "do")
    with pytest.raises(Suspend):
        recorder.request("b", "do")

    assert recorder.frontier == "b"


def test_replay_only_names_a_wait_where_the_journal_ends_waiting() -> None:
    recorder = _recorder(
        _claim([step("i-1", "nap", 0, kind="sleep", status="waiting")]), replay_only=True
    )

    recorder.request("nap", "sleep")
    with pytest.raises(Suspend):
        recorder.suspend(wake_at=T0 + 60)

    assert recorder.frontier == "nap (waiting)"


def test_after_the_body_only_rollback_steps_run_whatever_stopped_it() -> None:
    recorder = _recorder(_claim([]))
    recorder.stop("pause")

    recorder.leave_body()

    assert recorder.stop_reason is None
    with pytest.raises(Suspend):
        recorder.request("more", "do")
    key, _ = recorder.request("rollback:charge", "rollback")
    assert key == StepKey("rollback:charge", 1, 0)


def test_idempotency_keys_change_with_each_restart() -> None:
    key = StepKey("charge", 2, 3)

    assert _recorder(_claim([])).idempotency_key(key) == "i-1:charge:2"
    assert _recorder(_claim([], generation=3)).idempotency_key(key) == "i-1:charge:2:r3"


def test_make_row_marks_a_concurrent_step_in_its_detail() -> None:
    recorder = _recorder(_claim([]))
    key = StepKey("a", 1, 0)

    plain = recorder.make_row(key, "do", "complete", detail={"output_type": "int"})
    concurrent = recorder.make_row(key, "do", "complete", concurrent=True)

    assert plain.detail == '{"output_type": "int"}'
    assert concurrent.detail == '{"concurrent": true}'


async def test_a_commit_writes_the_remembered_rows_with_its_own(store: Store) -> None:
    claim = await start(store, "i-1")
    ended: list[tuple[str, Ended | None]] = []
    recorder = _recorder(claim, store, ended=ended)
    first, _ = recorder.request("a", "do")
    second, _ = recorder.request("b", "do")

    recorder.remember(recorder.make_row(first, "do", "complete", output="1"))
    status = await recorder.commit([recorder.make_row(second, "do", "complete", output="2")])

    assert status == "running"
    assert [(s.name, s.output) for s in await store.list_steps("i-1")] == [("a", "1"), ("b", "2")]
    assert [recorder.journal.get(k) is not None for k in (first, second)] == [True, True]
    assert ended == []


async def test_a_commit_that_ends_the_instance_says_so(store: Store) -> None:
    claim = await start(store, "i-1")
    ended: list[tuple[str, Ended | None]] = []
    recorder = _recorder(claim, store, ended=ended)

    status = await recorder.commit(status="complete", output="null", release=True)

    assert (status, ended) == ("complete", [("i-1", Ended("complete", "null", None))])


async def test_a_commit_that_fails_the_instance_says_with_what_error(store: Store) -> None:
    claim = await start(store, "i-1")
    ended: list[tuple[str, Ended | None]] = []
    recorder = _recorder(claim, store, ended=ended)

    status = await recorder.commit(status="errored", error='{"x": 1}', release=True)

    assert (status, ended) == ("errored", [("i-1", Ended("errored", None, '{"x": 1}'))])
