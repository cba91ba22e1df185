"""framework/runtime/retries.py: retry policies, resolved against defaults, and their waits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from framework import ConfigError
from framework.runtime.app import App
from framework.runtime.retries import Backoff, Retries, RetryPolicy
from tests.apps import write_app
from tests.runtime.test_app import ONE

DEFAULT = RetryPolicy(limit=3, delay=1.0, backoff="exponential", max_delay=60.0)


@pytest.mark.parametrize(
    ("retries", "resolved"),
    [
        (None, DEFAULT),
        (Retries(), DEFAULT),
        (Retries(limit=0), RetryPolicy(0, 1.0, "exponential", 60.0)),
        (Retries(limit=10), RetryPolicy(10, 1.0, "exponential", 60.0)),
        (Retries(delay="500 ms"), RetryPolicy(3, 0.5, "exponential", 60.0)),
        (Retries(delay=0), RetryPolicy(3, 0.0, "exponential", 60.0)),
        (Retries(backoff="constant"), RetryPolicy(3, 1.0, "constant", 60.0)),
        (Retries(backoff="linear"), RetryPolicy(3, 1.0, "linear", 60.0)),
        (Retries(max_delay="5 minutes"), RetryPolicy(3, 1.0, "exponential", 300.0)),
        (
            Retries(limit=1, delay="2 s", backoff="linear", max_delay=3),
            RetryPolicy(1, 2.0, "linear", 3.0),
        ),
        (Retries(factor=3), RetryPolicy(3, 1.0, "exponential", 60.0, factor=3.0)),
        (Retries(jitter=0.25), RetryPolicy(3, 1.0, "exponential", 60.0, jitter=0.25)),
        (
            Retries(factor=1.5, jitter=0),
            RetryPolicy(3, 1.0, "exponential", 60.0, factor=1.5, jitter=0.0),
        ),
    ],
)
def test_resolve_fills_unset_fields_from_the_default(
    retries: Retries | None, resolved: RetryPolicy
) -> None:
    assert RetryPolicy.resolve(retries, DEFAULT) == resolved


def test_a_default_without_a_cap_stays_uncapped() -> None:
    uncapped = RetryPolicy(limit=3, delay=1.0, backoff="constant", max_delay=None)

    assert RetryPolicy.resolve(Retries(limit=5), uncapped).max_delay is None


@pytest.mark.parametrize(
    ("backoff", "delay", "max_delay", "waits", "factor"),
    [
        ("constant", 2.0, None, [2.0, 2.0, 2.0, 2.0, 2.0], 2.0),
        ("linear", 2.0, None, [2.0, 4.0, 6.0, 8.0, 10.0], 2.0),
        ("exponential", 2.0, None, [2.0, 4.0, 8.0, 16.0, 32.0], 2.0),
        ("exponential", 1.0, 5.0, [1.0, 2.0, 4.0, 5.0, 5.0], 2.0),
        ("linear", 3.0, 7.0, [3.0, 6.0, 7.0, 7.0, 7.0], 2.0),
        ("constant", 10.0, 4.0, [4.0, 4.0, 4.0, 4.0, 4.0], 2.0),
        ("exponential", 0.0, None, [0.0, 0.0, 0.0, 0.0, 0.0], 2.0),
        ("exponential", 1.0, None, [1.0, 3.0, 9.0, 27.0, 81.0], 3.0),
        ("exponential", 2.0, 10.0, [2.0, 3.0, 4.5, 6.75, 10.0], 1.5),
        ("exponential", 5.0, None, [5.0, 5.0, 5.0, 5.0, 5.0], 1.0),
        ("linear", 2.0, None, [2.0, 4.0, 6.0, 8.0, 10.0], 3.0),  # the factor is exponential's
    ],
)
def test_delay_before_retry(
    backoff: Backoff, delay: float, max_delay: float | None, waits: list[float], factor: float
) -> None:
    policy = RetryPolicy(limit=5, delay=delay, backoff=backoff, max_delay=max_delay, factor=factor)

    assert [policy.delay_before_retry(n) for n in range(1, 6)] == waits


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"limit": -1}, r"Retries\(limit=-1\): the limit cannot be negative"),
        ({"delay": "soon"}, r"'soon' is not a duration"),
        ({"delay": -2}, r"duration -2 is negative"),
        ({"max_delay": "forever"}, r"'forever' is not a duration"),
        ({"factor": 0.5}, r"Retries\(factor=0.5\): the factor must be at least 1"),
        ({"factor": float("nan")}, r"Retries\(factor=nan\): the factor must be at least 1"),
        ({"jitter": 1.5}, r"Retries\(jitter=1.5\): the jitter must be from 0 to 1"),
        ({"jitter": -0.1}, r"Retries\(jitter=-0.1\): the jitter must be from 0 to 1"),
    ],
)
def test_an_invalid_policy_is_refused_when_written(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Retries(**fields)


@pytest.mark.parametrize(
    ("draw", "waits"),
    [
        (min, [6.0, 12.0, 24.0, 40.0, 40.0]),  # the lowest multiplier, 1 - jitter
        (max, [10.0, 20.0, 40.0, 40.0, 40.0]),  # the highest, 1 + jitter, still under the cap
    ],
)
def test_jitter_spreads_each_wait_within_its_bounds_under_the_cap(
    draw: Callable[[float, float], float], waits: list[float]
) -> None:
    policy = RetryPolicy(5, 8.0, "exponential", 40.0, jitter=0.25)

    assert [policy.delay_before_retry(n, draw) for n in range(1, 6)] == waits


def test_jitter_draws_at_random_between_its_bounds() -> None:
    policy = RetryPolicy(5, 10.0, "constant", None, jitter=0.5)

    waits = {policy.delay_before_retry(1) for _ in range(50)}

    assert all(5.0 <= wait <= 15.0 for wait in waits) and len(waits) > 1


def test_a_long_run_of_exponential_retries_stays_at_the_cap() -> None:
    policy = RetryPolicy(5000, 1.0, "exponential", 60.0, factor=10)

    assert policy.delay_before_retry(4000) == 60.0


def test_factor_and_jitter_are_read_from_fw_toml(tmp_path: Path) -> None:
    settings = '[defaults.retries]\nfactor = 3\njitter = 0.1\nmax_delay = "1 minute"\n'
    root = write_app(tmp_path, {"one_workflow.py": ONE}, settings)
    toml = root / "fw.toml"
    toml.write_text(
        toml.read_text().replace('name = "one"', 'name = "one"\nretries = { factor = 1.5 }')
    )

    policy = App(root).default_retries("one")

    assert (policy.factor, policy.jitter, policy.max_delay) == (1.5, 0.1, 60.0)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("factor = 0.5", r"fw.toml:4: defaults.retries.factor: .*greater than or equal to 1"),
        ("jitter = 2", r"fw.toml:4: defaults.retries.jitter: .*less than or equal to 1"),
    ],
)
def test_a_bad_factor_or_jitter_in_fw_toml_is_refused(
    tmp_path: Path, line: str, error: str
) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE}, f"[defaults.retries]\n{line}\n")

    with pytest.raises(ConfigError, match=error):
        App(root)
