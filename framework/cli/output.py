"""Shared CLI plumbing: consoles, error reporting without tracebacks, JSON output, the app."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import typer
from pydantic_core import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from framework.app_root import resolve_app_root
from framework.errors import FwError

T = TypeVar("T")

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

AppOption = typer.Option(None, "--app", help="The app folder (default: nearest fw.toml upwards).")
JsonOption = typer.Option(False, "--json", help="Print JSON for scripts.")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and exit with ``code``."""
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Generator[None]:
    """Turn the errors a user can cause into one-line messages and exit 1."""
    try:
        yield
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid params: {problems}")
    except (FwError, ValueError) as exc:
        fail(str(exc))


def run(coroutine_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async command body, reporting user errors plainly; the stores it opened are
    closed before the command returns."""

    async def body() -> T:
        from framework.runtime.app import close_stores

        try:
            return await coroutine_fn()
        finally:
            await close_stores()

    with user_errors():
        return asyncio.run(body())


def app_root(app: Path | None) -> Path:
    """The app folder of ``--app``, or a clear error."""
    with user_errors():
        return resolve_app_root(app)


def stop_on_signals() -> threading.Event:
    """Note SIGTERM and SIGINT from now on, so a stop during start-up still exits 0."""
    stopped = threading.Event()

    def note(signum: int, frame: object) -> None:
        stopped.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, note)
    return stopped


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def configure_logging(verbose: bool = False) -> None:
    """Log fw's messages to stderr through rich, with structured fields shown."""
    handler: logging.Handler
    if errors.is_terminal:
        handler = RichHandler(console=errors, show_path=False, markup=False)
        text = "%(message)s"
    else:  # a log file or a pipe: one plain line per record, never wrapped
        handler = logging.StreamHandler(sys.stderr)
        text = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.addFilter(_StructuredFields())
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, handlers=[handler], format=text, force=True)
    logging.getLogger("fw").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("uvicorn.access", "watchfiles.main"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # the store logs outages itself


class _StructuredFields(logging.Filter):
    """Append the ``extra={"fw": {...}}`` fields of ``ctx.log`` calls to the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields: object = getattr(record, "fw", None)
        if isinstance(fields, dict) and not getattr(record, "_fw_done", False):
            items = cast(dict[str, object], fields).items()
            shown = " ".join(f"{k}={v}" for k, v in items if v is not None)
            record.msg = f"{record.msg} [{shown}]"
            record._fw_done = True
        return True
