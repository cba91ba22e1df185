"""Code generation commands: ``init``, ``new workflow|step``, ``codegen``, ``check``, and the
watch loop of ``dev`` (``run_dev``), which ``dev_command`` runs beside a worker and the server."""

from __future__ import annotations

import asyncio
import inspect
import signal
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from framework.cli.output import app_root, command_group, console, errors, fail, print_json
from framework.codegen.model import Problem, display_path
from framework.errors import ScaffoldError

if TYPE_CHECKING:
    from framework.codegen.run import CodegenResult

AppOption = Annotated[
    Path | None,
    typer.Option(
        "--app",
        help="The app folder (the one holding fw.toml). Default: the nearest one upwards.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SEVERITY_STYLES = {"error": "red", "warning": "yellow", "info": "cyan"}

new_app = command_group("Scaffold a workflow or a reusable step.")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``fw`` app."""
    app.command("init")(init)
    app.add_typer(new_app, name="new")
    app.command("codegen")(codegen)
    app.command("check")(check)


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new app (created if missing).")],
    name: Annotated[
        str | None, typer.Option(help="[app] name in fw.toml. Default: the folder's name.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an app: fw.toml, workflows/, packages, and its (empty) generated code."""
    from framework.codegen.run import run_codegen
    from framework.codegen.scaffold import init_app

    try:
        written = init_app(directory, name)
    except ScaffoldError as exc:
        fail(str(exc))
    root = directory.resolve()
    result = run_codegen(root)
    if json_output:
        created = [str(path) for path in written]
        print_json({"root": str(root), "created": created, **_result_json(result)})
    else:
        for path in written:
            _say(f"created {_label(root, path)}")
        _print_codegen(result)
        _say(f"next: fw new workflow NAME --app {display_path(root, '')}")
    raise typer.Exit(0 if result.ok else 1)


@new_app.command("workflow")
def new_workflow(
    name: Annotated[str, typer.Argument(help="The workflow's name, like onboarding or data-sync.")],
    app: AppOption = None,
    folder: Annotated[str, typer.Option("--dir", help="Folder of the file, in the app.")] = (
        "workflows"
    ),
) -> None:
    """Write <dir>/<name>_workflow.py (a function-form workflow) and regenerate."""
    from framework.codegen.run import run_codegen
    from framework.codegen.scaffold import new_workflow as scaffold_workflow

    root = app_root(app)
    try:
        path = scaffold_workflow(root, name, folder)
    except ScaffoldError as exc:
        fail(str(exc))
    _say(f"created {_label(root, path)}")
    result = run_codegen(root)
    _print_codegen(result)
    raise typer.Exit(0 if result.ok else 1)


@new_app.command("step")
def new_step(
    name: Annotated[str, typer.Argument(help="The step's name, like charge-card.")],
    app: AppOption = None,
    folder: Annotated[str, typer.Option("--dir", help="Folder of the file, in the app.")] = "steps",
) -> None:
    """Write <dir>/<name>.py: a reusable step (define_step) with a handler and a rollback."""
    from framework.codegen.scaffold import new_step as scaffold_step

    root = app_root(app)
    try:
        path = scaffold_step(root, name, folder)
    except ScaffoldError as exc:
        fail(str(exc))
    _say(f"created {_label(root, path)}")


def codegen(
    app: AppOption = None,
    check_only: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 with a diff if output is stale.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Regenerate _generated/ and the [[workflows]] tables of fw.toml."""
    from framework.codegen.run import run_codegen

    result = run_codegen(app_root(app), check=check_only)
    if json_output:
        print_json(_result_json(result))
    else:
        _print_codegen(result)
    raise typer.Exit(0 if result.ok and not (check_only and result.changes) else 1)


@dataclass(frozen=True)
class DevOptions:
    """What ``fw dev`` watches and serves; the HTTP API and Studio bind to ``host:port``."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 8787


DevService = Callable[[asyncio.Event], Awaitable[None]]
OnRegenerated = Callable[["CodegenResult", frozenset[Path]], Awaitable[None] | None]


async def run_dev(
    options: DevOptions,
    *,
    on_success: OnRegenerated | None = None,
    services: Sequence[DevService] = (),
) -> None:
    """The ``fw dev`` loop: regenerate on change until SIGINT / SIGTERM.

    Args:
        options: the app and the address to serve on.
        on_success: called after each good codegen run, after it is reported (reload the
            workflows there), with the result and the paths that changed.
        services: more work to run beside the watch (a worker, the HTTP server), each given
            the stop event, which is set on SIGINT / SIGTERM or when any of them ends.
    """
    from framework.codegen.watch import CodegenWatcher

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def regenerated(result: CodegenResult, changed: frozenset[Path]) -> None:
        _print_codegen(result, stamp=True)
        if on_success is not None:
            outcome = on_success(result, changed)
            if inspect.isawaitable(outcome):
                await outcome

    watcher = CodegenWatcher(
        options.root,
        on_success=regenerated,
        on_problems=lambda result: _print_codegen(result, stamp=True, waiting=True),
    )
    _say(f"fw dev: watching {display_path(options.root, '')} (Ctrl-C to stop)")
    try:
        async with asyncio.TaskGroup() as group:
            for service in (watcher.run, *services):
                group.create_task(_until_stopped(service, stop))
    finally:
        stop.set()
    _say("fw dev: stopped")


async def _until_stopped(service: DevService, stop: asyncio.Event) -> None:
    try:
        await service(stop)
    finally:
        stop.set()


def check(
    app: AppOption = None,
    in_flight: Annotated[
        bool,
        typer.Option(
            "--in-flight",
            help="Also replay every in-flight instance of the configured store against the "
            "code as it is now, and list those it would break (NonDeterminismError).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Lint the app: unknown workflow targets (error), unknown keys of fw.toml (warning) and
    unused workflows (info); with --in-flight, the running instances a deploy of this code
    would break."""
    from framework.cli.in_flight import check_in_flight_of, show_in_flight
    from framework.codegen.lint import lint_app
    from framework.runtime.config import IGNORED_KEYS

    root = app_root(app)
    result = lint_app(root)
    result.add_findings(unknown_key_findings(root))
    with warnings.catch_warnings():  # the findings above say it: the runtime need not
        warnings.filterwarnings("ignore", f".*: {IGNORED_KEYS}: ", UserWarning)
        flight = check_in_flight_of(root) if in_flight else None
    ok = result.ok and (flight is None or flight.ok)
    counts = {s: sum(f.severity == s for f in result.findings) for s in SEVERITY_STYLES}
    if json_output:
        findings = [f.to_json(root) for f in result.findings]
        extra = {} if flight is None else {"in_flight": flight.model_dump()}
        print_json({"ok": ok, "counts": counts, "findings": findings, **extra})
    else:
        print_problems(result.findings, root, console)
        summary = (
            f"fw check: {_count(result.files_checked, 'file')}, "
            f"{_count(len(result.workflows), 'workflow')}: "
            f"{_count(counts['error'], 'error')}, "
            + f"{_count(counts['warning'], 'warning')}, " * bool(counts["warning"])
            + f"{counts['info']} info"
        )
        console.print(Text(summary, style="green" if result.ok else "red"))
        if flight is not None:
            show_in_flight(flight)
    raise typer.Exit(0 if ok else 1)


def unknown_key_findings(root: Path) -> list[Problem]:
    """Each key of fw.toml that fw ignores, as a warning (``unknown_key``)."""
    from framework.app_root import CONFIG_FILE
    from framework.runtime.config import find_unknown_keys

    return [
        Problem(CONFIG_FILE, key.line, None, key.message, "unknown_key", "warning")
        for key in find_unknown_keys(root)
    ]


def print_problems(problems: Iterable[Problem], root: Path, to: Console = errors) -> None:
    """Each problem on one line, ``path:line:col: severity: message  [code]``, never wrapped."""
    for problem in problems:
        to.print(Text(problem.format(root), style=SEVERITY_STYLES.get(problem.severity, "")))


def _print_codegen(result: CodegenResult, *, stamp: bool = False, waiting: bool = False) -> None:
    prefix = time.strftime("%H:%M:%S ") if stamp else ""
    root = result.root
    if not result.ok:
        print_problems(result.problems, root)
        failed = _count(sum(p.is_error for p in result.problems), "error")
        tail = "kept the last good output, waiting for a fix" if waiting else "nothing written"
        errors.print(Text(f"{prefix}fw codegen: {failed}; {tail}", style="red"))
        return
    if result.check and result.changes:
        for change in result.changes:
            console.out(change.diff(change.path.relative_to(root).as_posix()), end="")
        stale = ", ".join(_label(root, c.path) for c in result.changes)
        errors.print(Text(f"fw codegen --check: stale: {stale}; run `fw codegen`", style="red"))
        return
    written = [_label(root, c.path) for c in result.changes if c.action == "write"]
    removed = [_label(root, c.path) for c in result.changes if c.action == "delete"]
    done = "; ".join(
        [f"wrote {', '.join(written)}"] * bool(written)
        + [f"removed {', '.join(removed)}"] * bool(removed)
    )
    summary = f"{_count(len(result.workflows), 'workflow')}; {done or 'up to date'}"
    _say(f"{prefix}fw codegen: {summary} ({result.seconds:.2f} s)", style="green")


def _say(message: str, style: str = "") -> None:
    console.print(Text(message, style=style))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _label(root: Path, path: Path) -> str:
    return display_path(root, path.relative_to(root).as_posix())


def _result_json(result: CodegenResult) -> dict[str, Any]:
    root = result.root
    return {
        "ok": result.ok,
        "check": result.check,
        "up_to_date": result.up_to_date,
        "workflows": [w.to_dict() for w in result.workflows],
        "changes": [{"path": _label(root, c.path), "action": c.action} for c in result.changes],
        "problems": [p.to_json(root) for p in result.problems],
        "files_scanned": result.files_scanned,
        "files_parsed": result.files_parsed,
        "seconds": round(result.seconds, 4),
    }
