"""Token hygiene: a logout ends the session (in every server process sharing the store), wrong
tokens are limited per client (429 with ``Retry-After``), API bodies must be declared JSON
(415), a token too short to be safe is refused beyond loopback, and the read-only token
(``FW_API_READ_TOKEN``) reads everything and changes nothing, through the API and Studio."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from framework.http import create_app
from framework.http.api import API_ROUTES
from framework.testing import WorkflowTestEnv, workflow_test_env
from tests.http.conftest import write_test_app
from tests.http.servers import run_fw
from tests.http.test_studio import csrf_of

TOKEN = "correct-horse-battery-staple-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
FW = [sys.executable, "-m", "framework"]


ClientMaker = Callable[..., Awaitable[httpx.AsyncClient]]
"""``await clients(asgi, address)``: an httpx client of ``asgi`` calling from ``address``."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def env(tmp_path: Path, database_url: str) -> AsyncIterator[WorkflowTestEnv]:
    async with workflow_test_env(write_test_app(tmp_path), database=database_url) as test_env:
        yield test_env


@pytest.fixture
async def clients(env: WorkflowTestEnv) -> AsyncIterator[ClientMaker]:
    async with AsyncExitStack() as stack:

        async def make(asgi: Starlette, address: str = "127.0.0.1") -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=asgi, client=(address, 5000))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787")
            )

        yield make


async def log_in(client: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    csrf = await csrf_of(client, "/studio/login")
    return await client.post(
        "/studio/login", data={"csrf_token": csrf, "token": token, "next": "/studio"}
    )


async def test_a_logout_ends_the_session_for_good(
    env: WorkflowTestEnv, clients: ClientMaker
) -> None:
    client = await clients(create_app(env.app, token=TOKEN))
    other = await clients(create_app(env.app, token=TOKEN))

    assert (await log_in(client)).status_code == 303
    assert (await log_in(other)).status_code == 303
    cookie = client.cookies["fw_session"]
    assert TOKEN not in cookie
    assert (await client.get("/studio")).status_code == 200
    csrf = await csrf_of(client, "/studio")
    out = await client.post("/studio/logout", data={"csrf_token": csrf})
    replayed = {"Cookie": f"fw_session={cookie}"}
    page = await client.get("/studio", headers=replayed)
    api = await client.get("/api/workflows", headers=replayed)

    assert out.status_code == 303
    assert 'fw_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    assert page.status_code == 303 and "/studio/login" in page.headers["location"]
    assert api.status_code == 401
    assert (await other.get("/studio")).status_code == 200  # other sessions live on


async def test_a_forged_or_stale_cookie_is_no_login(
    env: WorkflowTestEnv, clients: ClientMaker
) -> None:
    client = await clients(create_app(env.app, token=TOKEN))
    await log_in(client)
    cookie = client.cookies["fw_session"]
    secret, _, signature = cookie.partition(".")
    forged = f"{secret}.{'0' * 64}"
    unknown = f"{'A' * 43}.{signature}"
    client.cookies.clear()
    rotated = await clients(create_app(env.app, token=TOKEN + "-rotated"))

    for value in (forged, unknown, secret, "x" * 200):
        response = await client.get("/studio", headers={"Cookie": f"fw_session={value}"})
        assert response.status_code == 303, value
    changed = await rotated.get("/studio", headers={"Cookie": f"fw_session={cookie}"})
    assert changed.status_code == 303  # a new token logs everyone out


async def test_sessions_are_shared_by_server_processes(tmp_path: Path, database_url: str) -> None:
    root = write_test_app(tmp_path)
    env = {"FW_API_TOKEN": TOKEN, "FW_DATABASE_URL": database_url}
    with (
        run_fw(["serve"], root, tmp_path / "one.log", env) as one,
        run_fw(["serve"], root, tmp_path / "two.log", env) as two,
    ):
        with httpx.Client(base_url=one.url, timeout=10) as first:
            csrf = _csrf(first, "/studio/login")
            first.post("/studio/login", data={"csrf_token": csrf, "token": TOKEN})
            cookie = first.cookies["fw_session"]
        with httpx.Client(base_url=two.url, timeout=10) as second:
            second.cookies.set("fw_session", cookie)
            seen_by_two = second.get("/studio")
            csrf = _csrf(second, "/studio")
            second.post("/studio/logout", data={"csrf_token": csrf})
        with httpx.Client(base_url=one.url, timeout=10) as again:
            after = again.get("/studio", headers={"Cookie": f"fw_session={cookie}"})
        assert one.stop() == 0 and two.stop() == 0

    assert seen_by_two.status_code == 200
    assert after.status_code == 303  # logged out in process two, refused by process one


def _csrf(client: httpx.Client, path: str) -> str:
    import re

    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get(path).text)
    assert found
    return found.group(1)


