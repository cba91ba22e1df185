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
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

INVALID_REQUEST = "invalid_request"
HEAD_LIMIT = 64 * 1024
"""The largest request head read, in bytes (see ``head_size``)."""


class HeadTooLarge(Exception):
    """A request's line and headers are over ``HEAD_LIMIT``: the parser refuses it."""


def head_size(target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The size a request head counts for: its target and each header's name and value, with
    4 bytes a header for ``: `` and the line end."""
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers)


class _JsonBadRequest:
    """Overrides uvicorn's plain-text 400 for a request its parser refused."""

    transport: asyncio.Transport
    server_state: ServerState

    def send_400_response(self, msg: str) -> None:
        message = (
            f"{msg.rstrip('.')}: the request line and headers could not be read as HTTP/1.1 "
            "(malformed, or longer than 64 KiB: send long values in a JSON body)"
        )
        body = json.dumps(
            {"error": INVALID_REQUEST, "message": message}, separators=(",", ":")
        ).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [name + b": " + v + b"\r\n" for name, v in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class _HeadLimitedConnection(h11.Connection):
    """h11's connection, refusing a request head over ``HEAD_LIMIT`` even when it arrived
    whole (h11 itself only refuses an unfinished one that big)."""

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and head_size(event.target, event.headers) > HEAD_LIMIT:
            raise h11.RemoteProtocolError("Request line and headers too long.")
        return event


class JsonH11Protocol(_JsonBadRequest, H11Protocol):
    """uvicorn's h11 protocol, answering an unreadable request with fw's JSON error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _HeadLimitedConnection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)


@functools.cache
def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http`` setting: httptools' if installed, else h11's."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return JsonH11Protocol

    class JsonHttpToolsProtocol(_JsonBadRequest, HttpToolsProtocol):
        """uvicorn's httptools protocol, answering an unreadable request with fw's JSON error,
        and refusing a request head over ``HEAD_LIMIT`` (llhttp has no limit of its own)."""

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

        def on_url(self, url: bytes) -> None:
            self._count_head(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_head(head_size(b"", [(name, value)]))
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._head_open = False
            super().on_headers_complete()

        def _count_head(self, size: int) -> None:
            self._head_size += size
            if self._head_size > HEAD_LIMIT:
                raise HeadTooLarge  # the parser stops; uvicorn answers 400

    return JsonHttpToolsProtocol
