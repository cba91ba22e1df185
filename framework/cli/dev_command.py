"""``fw dev``: regenerate on every save, run the app's instances, serve the API and Studio."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from framework.cli.codegen_commands import AppOption, DevOptions, DevService, run_dev
from framework.cli.output import app_root, configure_logging, fail

if TYPE_CHECKING:
    from framework.codegen.run import CodegenResult
    from framework.runtime.app import App

LOG = logging.getLogger("fw.dev")


def register(app: typer.Typer) -> None:
    """Add ``fw dev`` to the ``fw`` app."""
    app.command("dev")(dev)


def dev(
    app: AppOption = None,
    host: Annotated[str, typer.Option(help="Address of the HTTP API and Studio.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTP API and Studio.")] = 8787,
) -> None:
    """Watch and regenerate on every change, run a worker that reloads the workflows, and
    serve the HTTP API and Studio (Ctrl-C or SIGTERM stops, exit 0)."""
    options = DevOptions(app_root(app), host, port)
    from framework.http.server import bind_problem, env_token

    problem = bind_problem(host, env_token())
    if problem is not None:
        fail(problem)
    configure_logging()
    session = DevSession(options)
    from framework.errors import ListenError

    try:
        asyncio.run(session.run())
    except* ListenError as group:
        fail(str(group.exceptions[0]))
    raise typer.Exit(0)


class DevSession:
    """The runtime side of ``fw dev``: a worker started after the first good codegen run,
    whose app forgets its loaded workflow code after every later one."""

    def __init__(self, options: DevOptions) -> None:
        self.options = options
        self._generated = asyncio.Event()
        self._app: App | None = None

    async def run(self) -> None:
        """Watch, work and serve until stopped; then close the store."""
        from framework.runtime.app import close_stores

        try:
            await run_dev(self.options, on_success=self.regenerated, services=self.services())
        finally:
            await close_stores()

    def services(self) -> list[DevService]:
        """What runs beside the watch."""
        return [self.run_worker, self.serve_http]

    def regenerated(self, result: CodegenResult, changed: frozenset[Path]) -> None:
        """After each good codegen run: load the new code at the next claim."""
        if self._app is not None and self._generated.is_set():
            self._app.reload()
            LOG.info("workflows reloaded")
        self._generated.set()

    @property
    def app(self) -> App:
        from framework.runtime.app import App

        if self._app is None:
            self._app = App.for_root(self.options.root)
        return self._app

    async def run_worker(self, stop: asyncio.Event) -> None:
        """Run a worker beside the watch once the generated package exists."""
        from framework.runtime.aio import first_of
        from framework.runtime.worker import Worker

        await first_of(self._generated.wait(), stop.wait())
        if stop.is_set():
            return
        worker = Worker(self.app)
        await worker.start()
        try:
            await stop.wait()
        finally:
            await worker.stop()

    async def serve_http(self, stop: asyncio.Event) -> None:
        """Serve the HTTP API and Studio at ``options.host:options.port`` (port 0: a free
        one; the address is logged). Before the first good codegen run, pages say so."""
        from framework.http.server import serve_app

        await serve_app(self.app, self.options.host, self.options.port, stop, name="fw dev")
