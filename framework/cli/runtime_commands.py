"""Runtime commands: ``fw worker``, ``fw start``, ``fw workflows``, ``fw instances``,
``fw instance``, ``fw event``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from framework.cli.output import (
    AppOption,
    JsonOption,
    app_root,
    configure_logging,
    console,
    errors,
    fail,
    print_json,
    run,
    stop_on_signals,
)

if TYPE_CHECKING:  # the runtime loads when a runtime command runs, not for `fw codegen`
    from framework.runtime.app import App
    from framework.runtime.handles import Instance
    from framework.runtime.records import InstanceStatus, StepRecord

REPORT_EVERY = 1.0
"""Seconds between two looks at the instance ``fw start --wait`` waits for."""
UNCLAIMED_GRACE = 2.0
"""Seconds a queued instance may wait for a worker before ``fw start --wait`` says none
claimed it."""

STATUS_STYLE = {
    "queued": "cyan",
    "running": "blue",
    "waiting": "yellow",
    "paused": "magenta",
    "complete": "green",
    "errored": "red",
    "terminated": "dim",
}

workflows_app = typer.Typer(help="The app's workflows.", no_args_is_help=True)
instances_app = typer.Typer(help="Instances of all workflows.", no_args_is_help=True)
instance_app = typer.Typer(help="One instance: show and control it.", no_args_is_help=True)
event_app = typer.Typer(help="Events for waiting instances.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the runtime commands to the ``fw`` CLI."""
    app.command("worker")(worker)
    app.command("start")(start)
    app.add_typer(workflows_app, name="workflows")
    app.add_typer(instances_app, name="instances")
    app.add_typer(instance_app, name="instance")
    app.add_typer(event_app, name="event")
    app.command("prune")(prune)
    app.command("replay")(replay)


def worker(
    app: Path | None = AppOption,
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", help="Instances run at once."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the app's instances until SIGTERM or Ctrl-C, then stop cleanly (exit 0)."""
    stopped = stop_on_signals()
    from framework.runtime.app import App
    from framework.runtime.worker import Worker

    root = app_root(app)
    configure_logging(verbose)

    async def main() -> None:
        runner = Worker(App.for_root(root), concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.request_stop)
        if not stopped.is_set():
            await runner.run()

    run(main)


def start(
    name: str = typer.Argument(..., help="The workflow's name."),
    params: str = typer.Option("null", "--params", "-p", help="The params as JSON."),
    id: str | None = typer.Option(None, "--id", help="The instance id (default: random)."),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for the instance to end, saying what it waits for."
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds to wait at most."),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Start an instance of workflow NAME (a worker runs it)."""
    root = app_root(app)
    data = _parse_json(params, "--params")
    started: list[str] = []

    async def main() -> tuple[Instance[Any], InstanceStatus[Any]]:
        from framework.runtime.app import App

        the_app = App.for_root(root)
        instance = await the_app.handle(name).create(data, id=id)
        if wait:
            started.append(instance.id)
            _say(f"started {instance.id} ({name}); waiting for it to end")
            await _wait_reporting(the_app, instance, timeout)
        return instance, await instance.status()

    try:
        instance, status = run(main)
    except KeyboardInterrupt:
        which = f" for {started[0]}; it goes on (`fw instance show {started[0]}`)"
        _say(f"stopped waiting{which if started else ''}")
        raise typer.Exit(130) from None
    created = {"created": instance.created, "params_match": instance.params_match}
    if not as_json and not instance.created:
        differ = "" if instance.params_match else "; its stored params differ from --params"
        console.print(f"{status.id} existed already: not started again{differ}", highlight=False)
    _show_status(status, [], as_json, extra=created)
    if status.status in ("errored", "terminated"):
        raise typer.Exit(1)


async def _wait_reporting(app: App, instance: Instance[Any], timeout: float | None) -> None:
    """Wait for ``instance`` to end (``ResultTimeoutError`` after ``timeout``), saying on
    stderr what it waits for whenever that changes."""
    from framework.errors import InstanceFailedError, InstanceTerminatedError

    reporter = asyncio.create_task(_report_waits(app, instance.id))
    try:
        with contextlib.suppress(InstanceFailedError, InstanceTerminatedError):
            await instance.result(timeout=timeout)
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)


async def _report_waits(app: App, instance_id: str) -> None:
    """Print why the instance has not ended each time that changes. A worker running it
    needs no word; an instance no worker claims gets one after ``UNCLAIMED_GRACE``."""
    from framework.runtime.waiting import pending_reason, waiting_for
    from framework.store.base import TERMINAL

    store = await app.store()
    last: object = None
    while True:
        await asyncio.sleep(REPORT_EVERY)
        row = await store.get_instance(instance_id)
        if row is None or row.status in TERMINAL:
            return
        now = app.clock.now()
        if row.status == "running" or (
            row.status == "queued" and now - row.updated_at < UNCLAIMED_GRACE
        ):
            last = None
            continue
        steps = await store.list_steps(instance_id)
        state = (row.status, row.wake_at, row.updated_at if row.status == "queued" else None,
                 waiting_for(steps))
        if state != last:
            last = state
            _say(f"{instance_id}: {pending_reason(row, steps, now)}")


def _say(text: str) -> None:
    """A progress line on stderr (stdout stays the result, for scripts)."""
    errors.print(text, markup=False, highlight=False)


@workflows_app.command("list")
def workflows_list(app: Path | None = AppOption, as_json: bool = JsonOption) -> None:
    """The declared workflows and their instance counts."""
    root = app_root(app)

    async def main() -> tuple[App, dict[str, dict[str, int]]]:
        from framework.runtime.app import App

        the_app = App.for_root(root)
        return the_app, await (await the_app.store()).count_by_status()

    the_app, counts = run(main)
    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "binding": e.binding,
            "class_name": e.__name__,
            "file": e.file,
            "counts": counts.get(e.name, {}),
        }
        for e in sorted(the_app.entrypoints.values(), key=lambda e: e.name)
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "binding", "class", "file", "instances")
    for row in rows:
        shown = ", ".join(f"{n} {s}" for s, n in sorted(row["counts"].items())) or "none"
        table.add_row(row["name"], row["binding"], row["class_name"], row["file"], shown)
    console.print(table)


