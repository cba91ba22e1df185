"""framework/runtime/durations.py: durations as users write them, and their short form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from framework import InstanceFailedError
from framework.http import create_app
from framework.runtime.durations import Duration, format_duration, format_relative, parse_duration
from framework.runtime.records import timestamp
from framework.store.base import NewInstance
from tests.runtime.conftest import MakeEnv


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500 ms", 0.5),
        ("500ms", 0.5),
        ("1 millisecond", 0.001),
        ("250 msec", 0.25),
        ("2s", 2.0),
        ("2 sec", 2.0),
        ("3 secs", 3.0),
        ("1 second", 1.0),
        ("10 seconds", 10.0),
        ("1.5 minutes", 90.0),
        ("1 m", 60.0),
        ("2 min", 120.0),
        ("5 mins", 300.0),
        ("1 hour", 3600.0),
        ("24 hours", 86400.0),
        ("2 h", 7200.0),
        ("1 hr", 3600.0),
        ("3 hrs", 10800.0),
        ("7 days", 604800.0),
        ("1 d", 86400.0),
        ("1 week", 604800.0),
        ("2 w", 1209600.0),
        ("2 weeks", 1209600.0),
        ("  10   Seconds  ", 10.0),
        ("1 HOUR", 3600.0),
        ("45", 45.0),
        ("0", 0.0),
        (7, 7.0),
        (0.25, 0.25),
        (0, 0.0),
        (timedelta(minutes=2), 120.0),
        (timedelta(0), 0.0),
    ],
)
def test_parse_duration(value: Duration, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", r"'soon' is not a duration: write a number and a unit, like '500 ms'"),
        ("10 fortnights", r"'10 fortnights' is not a duration"),
        ("", r"'' is not a duration"),
        ("ten seconds", r"'ten seconds' is not a duration"),
        ("-5 seconds", r"'-5 seconds' is not a duration"),
        ("1e3 s", r"'1e3 s' is not a duration"),
        ("5 s 3 ms", r"'5 s 3 ms' is not a duration"),
        (-1, r"duration -1 is negative"),
        (-0.5, r"duration -0.5 is negative"),
        (timedelta(seconds=-1), r"is negative"),
        (True, r"True is not a duration"),
        (False, r"False is not a duration"),
        (float("nan"), r"duration nan is not a number"),
        (float("inf"), r"duration inf is longer than the longest fw takes, 1000 years"),
        (10**20, r"duration 100000000000000000000 is longer than the longest"),
        ("99999999999 weeks", r"'99999999999 weeks' is longer than the longest"),
        (timedelta.max, r"is longer than the longest fw takes"),
    ],
)
def test_parse_duration_refuses(value: Duration, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0 ms"),
        (-1.0, "0 ms"),
        (0.25, "250 ms"),
        (0.9994, "999 ms"),
        (0.9996, "1 s"),
        (2.0, "2 s"),
        (3.00246, "3 s"),
        (4.24, "4.2 s"),
        (9.96, "10 s"),
        (45.0, "45 s"),
        (59.6, "1 min"),
        (90.0, "1 min 30 s"),
        (120.0, "2 min"),
        (185.0, "3 min 5 s"),
        (3599.7, "1 h"),
        (5400.0, "1 h 30 min"),
        (7800.0, "2 h 10 min"),
        (172800.0, "2 d"),
        (8 * 86400 + 3600, "8 d 1 h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["250 ms", "4.2 s", "45 s", "2 min", "2 h", "7 d"])
def test_a_formatted_duration_parses_back(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (-0.4, "now"),
        (-12.0, "12 s ago"),
        (-185.0, "3 min ago"),
        (-7300.0, "2 h ago"),
        (-90000.0, "1 d ago"),
        (45.0, "in 45 s"),
        (3700.0, "in 1 h"),
    ],
)
def test_format_relative(delta: float, text: str) -> None:
    assert format_relative(delta) == text


ODD_WAITS = """
from framework import workflow, WorkflowContext

def one() -> int:
    return 1

@workflow
async def odd_wait(ctx: WorkflowContext[str]) -> int:
    if ctx.params == "sleep-inf":
        await ctx.step.sleep("nap", float("inf"))
    elif ctx.params == "sleep-huge":
        await ctx.step.sleep("nap", 10**20)
    elif ctx.params == "sleep-nan":
        await ctx.step.sleep("nap", float("nan"))
    elif ctx.params == "event-nan":
        await ctx.step.wait_for_event("go", type="go", timeout=float("nan"))
    elif ctx.params == "step-nan":
        await ctx.step.do("one", one, timeout=float("nan"))
    return 0
"""


async def test_a_wait_of_nan_infinite_or_absurd_length_fails_the_instance_clearly(
    make_env: MakeEnv,
) -> None:
    """Before, an infinite sleep stored an infinite wake time (the API then answered 500 for
    the instance), and a NaN sleep or event timeout waited forever."""
    env = await make_env({"odd_wait_workflow.py": ODD_WAITS})
    asgi = create_app(env.app, token="")
    expected = {
        "sleep-inf": "duration inf is longer than the longest fw takes",
        "sleep-huge": "duration 100000000000000000000 is longer than the longest fw takes",
        "sleep-nan": "duration nan is not a number",
        "event-nan": "duration nan is not a number",
        "step-nan": "duration nan is not a number",
    }

    for params, message in expected.items():
        instance = await env.start("odd-wait", params, id=params)
        with pytest.raises(InstanceFailedError) as failed:
            await instance.result(timeout=60)
        assert failed.value.error.name == "ValueError"
        assert failed.value.error.message.startswith(message), failed.value.error.message
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            shown = await client.get(f"/api/instances/{params}")
            page = await client.get(f"/studio/instances/{params}")
        assert shown.status_code == page.status_code == 200
        assert shown.json()["status"] == "errored"


async def test_a_stored_time_past_what_a_datetime_holds_reads_as_the_last_one(
    make_env: MakeEnv,
) -> None:
    """Rows stored before fw refused infinite waits held such times: the API and Studio
    answered 500 (OverflowError) for the instance; now they read as 9999-12-31."""
    env = await make_env({"odd_wait_workflow.py": ODD_WAITS})
    store = await env.app.store()
    version = env.app.version_of("odd-wait")
    await store.create_instances([NewInstance("far", "odd-wait", '"x"', 1e20, version)])
    asgi = create_app(env.app, token="")

    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        shown = await client.get("/api/instances/far")
        page = await client.get("/studio/instances/far")
        listed = await client.get("/studio/instances")

    assert shown.status_code == page.status_code == listed.status_code == 200
    assert shown.json()["created_at"] == "9999-12-31T23:59:59.999999Z"
    assert timestamp(float("inf")) == datetime.max.replace(tzinfo=UTC)
    assert timestamp(float("-inf")) == datetime.min.replace(tzinfo=UTC)
