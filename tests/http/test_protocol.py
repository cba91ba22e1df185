"""A request ``fw serve``'s HTTP parser cannot read gets the API's JSON error, not uvicorn's
plain text, on either parser (httptools, installed with fw, and h11, the fallback); so does a
request line and headers over 64 KiB, on either parser, however they arrive."""

from __future__ import annotations

import asyncio
import json
import select
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from framework.http.protocol import HEAD_LIMIT, http_protocol
from tests.http.servers import echo_server, run_fw

EXAMPLE_APP = Path(__file__).resolve().parents[2] / "example_app"
TOO_LONG = 70_000  # characters of query: past the parser's 64 KiB of request line and headers


Answer = tuple[int, dict[str, str], bytes]
"""The status, headers and body of an answer."""


def exchange(address: tuple[str, int], request: bytes) -> Answer:
    """Send ``request`` on a new connection; the answer, read until the server closes the
    connection (it must)."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(request)
        return read_answer(connection)


def read_answer(connection: socket.socket) -> Answer:
    """The answer on ``connection``, read until the server closes it."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def get(query: str) -> bytes:
    return f"GET /api/instances?search={query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


def with_headers(*headers: bytes, path: bytes = b"/api/workflows") -> bytes:
    """A GET of ``path`` with ``headers`` (each ``Name: value``) after ``Host``."""
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def endless_head(address: tuple[str, int], piece: int = 16_384, most: int = 1 << 20) -> Answer:
    """Send a head that never ends, a piece at a time, until the server answers (or ``most``
    bytes of it went unanswered: then the server waits for its end)."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        sent = 0
        while not select.select([connection], [], [], 0.2)[0]:
            assert sent < most, f"{sent:,} bytes of one header and no answer"
            connection.sendall(b"a" * piece)
            sent += piece
        return read_answer(connection)


@pytest.fixture(scope="module")
def fw_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder = tmp_path_factory.mktemp("protocol")
    env = {"FW_DATABASE_URL": f"sqlite:///{folder}/fw.db"}
    with run_fw(["serve"], EXAMPLE_APP, folder / "serve.log", env) as running:
        parts = urlsplit(running.url)
        assert parts.hostname is not None and parts.port is not None
        yield parts.hostname, parts.port


def test_fw_serve_parses_with_httptools() -> None:
    assert http_protocol().__name__ == "JsonHttpToolsProtocol"


def test_a_request_line_too_long_to_read_gets_the_apis_json_error(
    fw_serve: tuple[str, int],
) -> None:
    status, headers, body = exchange(fw_serve, get("a" * TOO_LONG))

    assert status == 400
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = json.loads(body)
    assert error["error"] == "invalid_request"
    assert "64 KiB" in error["message"]


def test_a_long_query_the_parser_reads_reaches_the_app(fw_serve: tuple[str, int]) -> None:
    status, _, body = exchange(fw_serve, get("a" * 60_000))

    assert status == 400
    assert json.loads(body)["error"] == "invalid_search"  # the app's own check, with its limit


def test_fw_serve_refuses_a_header_over_64_kib(fw_serve: tuple[str, int]) -> None:
    status, headers, body = exchange(fw_serve, with_headers(b"X-Big: " + b"a" * 70_000))

    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(body)["error"] == "invalid_request"
    assert "64 KiB" in json.loads(body)["message"]


def test_fw_serve_refuses_two_host_headers(fw_serve: tuple[str, int]) -> None:
    status, _, body = exchange(fw_serve, with_headers(b"Host: evil.example"))
    one_host, _, _ = exchange(fw_serve, with_headers())

    assert status == 400 and json.loads(body)["error"] == "invalid_host"
    assert one_host == 200


@pytest.fixture(params=["httptools", "h11"])
async def uvicorn_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, int]]:
    """A trivial app on uvicorn with fw's protocol class for each parser, on a real socket."""
    async with echo_server(request.param) as address:
        yield address


@pytest.mark.parametrize(
    "request_bytes",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n"],
    ids=["garbage", "header-without-colon"],
)
async def test_a_malformed_request_gets_the_apis_json_error_on_either_parser(
    uvicorn_server: tuple[str, int], request_bytes: bytes
) -> None:
    status, headers, body = await asyncio.to_thread(exchange, uvicorn_server, request_bytes)

    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(body)["error"] == "invalid_request"
    good = b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    status, _, body = await asyncio.to_thread(exchange, uvicorn_server, good)
    assert (status, json.loads(body)) == (200, {"path": "/ok"})


def big_headers(total: int, each: int = 2000) -> bytes:
    """A request with headers of ``each`` bytes of value, ``total`` bytes of them in all."""
    count, rest = divmod(total, each)
    values = [b"a" * each] * count + ([b"a" * rest] if rest else [])
    return with_headers(*(b"X-H%d: %s" % (n, value) for n, value in enumerate(values)), path=b"/x")


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (with_headers(b"X-Big: " + b"a" * (HEAD_LIMIT - 1000), path=b"/x"), 200),
        (with_headers(b"X-Big: " + b"a" * 70_000, path=b"/x"), 400),
        (big_headers(HEAD_LIMIT - 6000), 200),
        (big_headers(70_000), 400),
        (with_headers(path=b"/" + b"a" * 70_000), 400),
    ],
    ids=["header-under", "header-over", "headers-under", "headers-over", "target-over"],
)
async def test_a_head_over_64_kib_is_refused_on_either_parser(
    uvicorn_server: tuple[str, int], request_bytes: bytes, expected: int
) -> None:
    status, headers, body = await asyncio.to_thread(exchange, uvicorn_server, request_bytes)

    assert status == expected
    if expected == 400:
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"] == "invalid_request"


async def test_a_head_that_never_ends_is_refused_without_waiting_for_it(
    uvicorn_server: tuple[str, int],
) -> None:
    status, headers, body = await asyncio.to_thread(endless_head, uvicorn_server)

    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(body)["error"] == "invalid_request"
