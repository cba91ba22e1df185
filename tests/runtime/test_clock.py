"""framework/runtime/clock.py: the wall clock, and the test clock that skips ahead only while
someone awaits a result."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from framework.runtime.clock import Clock, SkippingClock


def test_the_wall_clock_is_time_and_never_skips() -> None:
    clock = Clock()

    before = time.time()
    assert before <= clock.now() <= time.time()
    assert not clock.may_skip()
    with clock.awaiting():
        assert not clock.may_skip()
    with pytest.raises(RuntimeError, match="cannot skip ahead"):
        clock.skip_to(clock.now() + 60)


Step = Callable[[SkippingClock], None]


def _skip(seconds: float) -> Step:
    return lambda clock: clock.skip_to(clock.now() + seconds)


def _advance(seconds: float) -> Step:
    return lambda clock: clock.advance(seconds)


@pytest.mark.parametrize(
    ("steps", "ahead"),
    [
        ([], 0.0),
        ([_advance(60)], 60.0),
        ([_advance(60), _advance(40)], 100.0),
        ([_skip(3600)], 3600.0),
        ([_skip(3600), _skip(60)], 3660.0),
        ([_skip(-60)], 0.0),  # skipping backwards does nothing
        ([_advance(10), _skip(-5)], 10.0),
        ([_skip(0)], 0.0),
    ],
)
def test_a_skipping_clock_only_moves_forward(steps: list[Step], ahead: float) -> None:
    clock = SkippingClock()

    for step in steps:
        step(clock)

    assert clock.offset == pytest.approx(ahead, abs=0.01)
    assert clock.now() == pytest.approx(time.time() + ahead, abs=0.05)


@pytest.mark.parametrize(("waiters", "may_skip"), [(0, False), (1, True), (3, True)])
def test_it_may_skip_only_while_someone_awaits_a_result(waiters: int, may_skip: bool) -> None:
    clock = SkippingClock()
    contexts = [clock.awaiting() for _ in range(waiters)]

    for context in contexts:
        context.__enter__()
    assert clock.may_skip() is may_skip
    for context in contexts:
        context.__exit__(None, None, None)

    assert not clock.may_skip()


def test_a_waiter_that_fails_stops_counting() -> None:
    clock = SkippingClock()

    with pytest.raises(TimeoutError), clock.awaiting():
        raise TimeoutError

    assert not clock.may_skip()
