"""The HTTP/1.1 protocol ``fw serve`` speaks: uvicorn's, answering in fw's own words.

The parser is httptools (llhttp, in C) when it is installed, as it is with fw; else h11, pure
Python and about a third slower per request. A request the parser cannot read (a malformed
line, a request line and headers over ``HEAD_LIMIT``, 64 KiB) never reaches the app: uvicorn
answers it with a 400 and closes the connection. Here that answer is the API's own error body
(``{"error": "invalid_request", "message": ...}``, ``application/json``), as the OpenAPI
document says every operation may answer.

The head limit holds on either parser. It counts the request target and each header's name
and value (plus 4 bytes a line for ``: `` and the line end), whether the head came in one read
or many; and a head still unfinished once that much has arrived is refused then, without
waiting for the rest, so no client makes the server hold more of it.

The head has a deadline too, on either parser: a request line and headers not complete within
``HEAD_TIMEOUT`` (10 s) of their first byte get a 408 (the same JSON error) and the connection
is closed, however the bytes trickle in; a connection that sends nothing is closed after
uvicorn's keep-alive timeout (5 s), from its opening as after each response. So no client holds
a socket, and a file descriptor, by sending a head slowly or not at all (slowloris).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

INVALID_REQUEST = "invalid_request"
HEAD_LIMIT = 64 * 1024
"""The largest request head read, in bytes (see ``head_size``)."""
HEAD_TIMEOUT = 10.0
"""Seconds a request line and headers may take to arrive, from their first byte."""


class HeadTooLarge(Exception):
    """A request's line and headers are over ``HEAD_LIMIT``: the parser refuses it."""


def head_size(target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The size a request head counts for: its target and each header's name and value, with
    4 bytes a header for ``: `` and the line end."""
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers)


class _JsonErrors:
    """Answers a request the server will not serve with fw's JSON error, not uvicorn's plain
    text, and closes the connection."""

    transport: asyncio.Transport
    server_state: ServerState

    def send_400_response(self, msg: str) -> None:
        message = (
            f"{msg.rstrip('.')}: the request line and headers could not be read as HTTP/1.1 "
            "(malformed, or longer than 64 KiB: send long values in a JSON body)"
        )
        self._send_error(b"400 Bad Request", message)

    def send_408_response(self) -> None:
        message = (
            f"the request line and headers did not arrive within {HEAD_TIMEOUT:g} s of their "
            "first byte"
        )
        self._send_error(b"408 Request Timeout", message)

    def _send_error(self, status: bytes, message: str) -> None:
        body = json.dumps(
            {"error": INVALID_REQUEST, "message": message}, separators=(",", ":")
        ).encode()
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        head += [name + b": " + v + b"\r\n" for name, v in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class _HeadDeadline(_JsonErrors, asyncio.Protocol):
    """Closes a connection whose request head is not complete within ``HEAD_TIMEOUT`` of its
    first byte, and one that sends nothing within the keep-alive timeout of its opening.

    The parser's protocol starts the clock (``_start_head_clock``) when a head's first byte
    arrives and stops it (``_stop_head_clock``) once the head is complete; uvicorn's own
    keep-alive timer covers a connection with no bytes since its opening or its last response.
    """

    loop: asyncio.AbstractEventLoop
    cycle: Any
    """uvicorn's request-response cycle of the latest request (None before the first)."""
    timeout_keep_alive: int
    timeout_keep_alive_task: asyncio.TimerHandle | None
    timeout_keep_alive_handler: Callable[[], None]
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a response; arm it for the first
        # request too (its data_received cancels it at the first byte).
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _start_head_clock(self) -> None:
        """A request head began: it must be complete within ``HEAD_TIMEOUT`` (a clock already
        running keeps running: more bytes do not extend it)."""
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A head pipelined behind a request still being answered: close after that answer.
            self.cycle.keep_alive = False
            return
        self.send_408_response()


class _HeadLimitedConnection(h11.Connection):
    """h11's connection, refusing a request head over ``HEAD_LIMIT`` even when it arrived
    whole (h11 itself only refuses an unfinished one that big)."""

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and head_size(event.target, event.headers) > HEAD_LIMIT:
            raise h11.RemoteProtocolError("Request line and headers too long.")
        return event


class JsonH11Protocol(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol, answering an unreadable request with fw's JSON error, and
    holding a request head to ``HEAD_TIMEOUT``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _HeadLimitedConnection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # no request yet, or the last one answered
            self._start_head_clock()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the head was read (or refused)
            self._stop_head_clock()


@functools.cache
def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http`` setting: httptools' if installed, else h11's."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return JsonH11Protocol

    class JsonHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol, answering an unreadable request with fw's JSON error,
        refusing a request head over ``HEAD_LIMIT`` (llhttp has no limit of its own) and
        holding one to ``HEAD_TIMEOUT``."""

        _awaiting_head = True
        """Whether the parser is between requests: a byte now begins a head (or is the blank
        line llhttp allows before one, which counts against the clock all the same)."""

        _head_open = False
        """Whether a request head is being read."""
        _head_began = False
        """Whether it began in the data being parsed (which may end an earlier request)."""
        _head_size = 0
        """Its size so far, as ``head_size`` counts it (the parts the parser gave)."""
        _head_received = 0
        """Its bytes received after the data it began in (the parser keeps a header until
        its end: this bounds what it holds)."""

        def data_received(self, data: bytes) -> None:
            self._head_began = False
            if self._awaiting_head:
                self._start_head_clock()
            super().data_received(data)
            if not self._head_open or self._head_began or self.transport.is_closing():
                return
            self._head_received += len(data)
            if self._head_received > HEAD_LIMIT:
                self.send_400_response("Request line and headers too long.")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_open = self._head_began = True
            self._head_size = self._head_received = 0
            self._start_head_clock()

        def on_url(self, url: bytes) -> None:
            self._count_head(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_head(head_size(b"", [(name, value)]))
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._head_open = self._awaiting_head = False
            self._stop_head_clock()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._awaiting_head = True
            super().on_message_complete()

        def _count_head(self, size: int) -> None:
            self._head_size += size
            if self._head_size > HEAD_LIMIT:
                raise HeadTooLarge  # the parser stops; uvicorn answers 400

    return JsonHttpToolsProtocol