@instances_app.command("list")
def instances_list(
    workflow: str | None = typer.Option(None, "--workflow", "-w"),
    status: str | None = typer.Option(None, "--status", "-s"),
    limit: int = typer.Option(50, "--limit"),
    cursor: str | None = typer.Option(None, "--cursor"),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Instances, newest first."""
    root = app_root(app)

    async def main() -> tuple[list[InstanceStatus[Any]], str | None]:
        from framework.runtime.app import App
        from framework.runtime.handles import instance_status

        store = await App.for_root(root).store()
        page = await store.list_instances(
            workflow=workflow, status=status, limit=limit, cursor=cursor
        )
        return [instance_status(row, Any) for row in page.instances], page.next_cursor

    instances, next_cursor = run(main)
    if as_json:
        print_json(
            {
                "instances": [i.model_dump(mode="json") for i in instances],
                "next_cursor": next_cursor,
            }
        )
        return
    table = Table("id", "workflow", "status", "created", "updated")
    for item in instances:
        table.add_row(
            item.id,
            item.workflow,
            _styled(item.status),
            f"{item.created_at:%Y-%m-%d %H:%M:%S}",
            f"{item.updated_at:%H:%M:%S}",
        )
    console.print(table)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


@instance_app.command("show")
def instance_show(
    instance_id: str, app: Path | None = AppOption, as_json: bool = JsonOption
) -> None:
    """An instance's status, output or error, and its step timeline."""
    root = app_root(app)

    async def main() -> tuple[InstanceStatus[Any], list[StepRecord]]:
        from framework.runtime.app import App
        from framework.runtime.handles import instance_status, step_record

        store = await App.for_root(root).store()
        row = await store.get_instance(instance_id)
        if row is None:
            from framework.errors import InstanceNotFoundError

            raise InstanceNotFoundError(instance_id)
        return instance_status(row, Any), [
            step_record(s) for s in await store.list_steps(instance_id)
        ]

    status, steps = run(main)
    _show_status(status, steps, as_json)


def _control(action: str, call: Callable[[Instance[Any]], Awaitable[None]]) -> Callable[..., None]:
    def command(instance_id: str, app: Path | None = AppOption, as_json: bool = JsonOption) -> None:
        root = app_root(app)

        async def main() -> InstanceStatus[Any]:
            from framework.runtime.app import App

            the_app = App.for_root(root)
            row = await (await the_app.store()).get_instance(instance_id)
            if row is None:
                from framework.errors import InstanceNotFoundError

                raise InstanceNotFoundError(instance_id)
            instance = the_app.instance_handle(row.workflow, instance_id)
            await call(instance)
            return await instance.status()

        status = run(main)
        if as_json:
            print_json(status.model_dump(mode="json"))
        else:
            console.print(f"{action} {instance_id}: now {_styled(status.status)}")

    command.__doc__ = f"{action.capitalize()} an instance."
    return command


instance_app.command("pause")(_control("paused", lambda i: i.pause()))
instance_app.command("resume")(_control("resumed", lambda i: i.resume()))


@instance_app.command("terminate")
def instance_terminate(
    instance_id: str,
    compensate: bool = typer.Option(
        False, "--compensate", help="Run rollbacks and on_failure before ending it."
    ),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """End an instance and its children now."""
    _control("terminated", lambda i: i.terminate(compensate))(instance_id, app, as_json)


@instance_app.command("export")
def instance_export(
    instance_id: str,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: stdout)."
    ),
    app: Path | None = AppOption,
) -> None:
    """Write an instance and its journal as JSON (for `fw replay`)."""
    root = app_root(app)

    async def main() -> dict[str, Any]:
        from framework.runtime.app import App
        from framework.runtime.replay import export_instance

        return await export_instance(App.for_root(root), instance_id)

    data = json.dumps(run(main), indent=2)
    if output is None:
        print(data)
    else:
        output.write_text(data + "\n")
        console.print(f"wrote {output}")


