"""Times as people read them: an instance's end and total duration in the API, the CLI and
Studio; Studio's times say how long ago they were, with the exact time on hover; every
duration is written one way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.http.conftest import Served

TIME = re.compile(
    r'<time datetime="([^"]+)" title="(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC" data-relative>'
    r"([^<]+)</time>"
)
DURATION = re.compile(r"^(\d+ ms|\d+(\.\d)? s|\d+ min( \d+ s)?|\d+ h( \d+ min)?|\d+ d( \d+ h)?)$")


async def test_the_api_says_when_an_instance_ended_and_how_long_it_took(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "e", "params": 1})
    await served.result("e", "echo")
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")

    ended = (await served.client.get("/api/instances/e")).json()
    going = (await served.client.get("/api/instances/ap")).json()
    listed = (await served.client.get("/api/instances")).json()["instances"]

    assert ended["ended_at"] == ended["updated_at"]
    took = datetime.fromisoformat(ended["ended_at"]) - datetime.fromisoformat(ended["created_at"])
    assert ended["duration"] == took.total_seconds() >= 0
    assert (going["ended_at"], going["duration"]) == (None, None)
    assert {row["id"]: row["ended_at"] is not None for row in listed} == {"e": True, "ap": False}


async def test_studio_shows_relative_times_with_the_exact_time_and_durations(
    served: Served,
) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "e", "params": 1})
    await served.result("e", "echo")
    status = (await served.client.get("/api/instances/e")).json()

    page = (await served.client.get("/studio/instances/e")).text
    listing = (await served.client.get("/studio/instances")).text

    times = TIME.findall(page)
    assert times, page
    for iso, exact, words in times:
        assert exact == datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
        assert re.fullmatch(r"now|\d+ (s|min|h|d) ago", words), words
    assert (status["created_at"].replace("Z", "+00:00"),) in {(iso,) for iso, _, _ in times}
    duration = re.search(r'<dd id="instance-duration">([^<]+)</dd>', page)
    assert duration and DURATION.match(duration.group(1)), page
    assert "<dt>Ended</dt>" in page and "ended <time" in page
    row = listing.split('data-instance="e"')[1].split("</tr>")[0]
    assert len(TIME.findall(row)) == 2
    cells = re.findall(r'<td class="nowrap">([^<]*)</td>', row)
    assert any(DURATION.match(cell) for cell in cells), row


def test_the_cli_shows_when_an_instance_ended_and_after_how_long(
    tmp_path: Path, database_url: str
) -> None:
    from tests.cli.test_runtime_commands import app_on, fw

    app_dir = app_on(tmp_path, database_url)
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env["PYTHONPATH"] = f"{app_dir.parent}{os.pathsep}{Path.cwd()}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "framework",
            "start",
            "orders",
            "--params",
            '{"order_id": "o-1", "amount": 3}',
            "--id",
            "o-1",
            "--app",
            str(app_dir),
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=30,
    )
    fw(app_dir, "instance", "terminate", "o-1")

    shown = fw(app_dir, "instance", "show", "o-1").stdout

    line = shown.splitlines()[1]
    assert re.fullmatch(
        r"created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((now|\d+ s ago)\), ended "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((now|\d+ s ago)\) after (\d+ ms|\d+(\.\d)? s)",
        line,
    ), shown
