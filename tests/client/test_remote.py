"""The remote client against a real ``fw serve`` (with a token) on both stores: the typed
handles' methods, their errors, the synchronous facade, and ``result()`` outliving a worker
killed with SIGKILL while it waits."""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from framework import Failure
from framework.client import Client, connect
from framework.client.connection import Connection
from framework.errors import (
    InstanceFailedError,
    InstanceNotFoundError,
    InstanceStateError,
    InstanceTerminatedError,
    InvalidEventPayloadError,
    InvalidInstanceIdError,
    RemoteAuthError,
    RemoteUnavailableError,
    ResultTimeoutError,
    SerializationError,
    UnknownEventTypeError,
    UnknownStepError,
    UnknownWorkflowError,
)
from tests.client.apps import (
    TOKEN,
    RemoteApp,
    free_port,
    serve,
    start_server,
    write_remote_app,
)
from tests.http.servers import run_fw
from tests.runtime.processes import kill, start_worker, wait_until_started


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[RemoteApp]:
    """The test app served with a worker, on each store."""
    root = write_remote_app(tmp_path)
    with serve(root, database_url, tmp_path / "serve.log") as remote:
        yield remote


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def typed_client(remote: RemoteApp, token: str | None = TOKEN) -> Client[Any]:
    """A client from the app's generated ``connect``."""
    generated = importlib.import_module(f"{remote.package}._generated")
    client: Client[Any] = generated.connect(remote.url, token=token)
    return client


async def test_create_status_result_get_list_and_steps(served: RemoteApp) -> None:
    greeting = __import__(f"{served.package}.workflows.greet_workflow", fromlist=["x"])
    async with typed_client(served) as client:
        handle = client.workflows.get("greet")

        first = await handle.create({"name": "ada", "times": 2}, id="g-1")
        again = await handle.create(greeting.Greeting(name="ada", times=2), id="g-1")
        other = await handle.create(greeting.Greeting(name="bob"), id="g-2")
        output = await first.result(timeout=30)
        status = await first.status()
        steps = await first.steps()
        logs = await first.logs()
        page = await handle.list(limit=1)
        rest = await handle.list(cursor=page.next_cursor)
        found = await handle.get("g-2")
        by_id = await client.instance("g-2")
        other_output = other.sync.result(timeout=30)  # the facade, beside the async calls

    assert (first.created, first.params_match) == (True, True)
    assert (again.id, again.created, again.params_match) == ("g-1", False, True)
    assert output == greeting.Greeted(text="hello ada hello ada", count=2)
    assert isinstance(status.output, greeting.Greeted)
    assert (status.status, status.workflow, status.params) == (
        "complete",
        "greet",
        {"name": "ada", "times": 2},
    )
    assert [(s.name, s.kind, s.status, s.output) for s in steps] == [
        ("say", "do", "complete", "hello ada hello ada")
    ]
    assert [(line.level, line.message, line.fields) for line in logs] == [
        ("info", "greeted", {"name": "ada"})
    ]
    assert [i.id for i in page.instances + rest.instances] == ["g-2", "g-1"]
    assert rest.next_cursor is None
    assert (found.id, found.workflow, by_id.workflow) == ("g-2", "greet", "greet")
    assert other_output == greeting.Greeted(text="hello bob", count=1)


async def test_errors_are_those_of_local_handles_and_auth_fails_clearly(served: RemoteApp) -> None:
    async with typed_client(served) as client, connect(served.url, token=TOKEN) as untyped:
        greet = client.workflows.get("greet")

        with pytest.raises(pydantic.ValidationError) as invalid:
            await greet.create({"times": "many"})
        with pytest.raises(UnknownWorkflowError) as unknown_here:
            client.workflows.get("gret")
        with pytest.raises(UnknownWorkflowError) as unknown_there:
            await untyped.workflows.get("gret").create({})
        with pytest.raises(InvalidInstanceIdError):
            await greet.create({"name": "ada"}, id="no spaces")
        with pytest.raises(SerializationError, match="NaN or infinity"):
            await greet.create({"name": "ada", "times": math.nan})
        with pytest.raises(InstanceNotFoundError, match="no instance with id 'g-404'"):
            await greet.get("g-404")
        approve = await client.workflows.get("approve").create(None, id="a-1")
        with pytest.raises(InstanceNotFoundError):
            await greet.get("a-1")  # an instance of another workflow
        await until_status(approve, "waiting")
        with pytest.raises(UnknownStepError) as unknown_step:
            await approve.restart(from_step="nope")
    async with httpx.AsyncClient(base_url=served.url, headers=BEARER) as raw:
        waits = [
            (await raw.get("/api/instances/a-1", params={"wait": wait})).json()["error"]
            for wait in ("61", "-1", "soon", "1.5", "007")
        ]

    assert [(e["loc"], e["input"]) for e in invalid.value.errors()] == [
        (("name",), None),
        (("times",), "many"),
    ]
    assert invalid.value.errors()[0]["type"] == "missing"
    assert invalid.value.title == "greet"
    assert unknown_here.value.close_matches == ["greet"]
    assert unknown_there.value.close_matches == ["greet"]
    assert "did you mean 'greet'?" in str(unknown_there.value)
    assert sorted(unknown_step.value.steps) == ["approval", "prepare"]
    assert waits == ["invalid_wait"] * 5
    await check_token_and_address_errors(served)


