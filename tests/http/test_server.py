"""``fw serve`` and ``fw dev`` as real processes: they serve, and exit 0 on SIGTERM."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.http.conftest import write_test_app
from tests.http.servers import run_fw, wait_for_text


def wait_for_status(
    client: httpx.Client, instance_id: str, status: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/api/instances/{instance_id}").json().get("status") == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{instance_id} never became {status}")


def test_fw_serve_with_a_worker_serves_runs_and_stops_cleanly(tmp_path: Path) -> None:
    root = write_test_app(tmp_path, rest="10 ms")

    with run_fw(["serve", "--worker"], root, tmp_path / "serve.log") as served:
        with httpx.Client(base_url=served.url, timeout=10) as client:
            workflows = client.get("/api/workflows")
            started = client.post(
                "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "ada"}}
            )
            wait_for_status(client, "g", "complete")
            studio = client.get("/studio/instances/g")
            refused = client.get("/api/workflows", headers={"Host": "evil.example"})
            metrics = client.get("/metrics")
        code = served.stop()

    assert served.url.startswith("http://127.0.0.1:")
    assert workflows.status_code == 200
    assert started.status_code == 201
    assert studio.status_code == 200 and "hello ada" in studio.text
    assert refused.status_code == 400  # loopback without a token: other Host names refused
    # One process served the start and ran it: it counted both (docs/operations.md#metrics).
    assert 'fw_instances_started_total{workflow="greet"} 1.0' in metrics.text
    assert 'fw_instances_ended_total{outcome="complete",workflow="greet"} 1.0' in metrics.text
    assert code == 0, served.log.read_text()[-2000:]


def test_fw_serve_on_a_public_address_with_a_token(tmp_path: Path) -> None:
    root = write_test_app(tmp_path)
    token = "a-long-random-token-of-40-characters-xyz"

    with run_fw(
        ["serve", "--host", "0.0.0.0"], root, tmp_path / "serve.log", {"FW_API_TOKEN": token}
    ) as served:
        base = served.url.replace("0.0.0.0", "127.0.0.1")
        with httpx.Client(base_url=base, timeout=10) as client:
            anonymous = client.get("/api/workflows")
            bearer = client.get("/api/workflows", headers={"Authorization": f"Bearer {token}"})
        code = served.stop()

    assert "(token required)" in served.log.read_text()
    assert anonymous.status_code == 401
    assert bearer.status_code == 200
    assert code == 0


def test_fw_serve_without_generated_code_says_so(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "bare"
    root.mkdir()
    (root / "fw.toml").write_text('[app]\nname = "bare"\n')

    done = subprocess.run(
        [sys.executable, "-m", "framework", "serve", "--app", str(root), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "fw codegen" in done.stderr


def test_fw_dev_serves_the_api_and_studio(tmp_path: Path) -> None:
    root = write_test_app(tmp_path, rest="10 ms")

    with run_fw(["dev"], root, tmp_path / "dev.log") as dev:
        wait_for_text(dev.log, "started on")  # the worker runs after the first codegen
        with httpx.Client(base_url=dev.url, timeout=10) as client:
            names = [w["name"] for w in client.get("/api/workflows").json()["workflows"]]
            client.post("/api/workflows/echo/instances", json={"id": "e", "params": [1]})
            wait_for_status(client, "e", "complete")
            studio = client.get("/studio")
            metrics = client.get("/metrics")
        code = dev.stop()

    assert names == ["approval", "boom", "echo", "fan-out", "greet"]
    assert "GreetWorkflow" in studio.text
    assert 'fw_instances_ended_total{outcome="complete",workflow="echo"} 1.0' in metrics.text
    assert 'fw_instances{status="complete",workflow="echo"} 1.0' in metrics.text
    assert code == 0, dev.log.read_text()[-2000:]


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    root = write_test_app(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path.cwd()}"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("serve", "dev"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "framework",
                    command,
                    "--app",
                    str(root),
                    "--port",
                    str(port),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert done.returncode == 1, done
            assert done.stderr.strip() == (
                f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
            )


async def test_served_connections_send_without_waiting_for_acks() -> None:
    import asyncio
    import socket

    from framework.http.server import bind_socket

    listening = bind_socket("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        nodelay.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=listening)
    async with server:
        _reader, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        # Nagle's algorithm off: a response's body never waits for the client's delayed ACK
        # of its headers (40 ms per keep-alive request).
        try:
            assert await asyncio.wait_for(nodelay, 10) != 0
        finally:
            writer.close()
            await writer.wait_closed()


def test_a_client_that_disconnects_mid_body_is_no_server_error(tmp_path: Path) -> None:
    import socket

    root = write_test_app(tmp_path)
    forms = (
        ("/api/workflows/echo/instances", "application/json", "{"),
        ("/studio/workflows/echo/start", "application/x-www-form-urlencoded", "csrf_token=x&p"),
    )

    with run_fw(["serve", "-v"], root, tmp_path / "serve.log") as served:
        address = served.url.removeprefix("http://").rsplit(":", 1)
        for path, content_type, start in forms:
            with socket.create_connection((address[0], int(address[1])), timeout=10) as conn:
                conn.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: 100000\r\n\r\n{start}".encode()
                )
            wait_for_text(served.log, f"POST {path}: the client disconnected")
        with httpx.Client(base_url=served.url, timeout=10) as client:
            stored = client.get("/api/instances").json()["instances"]
        code = served.stop()

    log = served.log.read_text()
    assert stored == []
    assert code == 0, log[-2000:]
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert "Exception in ASGI application" not in log
