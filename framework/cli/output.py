"""Shared CLI plumbing: consoles, error reporting without tracebacks, JSON output, the app."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import typer
from pydantic_core import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from framework.app_root import resolve_app_root
from framework.errors import FwError

T = TypeVar("T")

# Everything printed may hold user data (ids, names, errors, outputs): no markup, no emoji
# codes, no highlighting, so `pg-2:child:4` prints as written. Style goes through Text.
console = Console(soft_wrap=True, markup=False, emoji=False, highlight=False)
errors = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)

def command_group(help: str) -> typer.Typer:
    """A group of ``fw`` commands (``fw instance ...``): plain help, whose flags show no
    ``<bool>`` placeholder, and the group's help when run without a command."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


AppOption = typer.Option(None, "--app", help="The app folder (default: nearest fw.toml upwards).")
JsonOption = typer.Option(False, "--json", help="Print JSON for scripts.")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and exit with ``code``."""
    errors.print(labelled("error:", "red", message))
    raise typer.Exit(code)


def labelled(label: str, style: str, message: str) -> Text:
    """``label message`` with only the label styled (the message is printed as written)."""
    return Text.assemble((label, style), " ", message)


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


def print_table(table: Table, to: Console = console) -> None:
    """Print ``table`` without ever cutting a cell: each column is at least as wide as its
    header and its longest word (a ``no_wrap`` column, such as ids: its longest cell), and a
    terminal too narrow for that gets lines as long as needed (which it wraps) rather than
    ``9c8d84fe37ec…``. A table that fits is laid out as usual.

    Too wide for the terminal, the columns get their widths here, each between its least
    and its whole width (the room shared in proportion to what each lacks): rich's own
    squeeze could leave a column under its least width and the line then ran past the
    console's width, which cut its end (``unlimite``)."""
    columns = table.columns
    least = [
        max([_text_width(c.header, False)] + [_text_width(cell, c.no_wrap) for cell in c.cells])
        for c in columns
    ]
    whole = [
        max([w, _text_width(c.header, True)] + [_text_width(cell, True) for cell in c.cells])
        for w, c in zip(least, columns, strict=True)
    ]
    edges = 3 * len(columns) + 1  # a space each side of every cell, and the rules
    if sum(whole) + edges <= to.width:
        to.print(table)
        return
    width = max(to.width, sum(least) + edges)
    for column, size in zip(columns, _share(width - edges, least, whole), strict=True):
        column.width = size
    Console(
        file=to.file,
        width=width,
        force_terminal=to.is_terminal,
        no_color=to.no_color,
        markup=False,
        emoji=False,
        highlight=False,
    ).print(table)


def _share(room: int, least: list[int], whole: list[int]) -> list[int]:
    """Column widths adding up to ``room`` (at least ``sum(least)``), each from its least
    width up to its whole width, the room above the least shared in proportion to the
    width each column lacks."""
    sizes = list(least)
    lacking = [w - s for w, s in zip(whole, least, strict=True)]
    spare = min(room - sum(least), sum(lacking))
    if spare <= 0:
        return sizes
    total = sum(lacking)
    for i, lack in enumerate(lacking):
        sizes[i] += spare * lack // total
    for i in sorted(range(len(sizes)), key=lambda i: -lacking[i]):  # what rounding left
        if sum(sizes) >= sum(least) + spare:
            break
        if sizes[i] < whole[i]:
            sizes[i] += 1
    return sizes


def _text_width(cell: object, whole: bool) -> int:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    parts = text.splitlines() if whole else text.split()
    return max(map(len, parts), default=0)


def warn(location: str, message: str) -> None:
    """Print ``location: warning: message`` on stderr, once per command."""
    line = f"{location}: warning: {message}"
    if line not in _warned:
        _warned.add(line)
        errors.print(Text(line, style="yellow"))


_warned: set[str] = set()
_python_showwarning = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """fw's own warnings as ``warn`` lines, not as Python's two lines quoting fw's source."""
    if "framework.runtime.config" in sys.modules and isinstance(message, Warning):
        from framework.runtime.config import unknown_keys_warned

        found = unknown_keys_warned(message)
        if found is not None:
            from framework.codegen.model import display_path

            path, keys = found
            shown = display_path(path.parent, path.name)
            for key in keys:
                warn(shown if key.line is None else f"{shown}:{key.line}", key.message)
            return
    _python_showwarning(message, category, filename, lineno, file, line)


# Installed when the CLI loads (every command module imports this one), so that a warning of
# fw.toml prints the same whether the command or the runtime it uses reads the file.
warnings.showwarning = _show_warning


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