async def check_token_and_address_errors(served: RemoteApp) -> None:
    """A wrong or missing token and an address with no server are clear errors."""
    async with typed_client(served, token="wrong-token") as wrong:
        with pytest.raises(RemoteAuthError, match="refused the token") as refused:
            await wrong.workflows.get("greet").create({"name": "ada"})
    async with typed_client(served, token=None) as missing:
        with pytest.raises(RemoteAuthError, match="wants a token"):
            await missing.instance("g-1")
    async with connect("http://127.0.0.1:9", token=TOKEN) as nowhere:
        with pytest.raises(RemoteUnavailableError, match="cannot reach the fw API"):
            await nowhere.instance("g-1")

    assert (refused.value.status, refused.value.kind) == (401, "unauthorized")


async def test_events_controls_and_ends(served: RemoteApp) -> None:
    async with typed_client(served) as client:
        approve = client.workflows.get("approve")
        waiting = await approve.create(None, id="a-1")
        with pytest.raises(ResultTimeoutError) as timed_out:
            await waiting.result(timeout=1)
        waits = (await waiting.status()).waiting_for
        with pytest.raises(InstanceStateError, match="waits for an event, not for a retry"):
            await waiting.retry_now()
        await waiting.pause()
        paused = (await waiting.status()).status
        with pytest.raises(InstanceStateError, match="paused"):
            await waiting.pause()
        await waiting.resume()
        with pytest.raises(UnknownEventTypeError) as unknown_type:
            await waiting.send_event("aproval", {"by": "grace"})
        with pytest.raises(InvalidEventPayloadError) as bad_payload:
            await waiting.send_event("approval", {"who": "grace"})
        await waiting.send_event("approval", {"by": "grace"})
        approved = await waiting.result(timeout=30)
        with pytest.raises(InstanceStateError):
            await waiting.terminate()
        await waiting.restart(from_step="apply")
        rerun = await waiting.result(timeout=30)

        stopped = await approve.create(None, id="a-2")
        await stopped.terminate()
        with pytest.raises(InstanceTerminatedError):
            await stopped.result(timeout=30)
        flaky = await client.workflows.get("flaky").create(None, id="r-1")
        await until_status(flaky, "waiting")  # its retry is an hour away
        with pytest.raises(InstanceStateError):
            await waiting.retry_now()  # it waits for no retry
        await flaky.retry_now()
        retried = await flaky.result(timeout=30)
        failing = await client.workflows.get("fail").create(None, id="f-1")
        with pytest.raises(InstanceFailedError, match="the warehouse is on fire") as failed:
            await failing.result(timeout=30)
        failure = await failing.outcome(timeout=30)
        stopped_outcome = await stopped.outcome(timeout=30)
        success = await flaky.outcome(timeout=30)

    assert timed_out.value.status == "waiting"
    assert "event of type 'approval'" in str(timed_out.value.reason)
    assert (paused, approved, rerun) == ("paused", "grace", "grace")
    assert [(w.kind, w.event_type) for w in waits] == [("event", "approval")]
    assert (unknown_type.value.close_matches, unknown_type.value.known) == (
        ["approval"],
        ["approval"],
    )
    assert "did you mean 'approval'?" in str(unknown_type.value)
    assert [(e["loc"], e["type"]) for e in bad_payload.value.errors] == [(["by"], "missing")]
    assert failed.value.error.step == "explode"
    assert retried == 2
    assert isinstance(failure, Failure) and not failure.ok
    assert (failure.status, failure.failed_step, failure.attempts) == ("errored", "explode", 1)
    assert failure.error.message == "the warehouse is on fire"
    assert [(s.name, s.status) for s in failure.steps] == [("explode", "errored")]
    assert isinstance(stopped_outcome, Failure) and stopped_outcome.status == "terminated"
    assert success.ok is True and success.output == 2


def test_the_sync_facade(served: RemoteApp) -> None:
    with typed_client(served) as client:
        greet = client.workflows.get("greet").sync
        instance = greet.create({"name": "lin"}, id="s-1")
        output = instance.result(timeout=30)
        status = instance.status()
        listed = greet.list()
        waiting = client.workflows.get("approve").sync.create(None, id="s-2")
        waiting.send_event("approval", {"by": "kay"})
        approved = waiting.result(timeout=30)
        outcome = instance.outcome(timeout=30)
        with pytest.raises(InstanceNotFoundError):
            greet.get("s-404")

    assert (output.text, status.status, [i.id for i in listed.instances]) == (
        "hello lin",
        "complete",
        ["s-1"],
    )
    assert approved == "kay"
    assert outcome.ok is True and outcome.output.text == "hello lin"


