"""A client cannot hold ``fw serve``'s connections by sending a request head slowly, or not at
all (slowloris): the head has a deadline (``HEAD_TIMEOUT``), an idle connection uvicorn's
keep-alive timeout, on either parser. When the server runs out of file descriptors anyway,
failed accepts are one warning a minute, not a traceback each; and ``fw serve`` starts with its
open-file limit raised to the ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from framework.http import protocol
from framework.http.server import ACCEPT_OUT_OF_RESOURCE, AcceptErrorLog
from tests.http.servers import echo_server, wait_for_address

EXAMPLE_APP = Path(__file__).resolve().parents[2] / "example_app"
PARTIAL_HEAD = b"GET /api/workers HTTP/1.1\r\nHost: localhost\r\nX-a: "
"""What the attacking clients sent, and nothing more."""
WHOLE_REQUEST = b"GET /api/workers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
HEAD_TIMEOUT = 1.0
"""The deadline in these tests (10 s in ``fw serve``)."""
KEEP_ALIVE = 2
"""uvicorn's keep-alive timeout in the tests in process (5 s in ``fw serve``)."""

Address = tuple[str, int]


def until_closed(connection: socket.socket, wait: float = 15) -> tuple[bytes, float]:
    """What the server sends on ``connection`` until it closes it, and the seconds that took
    (the test fails if it is still open after ``wait``)."""
    connection.settimeout(wait)
    began, received = time.monotonic(), b""
    with contextlib.suppress(ConnectionResetError):  # closed with bytes unread: a reset
        while chunk := connection.recv(65536):
            received += chunk
    return received, time.monotonic() - began


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def timed_out(answer: bytes) -> bool:
    """Whether ``answer`` is the 408 of a head past its deadline, with fw's JSON error."""
    head, _, body = answer.partition(b"\r\n\r\n")
    return (
        status_of(answer) == 408
        and b"content-type: application/json" in head
        and json.loads(body)["error"] == "invalid_request"
    )


# In process, on each parser


@pytest.fixture(params=["httptools", "h11"])
async def server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Address]:
    """A trivial app on uvicorn with fw's protocol for each parser, on a real socket, with a
    head deadline of ``HEAD_TIMEOUT`` and a keep-alive timeout of ``KEEP_ALIVE``."""
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT", HEAD_TIMEOUT)
    async with echo_server(request.param, timeout_keep_alive=KEEP_ALIVE) as address:
        yield address


def partial_head(address: Address) -> tuple[bytes, float]:
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(PARTIAL_HEAD)
        return until_closed(connection)


def trickled_head(address: Address) -> tuple[bytes, float]:
    """An endless header, a byte every 0.1 s until the server answers (10 s at most)."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(PARTIAL_HEAD)
        began = time.monotonic()
        while time.monotonic() - began < 10:
            if select.select([connection], [], [], 0.1)[0]:
                break
            connection.sendall(b"a")
        received, _ = until_closed(connection)
        return received, time.monotonic() - began


def slow_whole_head(address: Address, pieces: int = 5) -> bytes:
    """``WHOLE_REQUEST`` in ``pieces``, over half the deadline."""
    size = -(-len(WHOLE_REQUEST) // pieces)
    with socket.create_connection(address, timeout=10) as connection:
        for start in range(0, len(WHOLE_REQUEST), size):
            connection.sendall(WHOLE_REQUEST[start : start + size])
            time.sleep(HEAD_TIMEOUT / 2 / pieces)
        return until_closed(connection)[0]


def partial_head_after_a_response(address: Address) -> tuple[bytes, bytes, float]:
    """One request answered on a keep-alive connection, then half of another's head."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        first = b""
        while not first.endswith(b'{"path":"/first"}'):
            first += connection.recv(65536)
        connection.sendall(PARTIAL_HEAD)
        return (first, *until_closed(connection))


def idle(address: Address) -> tuple[bytes, float]:
    with socket.create_connection(address, timeout=10) as connection:
        return until_closed(connection)


async def test_a_head_unfinished_at_the_deadline_gets_408_and_is_closed(server: Address) -> None:
    answer, seconds = await asyncio.to_thread(partial_head, server)

    assert timed_out(answer)
    assert HEAD_TIMEOUT - 0.05 <= seconds < HEAD_TIMEOUT + 5


async def test_bytes_trickling_in_do_not_extend_the_deadline(server: Address) -> None:
    answer, seconds = await asyncio.to_thread(trickled_head, server)

    assert timed_out(answer)
    assert HEAD_TIMEOUT - 0.05 <= seconds < HEAD_TIMEOUT + 5


async def test_a_slow_head_finished_in_time_is_served(server: Address) -> None:
    answer = await asyncio.to_thread(slow_whole_head, server)

    assert status_of(answer) == 200
    assert answer.endswith(b'{"path":"/api/workers"}')


async def test_a_head_after_a_response_has_its_own_deadline(server: Address) -> None:
    first, answer, seconds = await asyncio.to_thread(partial_head_after_a_response, server)

    assert status_of(first) == 200
    assert timed_out(answer)
    assert HEAD_TIMEOUT - 0.05 <= seconds < HEAD_TIMEOUT + 5


async def test_a_connection_that_sends_nothing_is_closed_after_the_keep_alive_timeout(
    server: Address,
) -> None:
    answer, seconds = await asyncio.to_thread(idle, server)

    assert answer == b""
    assert KEEP_ALIVE - 0.05 <= seconds < KEEP_ALIVE + 5


# Failed accepts


