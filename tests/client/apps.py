"""The app the remote client's tests drive through a real ``fw serve``, and its server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.apps import write_app
from tests.http.servers import run_fw, wait_for_address
from tests.runtime.processes import REPO

TOKEN = "remote-client-token-0123456789abcdef"

GREET = """
from pydantic import BaseModel
from framework import workflow, WorkflowContext

class Greeting(BaseModel):
    name: str
    times: int = 1

class Greeted(BaseModel):
    text: str
    count: int

async def say(name: str, times: int) -> str:
    return " ".join([f"hello {name}"] * times)

@workflow
async def greet(ctx: WorkflowContext[Greeting]) -> Greeted:
    text = await ctx.step.do("say", say, ctx.params.name, ctx.params.times)
    ctx.log.info("greeted", name=ctx.params.name)
    return Greeted(text=text, count=ctx.params.times)
"""

APPROVE = """
from pydantic import BaseModel
from framework import workflow, WorkflowContext

class Approval(BaseModel):
    by: str

async def record(by: str) -> str:
    return by

@workflow
async def approve(ctx: WorkflowContext[None]) -> str:
    await ctx.step.do("prepare", record, "nobody")
    approval = await ctx.step.wait_for_event("approval", type="approval", model=Approval)
    return await ctx.step.do("apply", record, approval.by)
"""

FAIL = """
from framework import NonRetryableError, workflow, WorkflowContext

async def explode() -> None:
    raise NonRetryableError("the warehouse is on fire")

@workflow
async def fail(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("explode", explode)
"""

FLAKY = """
from framework import Retries, workflow, WorkflowContext

ATTEMPTS: list[int] = []

async def shaky() -> int:
    ATTEMPTS.append(1)
    if len(ATTEMPTS) == 1:
        raise ConnectionError("the first call always fails")
    return len(ATTEMPTS)

@workflow
async def flaky(ctx: WorkflowContext[None]) -> int:
    return await ctx.step.do("shaky", shaky, retries=Retries(limit=3, delay="1 hour"))
"""

SLOW = """
import asyncio, os
from framework import workflow, WorkflowContext

async def work(n: int) -> int:
    marks = os.environ["FW_CLIENT_MARKS"]
    first = not os.path.exists(marks)
    with open(marks, "a") as out:
        out.write(f"{os.getpid()}\\n")
    if first:
        await asyncio.sleep(120)  # the test kills this worker here
    return n * 2

@workflow
async def slow(ctx: WorkflowContext[int]) -> int:
    return await ctx.step.do("work", work, ctx.params)
"""

WORKFLOWS = {
    "greet_workflow.py": GREET,
    "approve_workflow.py": APPROVE,
    "fail_workflow.py": FAIL,
    "flaky_workflow.py": FLAKY,
    "slow_workflow.py": SLOW,
}
SETTINGS = """
[runtime]
lease = "1 second"
poll_interval = "100 ms"
"""


@dataclass(frozen=True)
class RemoteApp:
    """An app on disk, importable by the test process, and the URL of its server."""

    root: Path
    url: str

    @property
    def package(self) -> str:
        return self.root.name


def write_remote_app(parent: Path) -> Path:
    """Write the app and make it importable here (as a frontend sharing the code would)."""
    root = write_app(parent, WORKFLOWS, SETTINGS)
    if str(parent) not in sys.path:
        sys.path.insert(0, str(parent))
    return root


@contextmanager
def serve(
    root: Path, database_url: str, log: Path, *, worker: bool = True, **env: str
) -> Iterator[RemoteApp]:
    """``fw serve`` (with ``--worker``) of ``root`` on ``database_url`` with ``TOKEN``."""
    environ = {"FW_DATABASE_URL": database_url, "FW_API_TOKEN": TOKEN, **env}
    args = ["serve", "--worker"] if worker else ["serve"]
    with run_fw(args, root, log, environ) as running:
        yield RemoteApp(root, running.url)


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(root: Path, database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``fw serve --worker`` of ``root`` on a given port (to restart it at the same address)."""
    environ = {**os.environ, "FW_DATABASE_URL": database_url, "FW_API_TOKEN": TOKEN}
    environ["PYTHONPATH"] = f"{root.parent}{os.pathsep}{REPO}"
    command = [sys.executable, "-m", "framework", "serve", "--worker", "--app", str(root)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=environ
        )
    wait_for_address(process, log)
    return process
