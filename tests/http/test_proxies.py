"""Forwarding headers (``X-Forwarded-For``, ``-Proto``, ``-Host``) are read only from the
reverse proxies named (``--forwarded-allow-ips``, ``FW_FORWARDED_ALLOW_IPS``,
``create_app(forwarded_allow_ips=...)``); by default from no one, not even 127.0.0.1, so a
client cannot choose its address (and escape the limit on wrong tokens) or its host (and pass
the cross-site check)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from framework.http import create_app
from framework.http.proxies import trusted_proxies
from framework.testing import WorkflowTestEnv, workflow_test_env
from tests.http.conftest import write_test_app
from tests.http.servers import run_fw

TOKEN = "a-long-random-token-of-40-characters-xyz"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer a-guess"}
EVIL_WRITE = {**BEARER, "Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"}


def use_up_wrong_tokens(client: httpx.Client, headers: dict[str, str] | None = None) -> None:
    """Send the 10 wrong tokens a client may send before it is limited."""
    for _ in range(10):
        assert client.get("/api/workflows", headers={**WRONG, **(headers or {})}).status_code == 401


def cookie_of(response: httpx.Response, name: str) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}="))


def test_fw_serve_trusts_no_forwarding_header_by_default(tmp_path: Path) -> None:
    root = write_test_app(tmp_path)
    with (
        run_fw(["serve"], root, tmp_path / "serve.log", {"FW_API_TOKEN": TOKEN}) as served,
        httpx.Client(base_url=served.url, timeout=10) as client,
    ):
        use_up_wrong_tokens(client)
        limited = client.get("/api/workflows", headers=WRONG)
        spoofed = client.get("/api/workflows", headers={**WRONG, "X-Forwarded-For": "10.1.2.3"})
        rotated = [
            client.get("/api/workflows", headers={**BEARER, "X-Forwarded-For": f"10.9.9.{n}"})
            for n in range(3)
        ]
        cross_site = client.post("/api/instances/x/pause", headers=EVIL_WRITE)
        https = client.get("/studio/login", headers={"X-Forwarded-Proto": "https"})

    assert limited.status_code == 429
    assert spoofed.status_code == 429  # the header names no other client
    assert {r.status_code for r in rotated} == {429}
    assert cross_site.status_code == 403 and cross_site.json()["error"] == "cross_site"
    assert "secure" not in cookie_of(https, "fw_csrf").lower()  # still plain http


def test_fw_serve_reads_forwarding_headers_from_the_proxies_named(tmp_path: Path) -> None:
    root = write_test_app(tmp_path)
    command = ["serve", "--forwarded-allow-ips", "127.0.0.1"]
    alice, bob = {"X-Forwarded-For": "10.1.2.3"}, {"X-Forwarded-For": "10.1.2.4"}
    site = {"Origin": "https://fw.example", "X-Forwarded-Host": "fw.example"}
    with (
        run_fw(command, root, tmp_path / "serve.log", {"FW_API_TOKEN": TOKEN}) as served,
        httpx.Client(base_url=served.url, timeout=10) as client,
    ):
        use_up_wrong_tokens(client, alice)
        alice_limited = client.get("/api/workflows", headers={**BEARER, **alice})
        bob_wrong = client.get("/api/workflows", headers={**WRONG, **bob})
        proxy_itself = client.get("/api/workflows", headers=BEARER)
        forwarded_site = client.post("/api/instances/x/pause", headers={**BEARER, **site})
        https = client.get("/studio/login", headers={"X-Forwarded-Proto": "https"})

    assert alice_limited.status_code == 429  # counted under the address the proxy names
    assert bob_wrong.status_code == 401  # another client: its own count
    assert proxy_itself.status_code == 200
    assert forwarded_site.status_code == 404  # same site, as the proxy says: on to the endpoint
    assert "secure" in cookie_of(https, "fw_csrf").lower()


def test_fw_dev_follows_fw_forwarded_allow_ips(tmp_path: Path) -> None:
    root = write_test_app(tmp_path)
    env = {"FW_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    origin = {"Origin": "https://fw.example"}
    with (
        run_fw(["dev"], root, tmp_path / "dev.log", env) as served,
        httpx.Client(base_url=served.url, timeout=10) as client,
    ):
        unsaid = client.post("/api/instances/x/pause", headers=origin)
        said = client.post(
            "/api/instances/x/pause", headers={**origin, "X-Forwarded-Host": "fw.example"}
        )

    assert unsaid.status_code == 403
    assert said.status_code == 404


@pytest.fixture
async def env(tmp_path: Path, database_url: str) -> AsyncIterator[WorkflowTestEnv]:
    async with workflow_test_env(write_test_app(tmp_path), database=database_url) as test_env:
        yield test_env


def client_of(env: WorkflowTestEnv, address: str, **options: Any) -> httpx.AsyncClient:
    """An httpx client of ``create_app(**options)``, connecting from ``address``."""
    asgi = create_app(env.app, token=TOKEN, **options)
    transport = httpx.ASGITransport(app=asgi, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787")


@pytest.mark.parametrize("allow_ips", ["10.0.0.5", "192.0.2.1, 10.0.0.0/8", ["10.0.0.5"]])
async def test_only_the_proxies_named_are_believed(
    env: WorkflowTestEnv, allow_ips: str | list[str]
) -> None:
    async with (
        client_of(env, "10.0.0.5", forwarded_allow_ips=allow_ips) as proxy,
        client_of(env, "203.0.113.9", forwarded_allow_ips=allow_ips) as stranger,
    ):
        from_proxy = await proxy.post("/api/instances/x/pause", headers=EVIL_WRITE)
        from_stranger = await stranger.post("/api/instances/x/pause", headers=EVIL_WRITE)
        who = {"X-Forwarded-For": "198.51.100.1"}
        for _ in range(10):
            await stranger.get("/api/workflows", headers={**WRONG, **who})
        stranger_limited = await stranger.get("/api/workflows", headers={**BEARER, **who})
        proxy_unlimited = await proxy.get("/api/workflows", headers=BEARER)

    assert from_proxy.status_code == 404  # the proxy says the page was served as evil.example
    assert from_stranger.status_code == 403 and from_stranger.json()["error"] == "cross_site"
    assert stranger_limited.status_code == 429  # its own address, whatever it claims
    assert proxy_unlimited.status_code == 200


async def test_by_default_no_address_is_a_proxy(env: WorkflowTestEnv) -> None:
    async with client_of(env, "127.0.0.1") as local:
        cross_site = await local.post("/api/instances/x/pause", headers=EVIL_WRITE)

    assert cross_site.status_code == 403


async def test_the_last_forwarded_host_is_the_proxys(env: WorkflowTestEnv) -> None:
    # A proxy that appends to X-Forwarded-Host leaves the client's own value first.
    appended = {**BEARER, "X-Forwarded-Host": "evil.example, fw.example"}
    async with client_of(env, "10.0.0.5", forwarded_allow_ips="10.0.0.5") as proxy:
        evil = await proxy.post(
            "/api/instances/x/pause", headers={**appended, "Origin": "http://evil.example"}
        )
        ours = await proxy.post(
            "/api/instances/x/pause", headers={**appended, "Origin": "https://fw.example"}
        )

    assert evil.status_code == 403
    assert ours.status_code == 404


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (None, None),
        ("", None),
        (" , ", None),
        ("10.0.0.5", ("10.0.0.5",)),
        (" 10.0.0.5 ,10.1.0.0/16 ", ("10.0.0.5", "10.1.0.0/16")),
        (["*"], ("*",)),
    ],
)
def test_trusted_proxies_reads_a_list_or_commas(
    given: str | list[str] | None, named: tuple[str, ...] | None
) -> None:
    assert trusted_proxies(given) == named
