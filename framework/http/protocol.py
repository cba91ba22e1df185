"""The HTTP/1.1 protocol ``fw serve`` speaks: uvicorn's, answering in fw's own words.

The parser is httptools (llhttp, in C) when it is installed, as it is with fw; else h11, pure
Python and about a third slower per request. A request the parser cannot read (a request
line and headers over 64 KiB with httptools, a malformed line) never reaches the app: uvicorn
answers it with a plain-text 400 and closes the connection. Here that answer is the API's own
error body (``{"error": "invalid_request", "message": ...}``, ``application/json``), as the
OpenAPI document says every operation may answer.
"""

from __future__ import annotations

import asyncio
import functools
import json

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

INVALID_REQUEST = "invalid_request"


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


class JsonH11Protocol(_JsonBadRequest, H11Protocol):
    """uvicorn's h11 protocol, answering an unreadable request with fw's JSON error."""


@functools.cache
def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http`` setting: httptools' if installed, else h11's."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return JsonH11Protocol

    class JsonHttpToolsProtocol(_JsonBadRequest, HttpToolsProtocol):
        """uvicorn's httptools protocol, answering an unreadable request with fw's JSON error."""

    return JsonHttpToolsProtocol
