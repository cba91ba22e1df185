"""One connection to an fw HTTP API: its base URL, its token and its httpx clients.

httpx's ``AsyncClient`` belongs to the event loop it first ran on, so a connection keeps one
per loop: the caller's loop for ``await``, and the synchronous facade's private loop for the
blocking calls. Each request answers its parsed JSON, or raises the fw error the answer
stands for (``answers``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

from framework.client.answers import Call, error_of
from framework.errors import RemoteUnavailableError
from framework.resources import VERSION
from framework.runtime.durations import format_duration

DEFAULT_TIMEOUT = 30.0
"""Seconds a request may take (connecting, then each read), besides a long poll's wait."""


class Connection:
    """The base URL and token of an API, and an httpx client per event loop."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the API's URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"User-Agent": f"fw-client/{VERSION}", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self.closed = False
        self.answered = False
        """Whether the server has answered a request of this connection (it was reachable)."""

    def __repr__(self) -> str:
        return f"<Connection {self.url!r}>"

    async def request(
        self,
        method: str,
        path: str,
        call: Call,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        wait: float = 0.0,
    ) -> Any:
        """Send a request to ``path`` (already quoted) and return the answer's JSON.

        ``body`` is sent as JSON text as given (see ``answers.json_text``); ``wait`` is
        added to the read timeout, for a long poll.

        Raises:
            RemoteUnavailableError: the API could not be reached or did not answer in time.
            FwError: the error the API answered (see ``answers.error_of``).
        """
        client = self._client()
        timeout = httpx.Timeout(self.timeout, read=self.timeout + wait)
        content = None if body is None else body.encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await client.request(
                method, path, content=content, params=query, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            raise RemoteUnavailableError(
                f"the fw API at {self.url} did not answer {method} {path} within "
                f"{format_duration(self.timeout + wait)}",
                url=self.url,
            ) from None
        except httpx.TransportError as exc:
            raise RemoteUnavailableError(
                f"cannot reach the fw API at {self.url} ({type(exc).__name__}: {exc}); is "
                "`fw serve` running there?",
                url=self.url,
            ) from None
        self.answered = True
        if response.is_success:
            return response.json()
        raise error_of(response, self.url, call)

    def _client(self) -> httpx.AsyncClient:
        if self.closed:
            raise RuntimeError(f"this client of {self.url} is closed")
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                base_url=self.url, headers=self._headers, follow_redirects=False
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the connections of this event loop's httpx client; the clients of loops
        that have closed are dropped with them. Further requests are refused."""
        self.closed = True
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        for other in [other for other in self._clients if other.is_closed()]:
            del self._clients[other]
        if client is not None:
            await client.aclose()

    def loops(self) -> list[asyncio.AbstractEventLoop]:
        """The open event loops that hold an httpx client of this connection."""
        return [loop for loop in self._clients if not loop.is_closed()]
