"""Running ``fw serve`` / ``fw dev`` in a subprocess and finding the address it serves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADDRESS = re.compile(r"API and Studio at (http://\S+)/studio")


@dataclass
class Running:
    """A running fw command: its process, base URL and log file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextmanager
def run_fw(
    args: list[str], app_root: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[Running]:
    """Run ``fw <args> --app <root> --port 0`` until it logs its address; kill it after."""
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = f"{app_root.parent}{os.pathsep}{Path.cwd()}"
    command = [sys.executable, "-m", "framework", *args, "--app", str(app_root), "--port", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ)
    try:
        yield Running(process, wait_for_address(process, log), log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_for_address(process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> str:
    """The base URL the process logs once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ADDRESS.search(log.read_text())
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no address logged; log:\n{log.read_text()[-3000:]}")


def wait_for_text(log: Path, text: str, timeout: float = 30) -> None:
    """Wait until ``text`` appears in the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in:\n{log.read_text()[-3000:]}")


@asynccontextmanager
async def echo_server(parser: str, **options: Any) -> AsyncIterator[tuple[str, int]]:
    """A trivial app (it answers its path) on uvicorn with fw's protocol class for ``parser``
    (``httptools`` or ``h11``), on a real socket; ``options`` go to ``uvicorn.Config``."""
    import asyncio
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from framework.http.protocol import JsonH11Protocol, http_protocol

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path})

    protocol = http_protocol() if parser == "httptools" else JsonH11Protocol
    app = Starlette(routes=[Route("/{path:path}", echo)])
    config = uvicorn.Config(app, http=protocol, lifespan="off", log_config=None, **options)
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        await task
