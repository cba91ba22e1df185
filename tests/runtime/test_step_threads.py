"""The threads of sync steps: one per call running at once, ended when idle, never joined."""

from __future__ import annotations

import threading
import time

from framework.runtime.step_threads import StepThreads


def test_each_call_running_at_once_gets_a_thread_and_idle_threads_end() -> None:
    threads = StepThreads(idle=0.2)
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocked() -> threading.Thread:
        started.release()
        release.wait(30)
        return threading.current_thread()

    futures = [threads.submit(blocked) for _ in range(20)]
    for _ in range(20):  # all 20 run at once: none waits for another to return
        assert started.acquire(timeout=10)
    release.set()
    ran_on = {f.result(timeout=10) for f in futures}
    assert len(ran_on) == 20
    assert all(t.name == "fw-step" and t.daemon for t in ran_on)

    deadline = time.monotonic() + 10  # (other tests' step threads may live on: only these)
    while any(t.is_alive() for t in ran_on) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.is_alive() for t in ran_on)


def test_calls_queue_past_the_most_threads_and_exceptions_reach_the_caller() -> None:
    threads = StepThreads(most=2, idle=0.2)
    futures = [threads.submit(time.sleep, 0.05) for _ in range(6)]
    assert [f.result(timeout=10) for f in futures] == [None] * 6
    failing = threads.submit(int, "not a number")
    try:
        failing.result(timeout=10)
    except ValueError as exc:
        assert "not a number" in str(exc)
    else:
        raise AssertionError("the ValueError did not reach the caller")
