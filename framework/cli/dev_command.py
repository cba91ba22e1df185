"""``fw dev``: regenerate on every save, run the app's instances, serve the API and Studio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from framework.cli.codegen_commands import AppOption, DevOptions, DevService, run_dev
from framework.cli.output import app_root, configure_logging, fail
from framework.cli.serve_command import ForwardedAllowIps

if TYPE_CHECKING:
    from framework.codegen.run import CodegenResult
    from framework.errors import WorkflowImportError
    from framework.runtime.app import App

LOG = logging.getLogger("fw.dev")


def register(app: typer.Typer) -> None:
    """Add ``fw dev`` to the ``fw`` app."""
    app.command("dev")(dev)


def dev(
    app: AppOption = None,
    host: Annotated[str, typer.Option(help="Address of the HTTP API and Studio.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the HTTP API and Studio.", min=0, max=65535)
    ] = 8787,
    forwarded_allow_ips: ForwardedAllowIps = None,
) -> None:
    """Watch and regenerate on every change, run a worker that reloads the workflows, and
    serve the HTTP API and Studio (Ctrl-C or SIGTERM stops, exit 0)."""
    options = DevOptions(app_root(app), host, port)
    from framework.http.server import bind_problem, env_read_token, env_token

    problem = bind_problem(host, env_token(), env_read_token())
    if problem is not None:
        fail(problem)
    configure_logging()
    session = DevSession(options, forwarded_allow_ips)
    from framework.errors import ListenError

    try:
        asyncio.run(session.run())
    except* ListenError as group:
        fail(str(group.exceptions[0]))
    raise typer.Exit(0)


class DevSession:
    """The runtime side of ``fw dev``: a worker started after the first good codegen run.
    After each later one, the workflow modules are imported in a child process first: if
    they all import, the app forgets its loaded code and loads the new (then warns of the
    in-flight instances the edit would break); if one fails, its file and line are logged
    and the worker keeps running the last good code."""

    def __init__(self, options: DevOptions, forwarded_allow_ips: str | None = None) -> None:
        self.options = options
        self.forwarded_allow_ips = forwarded_allow_ips
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

    async def regenerated(self, result: CodegenResult, changed: frozenset[Path]) -> None:
        """After each good codegen run: check the modules import, then load the new code."""
        from framework.runtime.import_check import import_problems

        problems = await import_problems(self.options.root)
        for problem in problems:
            LOG.error("%s", self._located(problem))
        started = self._generated.is_set()
        if problems and started:
            LOG.error("kept the last good workflows running; save a fix to reload them")
            return
        if started:
            self.app.reload()
        self._load_all()
        if started:
            LOG.info("workflows reloaded")
            await self._warn_in_flight()
        self._generated.set()

    def _located(self, problem: WorkflowImportError) -> str:
        """The problem, its file shown relative to the working directory (as codegen does)."""
        from framework.codegen.model import display_path

        where = display_path(self.options.root, "" if problem.file == "." else problem.file)
        if problem.workflow == "*":  # the app as a whole (its config, a hang, a crash)
            return f"{where}: {problem.error}"
        line = f":{problem.line}" if problem.line is not None else ""
        return f"{where}{line}: workflow {problem.workflow!r} cannot be imported: {problem.error}"

    def _load_all(self) -> None:
        """Import every workflow module now, so the worker keeps this code if a later save
        breaks one (a module it never loaded would otherwise be read as it is then)."""
        from framework.errors import FwError

        for name in self.app.entrypoints:
            with contextlib.suppress(FwError):  # reported by the import check
                self.app.definition(name)

    async def _warn_in_flight(self) -> None:
        """Warn of each in-flight instance the code as saved would break."""
        from framework.cli.in_flight import breakage_lines
        from framework.errors import FwError
        from framework.runtime.inflight import PATCH_HINT, check_in_flight

        try:
            report = await check_in_flight(self.app)
        except FwError as exc:
            LOG.warning("could not check the in-flight instances: %s", exc)
            return
        for line in breakage_lines(report):
            LOG.warning("this edit breaks in-flight instance %s", line)
        if report.broken:
            LOG.warning("%s", PATCH_HINT)

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

        await serve_app(
            self.app,
            self.options.host,
            self.options.port,
            stop,
            name="fw dev",
            forwarded_allow_ips=self.forwarded_allow_ips,
        )