async def test_wrong_bearer_tokens_are_limited_per_client(
    env: WorkflowTestEnv, clients: ClientMaker
) -> None:
    asgi = create_app(env.app, token=TOKEN)
    clock = FakeClock()
    asgi.state.fw.attempts.clock = clock
    attacker = await clients(asgi, "203.0.113.7")
    neighbour = await clients(asgi, "203.0.113.8")

    wrong = [
        await attacker.get("/api/workflows", headers={"Authorization": f"Bearer guess-{n}"})
        for n in range(10)
    ]
    limited = await attacker.get("/api/workflows", headers={"Authorization": "Bearer guess-10"})
    right_but_limited = await attacker.get("/api/workflows", headers=BEARER)
    anonymous = await attacker.get("/api/workflows")
    other_client = await neighbour.get("/api/workflows", headers=BEARER)
    clock.now += int(limited.headers["retry-after"])
    later = await attacker.get("/api/workflows", headers=BEARER)

    assert {r.status_code for r in wrong} == {401}
    assert limited.status_code == 429
    assert limited.json()["error"] == "too_many_attempts"
    assert "try again in 6 seconds" in limited.json()["message"]
    assert limited.headers["retry-after"] == "6"
    assert right_but_limited.status_code == 429  # not even checked while limited
    assert anonymous.status_code == 401  # no token sent: not an attempt
    assert other_client.status_code == 200
    assert later.status_code == 200


async def test_wrong_logins_are_limited_per_client(
    env: WorkflowTestEnv, clients: ClientMaker
) -> None:
    asgi = create_app(env.app, token=TOKEN)
    client = await clients(asgi, "198.51.100.1")

    answers = [(await log_in(client, f"guess-{n}")).status_code for n in range(10)]
    limited = await log_in(client)

    assert answers == [401] * 10
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "6"
    assert "Too many wrong tokens from your address; try again in 6 seconds." in limited.text
    assert "fw_session" not in limited.headers.get("set-cookie", "")