SCRIPT = """
import sys
from {package}._generated import connect

with connect(sys.argv[1], token=sys.argv[2]) as client:
    instance = client.workflows.get("greet").sync.create({{"name": "script"}})
    output = instance.result(timeout=30)
print(type(output).__name__, output.text)
print(sorted(m for m in sys.modules if m.startswith(LOWER)))
"""
LOWER = (
    "framework.store.sqlite",
    "framework.store.postgres",
    "psycopg",
    "sqlite3",
    "framework.runtime.app",
    "framework.runtime.worker",
)


def test_a_script_needs_only_the_generated_connect_and_exits(
    served: RemoteApp, tmp_path: Path
) -> None:
    script = tmp_path / "script.py"
    script.write_text(f"LOWER = {LOWER!r}\n" + SCRIPT.format(package=served.package))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FW_", "PYTHON"))}
    env["PYTHONPATH"] = f"{served.root.parent}{os.pathsep}{Path.cwd()}"

    done = subprocess.run(
        [sys.executable, str(script), served.url, TOKEN],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Greeted hello script", "[]"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_result_outlives_a_worker_killed_while_the_client_waits(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_remote_app(tmp_path)
    marks = tmp_path / "marks"
    env = {"FW_DATABASE_URL": database_url, "FW_CLIENT_MARKS": str(marks)}
    requests = count_requests(monkeypatch)
    with serve(root, database_url, tmp_path / "serve.log", worker=False) as remote:
        async with typed_client(remote) as client:
            instance = await client.workflows.get("slow").create(21, id="k-1")
            with pytest.raises(ResultTimeoutError) as unclaimed:
                await instance.result(timeout=2)
            polls_while_waiting = len(requests)
            first = start_worker(root, tmp_path / "first.log", env)
            try:
                wait_until_started(first, tmp_path / "first.log")
                waiting = asyncio.create_task(instance.result(timeout=60))
                await until(lambda: marks.exists() and marks.read_text().endswith("\n"))  # written
                kill(first)
                second = start_worker(root, tmp_path / "second.log", env)
                try:
                    output = await waiting
                finally:
                    kill(second)
            finally:
                if first.poll() is None:
                    kill(first)

    assert "is a worker running" in str(unclaimed.value.reason)
    assert polls_while_waiting == 2  # create, then one long poll of 2 seconds
    assert output == 42
    assert len(set(marks.read_text().split())) == 2  # the step ran again in the second worker


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_result_outlives_a_restart_of_the_server(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_remote_app(tmp_path)
    requests = count_requests(monkeypatch)
    port = free_port()
    server = start_server(root, database_url, port, tmp_path / "first.log")
    url = f"http://127.0.0.1:{port}"
    try:
        async with typed_client(RemoteApp(root, url)) as client:
            instance = await client.workflows.get("approve").create(None, id="r-1")
            await until_status(instance, "waiting")
            sent = len(requests)
            waiting = asyncio.create_task(instance.result(timeout=60))
            await until(lambda: len(requests) > sent)  # the long poll is on its way
            kill(server)
            server = start_server(root, database_url, port, tmp_path / "second.log")
            await instance.send_event("approval", {"by": "after the restart"})
            output = await waiting
    finally:
        kill(server)

    assert output == "after the restart"


def count_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests every connection sends from now on (they still go out)."""
    sent: list[str] = []
    original = Connection.request

    async def counted(self: Connection, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"{method} {path}")
        return await original(self, method, path, *args, **kwargs)

    monkeypatch.setattr(Connection, "request", counted)
    return sent


async def until(condition: Any, timeout: float = 30) -> None:
    """Wait until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def until_status(instance: Any, status: str, timeout: float = 30) -> None:
    """Wait until a remote instance has ``status``."""
    deadline = time.monotonic() + timeout
    while (await instance.status()).status != status:
        assert time.monotonic() < deadline, f"{instance.id} never became {status}"
        await asyncio.sleep(0.05)


def test_the_example_apps_remote_script(tmp_path: Path, sqlite_url: str) -> None:
    example = Path(__file__).parents[2] / "example_app"
    env = {"FW_DATABASE_URL": sqlite_url, "FW_API_TOKEN": TOKEN}
    with run_fw(["serve", "--worker"], example, tmp_path / "serve.log", env) as served:
        done = subprocess.run(
            [sys.executable, "-m", "example_app.remote", served.url],
            cwd=example.parent,
            env={**os.environ, "FW_API_TOKEN": TOKEN},
            capture_output=True,
            text=True,
            timeout=90,
        )

    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"remote-\w+: receipt \S+, shipped True\n", done.stdout)
