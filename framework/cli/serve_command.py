"""``fw serve``: the HTTP API and Studio (and, with ``--worker``, a worker) until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from framework.cli.output import (
    AppOption,
    app_root,
    configure_logging,
    fail,
    run,
    stop_on_signals,
)

if TYPE_CHECKING:
    from framework.runtime.app import App

DEFAULT_BODY_LIMIT = 1024 * 1024
ForwardedAllowIps = Annotated[
    str | None,
    typer.Option(
        envvar="FW_FORWARDED_ALLOW_IPS",
        help="Reverse proxies (addresses or networks, comma-separated; * for any) whose "
        "X-Forwarded-For, -Proto and -Host are read; by default no one's.",
    ),
]
"""``--forwarded-allow-ips`` of ``fw serve`` and ``fw dev`` (see ``framework.http.proxies``)."""


def register(app: typer.Typer) -> None:
    """Add ``fw serve`` to the ``fw`` app."""
    app.command("serve")(serve)


def serve(
    app: Path | None = AppOption,
    host: Annotated[
        str, typer.Option(help="Address to listen on; any but loopback needs FW_API_TOKEN.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: a free one).", min=0, max=65535)
    ] = 8787,
    worker: Annotated[
        bool, typer.Option("--worker", help="Also run a worker in this process.")
    ] = False,
    body_limit: Annotated[
        int, typer.Option(help="Largest request body accepted, in bytes.")
    ] = DEFAULT_BODY_LIMIT,
    forwarded_allow_ips: ForwardedAllowIps = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log debug lines.")
    ] = False,
) -> None:
    """Serve the HTTP API and Studio until SIGTERM or Ctrl-C, then exit 0."""
    stopped = stop_on_signals()
    from framework.http.server import bind_problem, env_read_token, env_token

    root = app_root(app)
    problem = bind_problem(host, env_token(), env_read_token())
    if problem is not None:
        fail(problem)
    configure_logging(verbose)

    async def main() -> None:
        from framework.errors import ListenError
        from framework.http.server import serve_app
        from framework.runtime.app import App

        the_app = App.for_root(root)
        the_app.entrypoints  # noqa: B018 - fails clearly when codegen never ran
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if stopped.is_set():
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    _until_stopped(
                        serve_app(
                            the_app,
                            host,
                            port,
                            stop,
                            body_limit=body_limit,
                            forwarded_allow_ips=forwarded_allow_ips,
                        ),
                        stop,
                    )
                )
                if worker:
                    group.create_task(_until_stopped(_run_worker(the_app, stop), stop))
        except* ListenError as group_error:
            fail(str(group_error.exceptions[0]))
        finally:
            await the_app.close()

    run(main)
    raise typer.Exit(0)


async def _run_worker(app: App, stop: asyncio.Event) -> None:
    from framework.runtime.worker import Worker

    async with Worker(app):
        await stop.wait()


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    try:
        await work
    finally:
        stop.set()