def accept_failed(sock: socket.socket) -> dict[str, Any]:
    """The context asyncio's loop gives its exception handler when accept() fails for want of
    file descriptors (``BaseSelectorEventLoop._accept_connection``)."""
    error = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
    return {"message": ACCEPT_OUT_OF_RESOURCE, "exception": error, "socket": sock}


async def test_failed_accepts_are_one_warning_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    loop, now = asyncio.get_running_loop(), [100.0]
    passed_on: list[dict[str, Any]] = []
    handler = AcceptErrorLog(
        "fw serve", lambda: 1234, lambda _, context: passed_on.append(context), clock=lambda: now[0]
    )
    other = {"message": "Task exception was never retrieved", "exception": ValueError("x")}

    with socket.socket() as sock, caplog.at_level(logging.WARNING, logger="fw.http"):
        for _ in range(5000):
            handler(loop, accept_failed(sock))
        handler(loop, other)
        first = [record.getMessage() for record in caplog.records]
        now[0] += 61
        for _ in range(10):
            handler(loop, accept_failed(sock))
    said = [record.getMessage() for record in caplog.records]

    assert passed_on == [other]
    assert len(first) == 1 and all(record.exc_info is None for record in caplog.records)
    assert re.fullmatch(
        r"fw serve: cannot accept connections: Too many open files "
        r"\(1,234 open, open-file limit [\d,]+\); said at most every 60 s",
        first[0],
    )
    assert len(said) == 2
    assert "; 4,999 more in the 61 s since the last;" in said[1]


async def test_other_errors_reach_the_default_handler_when_none_was_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = AcceptErrorLog("fw serve", lambda: 0, None)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        handler(asyncio.get_running_loop(), {"message": "something broke"})

    assert [record.getMessage() for record in caplog.records] == ["something broke"]


# A real ``fw serve``

BOOT = """
import resource, runpy
import framework.http.protocol
framework.http.protocol.HEAD_TIMEOUT = {head_timeout}
if {open_files}:
    resource.setrlimit(resource.RLIMIT_NOFILE, {open_files})
runpy.run_module("framework", run_name="__main__")
"""
"""``fw`` with a shorter head deadline, and optionally other limits of open files."""


@contextmanager
def fw_serve(
    folder: Path, open_files: tuple[int, int] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Address, Path]]:
    """``fw serve`` on the example app with a head deadline of ``HEAD_TIMEOUT``, and started
    with ``open_files`` (soft, hard) limits if given: its process, address and log."""
    code = BOOT.format(head_timeout=HEAD_TIMEOUT, open_files=open_files)
    command = [sys.executable, "-c", code, "serve", "--app", str(EXAMPLE_APP), "--port", "0"]
    environ = {
        **os.environ,
        "FW_DATABASE_URL": f"sqlite:///{folder}/fw.db",
        "PYTHONPATH": f"{EXAMPLE_APP.parent}{os.pathsep}{Path.cwd()}",
    }
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ)
    try:
        parts = urlsplit(wait_for_address(process, log))
        assert parts.hostname is not None and parts.port is not None
        yield process, (parts.hostname, parts.port), log
    finally:
        process.kill()
        process.wait(timeout=10)


def open_files_limits(pid: int) -> tuple[int, int]:
    """The soft and hard limits of open files of process ``pid``, from ``/proc``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limits for process {pid}")


def attack(address: Address, count: int, stack: ExitStack) -> list[socket.socket]:
    """``count`` connections that send ``PARTIAL_HEAD`` and stop."""
    connections = []
    for _ in range(count):
        connection = stack.enter_context(socket.create_connection(address, timeout=10))
        connection.sendall(PARTIAL_HEAD)
        connections.append(connection)
    return connections


def request(address: Address) -> tuple[int, float]:
    """The status of ``WHOLE_REQUEST``, and the seconds it took."""
    began = time.monotonic()
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(WHOLE_REQUEST)
        answer, _ = until_closed(connection)
    return status_of(answer), time.monotonic() - began


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc")
def test_fw_serve_closes_unfinished_heads_and_serves_others_meanwhile(tmp_path: Path) -> None:
    soft, hard = open_files_limits(os.getpid())
    with fw_serve(tmp_path, open_files=(min(soft, 256), hard)) as (process, address, _):
        raised = open_files_limits(process.pid)
        with ExitStack() as stack:
            connections = attack(address, 40, stack)
            began = time.monotonic()
            status, seconds = request(address)
            answered_early = select.select(connections, [], [], 0)[0]
            early = time.monotonic() - began
            closed = [until_closed(connection)[0] for connection in connections]
            all_closed = time.monotonic() - began

    assert raised == (hard, hard)
    assert status == 200 and seconds < HEAD_TIMEOUT / 2  # not queued behind the 40
    assert early < HEAD_TIMEOUT and answered_early == []  # none closed before the deadline
    assert all(timed_out(answer) for answer in closed)
    assert all_closed < HEAD_TIMEOUT + 5


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc")
def test_fw_serve_out_of_file_descriptors_warns_once_and_recovers(tmp_path: Path) -> None:
    with fw_serve(tmp_path, open_files=(32, 64)) as (process, address, log):
        raised = open_files_limits(process.pid)
        with ExitStack() as stack:
            connections = attack(address, 100, stack)  # more than the server may open
            closed = [until_closed(connection, wait=30)[0] for connection in connections]
        status, _ = request(address)
        text = log.read_text()

    assert raised == (64, 64)
    assert all(timed_out(answer) for answer in closed)
    assert status == 200
    assert text.count("cannot accept connections: Too many open files") == 1
    assert "Traceback" not in text and ACCEPT_OUT_OF_RESOURCE not in text