@instance_app.command("restart")
def instance_restart(
    instance_id: str,
    from_step: str | None = typer.Option(None, "--from-step", help="Rerun from this step."),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Run an instance again, from the top or from a step."""
    _control("restarted", lambda i: i.restart(from_step=from_step))(instance_id, app, as_json)


@event_app.command("send")
def event_send(
    instance_id: str,
    type: str = typer.Argument(..., help="The event type the instance waits for."),
    payload: str = typer.Argument("null", help="The payload as JSON."),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Send an event to an instance."""
    data = _parse_json(payload, "PAYLOAD")

    async def call(instance: Instance[Any]) -> None:
        await instance.send_event(type, data)

    _control(f"sent {type!r} to", call)(instance_id, app, as_json)


def _parse_json(text: str, what: str) -> Any:
    """``text`` parsed as JSON, or a clear error naming ``what``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not JSON: {exc}")
    except RecursionError:
        from framework.runtime.serialization import MAX_DEPTH

        fail(f"{what} is nested too deeply to read; fw stores at most {MAX_DEPTH} levels")


def _show_status(
    status: InstanceStatus[Any],
    steps: list[StepRecord],
    as_json: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    if as_json:
        data = {**status.model_dump(mode="json"), **(extra or {})}
        data["steps"] = [s.model_dump(mode="json") for s in steps]
        print_json(data)
        return
    title = f"[bold]{status.id}[/bold] ({status.workflow}) {_styled(status.status)}"
    console.print(f"{title}  version {status.version}")
    if status.output is not None:
        console.print(f"output: {json.dumps(_plain(status.output))}", highlight=False)
    for part, why in status.unreadable.items():
        console.print(f"[red]{part} unreadable:[/red] {escape(why)}", highlight=False)
    if status.error is not None:
        console.print(f"[red]error:[/red] {status.error}", highlight=False)
    if not steps:
        return
    from framework.runtime.durations import format_duration

    table = Table("step", "kind", "status", "attempts", "duration", "detail")
    for step in steps:
        label = step.name if step.count == 1 else f"{step.name} #{step.count}"
        duration = format_duration(step.duration) if step.duration is not None else ""
        detail = step.event_type or step.child_id or (str(step.error) if step.error else "")
        if step.status == "waiting" and step.wake_at is not None:
            detail = f"until {step.wake_at:%Y-%m-%d %H:%M:%S} {detail}".strip()
        table.add_row(label, step.kind, _styled(step.status), str(step.attempts), duration, detail)
    console.print(table)


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _plain(value: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(Any).dump_python(value, mode="json")


def prune(
    older_than: str | None = typer.Option(
        None, "--older-than", help="Delete ended instances older than this (e.g. '30 days')."
    ),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete ended instances past their retention (\\[runtime] success_retention,
    error_retention or retention in fw.toml), in batches; safe while workers run."""
    root = app_root(app)

    async def main() -> dict[str, int]:
        from framework.runtime.app import App
        from framework.runtime.durations import parse_duration
        from framework.runtime.retention import Retention, prune

        the_app = App.for_root(root)
        retention = Retention.of(the_app)
        if older_than is not None:
            seconds = parse_duration(older_than)
            retention = Retention(success=seconds, error=seconds)
        if not retention.configured:
            fail("no retention: pass --older-than or set [runtime] retention in fw.toml")
        return (await prune(the_app, retention)).deleted

    deleted = run(main)
    if as_json:
        print_json({"deleted": deleted})
    else:
        shown = ", ".join(f"{n} {status}" for status, n in deleted.items()) or "nothing"
        console.print(f"pruned {shown}")


def replay(
    file: Path = typer.Argument(..., help="A file written by `fw instance export`."),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Replay an exported journal against the current code; exit 1 on non-determinism."""
    root = app_root(app)
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{file}: cannot read the export: {exc}")

    async def main() -> Any:
        from framework.runtime.app import App
        from framework.runtime.replay import replay_export

        return await replay_export(App.for_root(root), data)

    report = run(main)
    if as_json:
        print_json({**report.model_dump(), "ok": report.ok})
    else:
        versions = f"recorded version {report.recorded_version}, current {report.current_version}"
        console.print(
            f"{report.instance_id} ({report.workflow}): replayed {report.replayed_steps} of "
            f"{report.journaled_steps} journaled steps; {versions}"
        )
        if report.stopped_at:
            console.print(f"stops at {report.stopped_at}, where a worker would go on")
        if report.nondeterminism:
            console.print(f"[red]non-determinism:[/red] {report.nondeterminism}", highlight=False)
        else:
            console.print("[green]ok:[/green] the current code replays this journal")
    if not report.ok:
        raise typer.Exit(1)