async def test_api_bodies_must_be_declared_json(env: WorkflowTestEnv, clients: ClientMaker) -> None:
    client = await clients(create_app(env.app, token=""))
    body = b'{"id": "e1", "params": 1}'

    refused = [
        await client.post("/api/workflows/echo/instances", content=body, headers=headers)
        for headers in (
            {},
            {"Content-Type": "text/plain"},
            {"Content-Type": "application/x-www-form-urlencoded"},
            {"Content-Type": "application/jsonx"},
        )
    ]
    form = await client.post("/api/workflows/echo/instances", data={"id": "e1", "params": "1"})
    with_charset = await client.post(
        "/api/workflows/echo/instances",
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    await env.app.instance_handle("echo", "e1").result(timeout=30)
    no_body = await client.post("/api/instances/e1/restart", headers={"Content-Type": "text/plain"})

    for response in (*refused, form):
        assert response.status_code == 415, response.text
        assert response.json()["error"] == "unsupported_media_type"
        assert "Content-Type: application/json" in response.json()["message"]
    assert with_charset.status_code == 201
    assert no_body.status_code == 200


async def test_api_bodies_must_be_utf_8(env: WorkflowTestEnv, clients: ClientMaker) -> None:
    client = await clients(create_app(env.app, token=""))

    async def start(instance_id: str, content_type: str) -> httpx.Response:
        body = f'{{"id": "{instance_id}", "params": "é"}}'.encode()
        return await client.post(
            "/api/workflows/echo/instances", content=body, headers={"Content-Type": content_type}
        )

    refused = [
        await start("e1", f"application/json; {charset}")
        for charset in (
            "charset=utf-16",
            "charset=latin-1",
            'charset="ISO-8859-1"',
            "charset=utf-8; charset=utf-16",
        )
    ]
    accepted = [
        await start("e2", "application/json"),
        await start("e3", "application/json; charset=utf-8"),
        await start("e4", 'application/json;CharSet="UTF-8"'),
    ]

    for response in refused:
        assert response.status_code == 415, response.text
        assert response.json()["error"] == "unsupported_media_type"
        assert "UTF-8" in response.json()["message"]
    assert [response.status_code for response in accepted] == [201, 201, 201]
    assert (await client.get("/api/instances/e1")).status_code == 404
    assert (await client.get("/api/instances/e4")).json()["params"] == "é"


def test_a_short_token_is_refused_beyond_loopback(tmp_path: Path) -> None:
    root = write_test_app(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path.cwd()}"}
    env["FW_API_TOKEN"] = "s3cret"

    for command in ("serve", "dev"):
        done = subprocess.run(
            [*FW, command, "--app", str(root), "--host", "0.0.0.0", "--port", "0"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 1, done
        assert "6-character FW_API_TOKEN" in done.stderr
        assert "at least 32 characters" in done.stderr and "openssl rand -hex 32" in done.stderr


READ_TOKEN = "read-only-token-abcdefghijklmnopqrstuvwxyz-0123"
READER = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITER = {"Authorization": f"Bearer {TOKEN}"}


async def served_with_both_tokens(env: WorkflowTestEnv, clients: ClientMaker) -> httpx.AsyncClient:
    client = await clients(create_app(env.app, token=TOKEN, read_token=READ_TOKEN))
    started = await client.post(
        "/api/workflows/approval/instances", json={"id": "ap", "params": {}}, headers=WRITER
    )
    assert started.status_code == 201
    await env.wait_for(env.app.instance_handle("approval", "ap"), "waiting")
    return client


async def test_the_read_token_reads_every_route_and_changes_nothing(
    env: WorkflowTestEnv, clients: ClientMaker
) -> None:
    client = await served_with_both_tokens(env, clients)
    before = (await client.get("/api/instances/ap", headers=WRITER)).json()

    for route in API_ROUTES:
        path = route.path.format(name="approval", id="ap")
        if route.method == "GET":
            response = await client.get(path, headers=READER)
            assert response.status_code != 401 and response.status_code != 403, (path, response.text)
            continue
        response = await client.post(path, json={"type": "approval"}, headers=READER)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"] == "read_only"
        assert "FW_API_TOKEN" in response.json()["message"]

    after = (await client.get("/api/instances/ap", headers=WRITER)).json()
    assert (after["status"], after["updated_at"]) == (before["status"], before["updated_at"])
    listed = (await client.get("/api/instances", headers=READER)).json()["instances"]
    assert [i["id"] for i in listed] == ["ap"]
    assert (await client.get("/openapi.json", headers=READER)).status_code == 200
    paused = await client.post("/api/instances/ap/pause", headers=WRITER)
    assert paused.status_code == 200  # the full token keeps full access


async def test_a_read_only_studio_login_shows_no_forms_and_refuses_posts(
    env: WorkflowTestEnv, clients: ClientMaker
) -> None:
    reader = await served_with_both_tokens(env, clients)
    writer = await clients(create_app(env.app, token=TOKEN, read_token=READ_TOKEN))
    assert (await log_in(reader, READ_TOKEN)).status_code == 303
    assert (await log_in(writer, TOKEN)).status_code == 303

    workflow = (await reader.get("/studio/workflows/approval")).text
    instance = (await reader.get("/studio/instances/ap")).text
    full = (await writer.get("/studio/instances/ap")).text
    csrf = await csrf_of(reader, "/studio/instances/ap")  # the logout form's
    posts = {
        "/studio/workflows/approval/start": {"id": "sneaky", "p.params": "{}"},
        "/studio/instances/ap/pause": {},
        "/studio/instances/ap/terminate": {},
        "/studio/instances/ap/restart": {"from_step": ""},
        "/studio/instances/ap/event": {"type": "approval", "payload": "{}"},
    }
    refused = {
        path: await reader.post(path, data={"csrf_token": csrf, **data})
        for path, data in posts.items()
    }

    assert 'id="start-form"' not in workflow and 'id="read-only-note"' in workflow
    assert 'id="instance-controls"' not in instance and "Send an event" not in instance
    assert 'id="read-only-badge"' in instance and "Log out" in instance
    assert 'id="instance-controls"' in full and 'id="read-only-badge"' not in full
    for path, response in refused.items():
        assert response.status_code == 403, (path, response.text)
        assert "can read but not change anything" in response.text
    status = (await reader.get("/api/instances/ap")).json()  # the cookie reads the API too
    assert status["status"] == "waiting"
    assert (await reader.get("/api/instances/sneaky")).status_code == 404
    out = await reader.post("/studio/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert (await reader.get("/studio")).status_code == 303  # logged out


async def test_a_new_read_token_logs_read_only_sessions_out(
    env: WorkflowTestEnv, clients: ClientMaker
) -> None:
    reader = await served_with_both_tokens(env, clients)
    await log_in(reader, READ_TOKEN)
    cookie = {"Cookie": f"fw_session={reader.cookies['fw_session']}"}
    rotated = await clients(create_app(env.app, token=TOKEN, read_token=READ_TOKEN + "-new"))
    same = await clients(create_app(env.app, token=TOKEN, read_token=READ_TOKEN))

    assert (await same.get("/studio", headers=cookie)).status_code == 200
    assert (await rotated.get("/studio", headers=cookie)).status_code == 303
    assert (await rotated.get("/api/workflows", headers=READER)).status_code == 401
