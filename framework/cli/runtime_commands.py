"""Runtime commands: ``fw worker``, ``fw start``, ``fw workflows``, ``fw instances``,
``fw instance``, ``fw event``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from framework.cli.output import (
    AppOption,
    JsonOption,
    app_root,
    command_group,
    configure_logging,
    console,
    errors,
    fail,
    labelled,
    print_json,
    print_table,
    run,
    stop_on_signals,
)

if TYPE_CHECKING:  # the runtime loads when a runtime command runs, not for `fw codegen`
    from datetime import datetime

    from framework.runtime.app import App
    from framework.runtime.handles import Instance
    from framework.runtime.outcomes import Failure, Success
    from framework.runtime.records import InstanceStatus, LogRecord, StepRecord
    from framework.store.base import InstanceRow

REPORT_EVERY = 1.0
"""Seconds between two looks at the instance ``fw start --wait`` waits for."""
UNCLAIMED_GRACE = 2.0
"""Seconds a queued instance may wait for a worker before ``fw start --wait`` says none
claimed it."""

LEVEL_STYLE = {"debug": "dim", "info": "blue", "warning": "yellow", "error": "red"}
STATUS_STYLE = {
    "queued": "cyan",
    "running": "blue",
    "waiting": "yellow",
    "paused": "magenta",
    "complete": "green",
    "errored": "red",
    "terminated": "dim",
}

workflows_app = command_group("The app's workflows.")
instances_app = command_group("Instances of all workflows.")
instance_app = command_group("One instance: show and control it.")
event_app = command_group("Events for waiting instances.")


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
        None, "--concurrency", "-c", help="Instances run at once.", min=1
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: a free port).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1",
        "--metrics-host",
        help="Address of --metrics-port; any but loopback needs FW_API_TOKEN.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also log debug lines."),
) -> None:
    """Run the app's instances until SIGTERM or Ctrl-C, then stop cleanly (exit 0)."""
    stopped = stop_on_signals()
    from framework.http.server import bind_problem, env_read_token, env_token
    from framework.runtime.app import App
    from framework.runtime.worker import Worker

    root = app_root(app)
    problem = bind_problem(metrics_host, env_token(), env_read_token())
    if metrics_port is not None and problem:
        fail(problem.replace("the API and Studio", "metrics"))
    configure_logging(verbose)

    async def main() -> None:
        from framework.errors import ListenError

        the_app = App.for_root(root)
        runner = Worker(the_app, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.request_stop)
        if stopped.is_set():
            return
        if metrics_port is None:
            await runner.run()
            return
        from framework.http.server import serve_metrics

        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(serve_metrics(the_app, metrics_host, metrics_port, stop))
                try:
                    await runner.run()
                finally:
                    stop.set()
        except* ListenError as group_error:
            fail(str(group_error.exceptions[0]))

    run(main)


def start(
    name: str = typer.Argument(..., help="The workflow's name."),
    params: str | None = typer.Option(
        None, "--params", "-p", help="The params as JSON (default: null).", show_default=False
    ),
    id: str | None = typer.Option(None, "--id", help="The instance id (default: random)."),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for the instance to end, saying what it waits for."
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds to wait at most."),
    retention: str | None = typer.Option(
        None,
        "--retention",
        help="Keep it this long once ended (e.g. '7 days'), beating fw.toml's retention.",
    ),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Start an instance of workflow NAME (a worker runs it)."""
    root = app_root(app)
    data = None if params is None else _parse_json(params, "--params")
    keep = _parse_retention(retention)
    started: list[str] = []

    async def main() -> tuple[Instance[Any, Any], InstanceStatus[Any], Failure | None]:
        from framework.errors import ResultTimeoutError
        from framework.runtime.app import App

        the_app = App.for_root(root)
        instance = await _create(the_app, name, data, params is not None, id, keep)
        failure = None
        if wait:
            started.append(instance.id)
            if instance.created:
                _say(f"started {instance.id} ({name}); waiting for it to end")
            else:
                _say(f"{_existed(instance)}; waiting for it to end")
            try:
                outcome = await _wait_reporting(the_app, instance, timeout)
            except ResultTimeoutError:  # the error goes to stderr; where it is, to stdout
                if as_json:
                    steps = await instance.steps()
                    _show_status(await instance.status(), steps, True, _created(instance))
                raise
            failure = None if outcome else outcome
        return instance, await instance.status(), failure

    try:
        instance, status, failure = run(main)
    except KeyboardInterrupt:
        which = f" for {started[0]}; it goes on (`fw instance show {started[0]}`)"
        _say(f"stopped waiting{which if started else ''}")
        raise typer.Exit(130) from None
    extra = _created(instance)
    if failure is not None:
        extra["failure"] = failure.model_dump(mode="json", exclude={"steps"})
    if not as_json and not instance.created and not wait:  # --wait said it on stderr
        console.print(_existed(instance))
    _show_status(status, [] if failure is None else failure.steps, as_json, extra=extra)
    if failure is not None and not as_json:
        attempts = f" after {failure.attempts} attempt(s)" if failure.attempts else ""
        where = f"at step {failure.failed_step!r}{attempts}" if failure.failed_step else ""
        console.print(labelled("failed:", "red", f"{failure.status} {where}".strip()))
    if status.status in ("errored", "terminated"):
        raise typer.Exit(1)


async def _create(
    app: App, name: str, data: Any, given: bool, id: str | None, keep: float | None
) -> Instance[Any, Any]:
    """``fw start``'s instance; without ``--params`` (``given``) for a workflow whose params
    may not be null, an error naming the flag and what the workflow takes."""
    from pydantic import ValidationError

    try:
        return await app.handle(name).create(data, id=id, retention=keep)
    except ValidationError:
        if given:
            raise
        fail(_params_required(name, app.definition(name).params_type))


def _params_required(name: str, params_type: Any) -> str:
    """``--params is required: workflow 'orders' takes Order (JSON with order_id, amount)``."""
    from pydantic.errors import PydanticUserError

    from framework.runtime.serialization import adapter

    shown = params_type.__name__ if isinstance(params_type, type) else repr(params_type)
    try:
        required: list[str] = adapter(params_type).json_schema().get("required", [])
    except PydanticUserError:  # a type without a JSON schema: its name says enough
        required = []
    fields = f" (JSON with {', '.join(required)})" if required else ""
    return f"--params is required: workflow {name!r} takes {shown}{fields}"


def _created(instance: Instance[Any, Any]) -> dict[str, Any]:
    """Whether ``fw start`` created the instance, and whether the stored params are its own."""
    return {"created": instance.created, "params_match": instance.params_match}


def _existed(instance: Instance[Any, Any]) -> str:
    """What ``fw start`` says of an id that existed already."""
    differ = "" if instance.params_match else "; its stored params differ from --params"
    return f"{instance.id} existed already: not started again{differ}"


async def _wait_reporting(
    app: App, instance: Instance[Any, Any], timeout: float | None
) -> Success[Any] | Failure:
    """Wait for ``instance`` to end (``ResultTimeoutError`` after ``timeout``), saying on
    stderr what it waits for whenever that changes; how it ended."""
    reporter = asyncio.create_task(_report_waits(app, instance.id))
    try:
        return await instance.outcome(timeout=timeout)
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
    errors.print(text)


@workflows_app.command("list")
def workflows_list(app: Path | None = AppOption, as_json: bool = JsonOption) -> None:
    """The declared workflows and their instance counts."""
    root = app_root(app)

    async def main() -> tuple[App, dict[str, dict[str, int]]]:
        from framework.runtime.app import App

        the_app = App.for_root(root)
        the_app.entrypoints  # noqa: B018 - fails clearly when codegen never ran
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
    limits = the_app.concurrency_limits
    for row in rows:
        if row["name"] in limits:
            row["concurrency"] = limits[row["name"]].usage(row["counts"])
    if as_json:
        print_json(rows)
        return
    table = Table("name", "binding", "class")
    table.add_column("file", no_wrap=True)
    table.add_column("instances")
    if limits:
        table.add_column("concurrency")
    for row in rows:
        shown = ", ".join(f"{n} {s}" for s, n in sorted(row["counts"].items())) or "none"
        cells = [row["name"], row["binding"], row["class_name"], row["file"], shown]
        if limits:
            limit = limits.get(row["name"])
            cells.append("unlimited" if limit is None else limit.summary(row["counts"]))
        table.add_row(*cells)
    print_table(table)


@instances_app.command("list")
def instances_list(
    workflow: str | None = typer.Option(
        None, "--workflow", "-w", help="Only instances of this workflow."
    ),
    status: str | None = typer.Option(
        None, "--status", "-s", help="Only instances in this status (queued, waiting, ...)."
    ),
    limit: int = typer.Option(50, "--limit", help="Instances per page.", min=1, max=1000),
    cursor: str | None = typer.Option(
        None, "--cursor", help="Where the next page starts (printed under a full page)."
    ),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Instances, newest first."""
    root = app_root(app)
    if status is not None:
        _check_status(status)

    async def main() -> tuple[list[InstanceStatus[Any]], str | None]:
        from framework.runtime.app import App
        from framework.runtime.handles import instance_status
        from framework.runtime.waiting import waits_of

        the_app = App.for_root(root)
        store = await the_app.store()
        if workflow is not None:
            await _check_workflow(the_app, workflow)
        page = await store.list_instances(
            workflow=workflow, status=status, limit=limit, cursor=cursor
        )
        waits = await waits_of(store, page.instances)
        statuses = [instance_status(row, Any) for row in page.instances]
        return [
            s.model_copy(update={"waiting_for": waits.get(s.id, [])}) for s in statuses
        ], page.next_cursor

    instances, next_cursor = run(main)
    if as_json:
        print_json(
            {
                "instances": [i.model_dump(mode="json") for i in instances],
                "next_cursor": next_cursor,
            }
        )
        return
    if not instances:
        console.print("no instances" + (" on this page" if cursor else ""))
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for column in ("workflow", "status", "created", "updated"):
        table.add_column(column, no_wrap=column != "workflow")
    for item in instances:
        table.add_row(
            item.id,
            item.workflow,
            _styled(item.status) + _waits_text(item),
            f"{item.created_at:%Y-%m-%d %H:%M:%S}",
            f"{item.updated_at:%H:%M:%S}",
        )
    print_table(table)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


SHOWN_STEPS = 100
"""The most steps ``fw instance show`` prints as a table (the latest): 20,000 took 8 s."""

InstanceIdArgument = typer.Argument(
    ...,
    help="The instance's id, or a start of it that no other id shares.",
    metavar="ID",
    show_default=False,
)


async def find_instance(app: App, typed: str) -> InstanceRow:
    """The instance ``typed`` names (its id or a unique start of it), else a clear error."""
    from framework.runtime.instance_ids import find_instance as find

    return await find(await app.store(), typed)


@instance_app.command("show")
def instance_show(
    instance_id: str = InstanceIdArgument,
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
    whole_traceback: bool = typer.Option(
        False,
        "--traceback",
        help="For an errored instance, print the whole stored traceback instead of the line "
        "of your code where it failed.",
    ),
) -> None:
    """An instance's status, output or error (and where in your code it failed), and its
    step timeline."""
    root = app_root(app)

    async def main() -> tuple[InstanceStatus[Any], list[StepRecord]]:
        from framework.runtime.app import App
        from framework.runtime.handles import instance_status, is_terminal, step_record

        the_app = App.for_root(root)
        row = await find_instance(the_app, instance_id)
        steps = await (await the_app.store()).list_steps(row.id)
        ended = is_terminal(row.status)
        return instance_status(row, Any, steps), [step_record(s, ended) for s in steps]

    status, steps = run(main)
    _show_status(status, steps, as_json)
    traceback = None if as_json else _failure_traceback(status, steps)
    if traceback is not None and whole_traceback:
        console.out(traceback.rstrip("\n"), highlight=False)
    elif traceback is not None:
        _show_failure_place(root, traceback)


_FRAME = re.compile(r'^[ |]*File "(?P<file>[^"\n]+)", line (?P<line>\d+), in (?P<function>.+)$')
_CHAINED = ("The above exception was the direct cause", "During handling of the above exception")


def _failure_traceback(status: InstanceStatus[Any], steps: list[StepRecord]) -> str | None:
    """The stored traceback of an instance's error: its own (raised in the workflow body) or,
    for a step's error, that of the step's last failed attempt."""
    error = status.error
    if error is None or error.traceback is not None:
        return None if error is None else error.traceback
    failed = [s for s in steps if s.name == error.step and s.error is not None]
    return failed[-1].error.traceback if failed and failed[-1].error is not None else None


def _show_failure_place(root: Path, traceback: str) -> None:
    """``failed at: workflows/greeting_workflow.py:5 in greeting`` and the source of that
    line, from the stored traceback (``--traceback`` prints all of it)."""
    from framework.codegen.model import display_path

    lines = traceback.splitlines()
    chained = [i for i, line in enumerate(lines) if line.startswith(_CHAINED)]
    last = lines[chained[-1] + 1 :] if chained else lines  # the exception the instance got
    frames = [(i, m) for i, line in enumerate(last) if (m := _FRAME.match(line)) is not None]
    if not frames:
        return
    at, frame = frames[_innermost_of_yours(root, [Path(m["file"]) for _, m in frames])]
    file = Path(frame["file"])
    shown = display_path(file.parent, file.name) if file.is_absolute() else file.as_posix()
    console.print(
        labelled("failed at:", "red", f"{shown}:{frame['line']} in {frame['function']}")
    )
    source = last[at + 1] if at + 1 < len(last) else ""
    if _indent(source) > _indent(last[at]) and source.strip():
        console.print(Text(f"    {source.strip()}"))
    if len(frames) > 1 or chained:
        console.print(Text("(--traceback prints the whole traceback)", style="dim"))


def _innermost_of_yours(root: Path, files: list[Path]) -> int:
    """The index of the innermost frame in the app's folder; else in code neither fw's nor
    the standard library's (a package of yours beside the app); else the innermost."""
    from framework.runtime.failures import is_user_file

    in_app = [i for i, f in enumerate(files) if f.is_absolute() and _inside(f, root)]
    yours = [i for i, f in enumerate(files) if is_user_file(str(f))]
    return (in_app or yours or [len(files) - 1])[-1]


def _inside(file: Path, root: Path) -> bool:
    return file.resolve().is_relative_to(root)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" |"))


def _control(
    action: str, call: Callable[[Instance[Any, Any]], Awaitable[None]]
) -> Callable[..., None]:
    def command(
        instance_id: str = InstanceIdArgument,
        app: Path | None = AppOption,
        as_json: bool = JsonOption,
    ) -> None:
        root = app_root(app)

        async def main() -> InstanceStatus[Any]:
            from framework.runtime.app import App

            the_app = App.for_root(root)
            row = await find_instance(the_app, instance_id)
            instance = the_app.instance_handle(row.workflow, row.id)
            await call(instance)
            return await instance.status()

        status = run(main)
        if as_json:
            print_json(status.model_dump(mode="json"))
        else:
            console.print(Text.assemble(f"{action} {status.id}: now ", _styled(status.status)))

    command.__doc__ = f"{action.capitalize()} an instance."
    return command


instance_app.command("pause")(_control("paused", lambda i: i.pause()))
instance_app.command("resume")(_control("resumed", lambda i: i.resume()))


@instance_app.command("logs")
def instance_logs(
    instance_id: str = InstanceIdArgument,
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """An instance's ctx.log lines, oldest first (the last 1,000 are kept)."""
    root = app_root(app)

    async def main() -> list[LogRecord]:
        from framework.runtime.app import App

        the_app = App.for_root(root)
        row = await find_instance(the_app, instance_id)
        return await the_app.instance_handle(row.workflow, row.id).logs()

    lines = run(main)
    if as_json:
        print_json([line.model_dump(mode="json") for line in lines])
        return
    for line in lines:
        step = "" if line.step is None else f" [{line.step}]"
        fields = "".join(f" {key}={json.dumps(value)}" for key, value in line.fields.items())
        console.print(
            Text.assemble(
                f"{line.at:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " ",
                (f"{line.level:<7}", LEVEL_STYLE.get(line.level, "")),
                f"{step} {line.message}{fields}",
            )
        )


@instance_app.command("retry-now")
def instance_retry_now(
    instance_id: str = InstanceIdArgument,
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Run the pending retry of a step now instead of at its scheduled time."""
    _control("retry due now for", lambda i: i.retry_now())(instance_id, app, as_json)


@instance_app.command("terminate")
def instance_terminate(
    instance_id: str = InstanceIdArgument,
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
    instance_id: str = InstanceIdArgument,
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

        the_app = App.for_root(root)
        return await export_instance(the_app, (await find_instance(the_app, instance_id)).id)

    data = json.dumps(run(main), indent=2)
    if output is None:
        print(data)
    else:
        output.write_text(data + "\n")
        console.print(f"wrote {output}")


@instance_app.command("restart")
def instance_restart(
    instance_id: str = InstanceIdArgument,
    from_step: str | None = typer.Option(
        None, "--from-step", help="Rerun from this step (keep the journal before it)."
    ),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Run an instance again, from the top or from a step."""
    _control("restarted", lambda i: i.restart(from_step=from_step))(instance_id, app, as_json)


@event_app.command("send")
def event_send(
    instance_id: str = InstanceIdArgument,
    type: str = typer.Argument(..., help="The event type the instance waits for."),
    payload: str = typer.Argument("null", help="The payload as JSON."),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Send an event to an instance."""
    data = _parse_json(payload, "PAYLOAD")

    async def call(instance: Instance[Any, Any]) -> None:
        await instance.send_event(type, data)

    _control(f"sent {type!r} to", call)(instance_id, app, as_json)


def _parse_duration(text: str, option: str) -> float:
    """A duration option in seconds, or a clear error naming it."""
    from framework.runtime.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def _parse_retention(text: str | None) -> float | None:
    """``--retention`` in seconds, or a clear error naming it."""
    from framework.runtime.durations import parse_retention

    try:
        return parse_retention(text)
    except ValueError as exc:
        fail(f"--{exc}")


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
    console.print(
        Text.assemble(
            (status.id, "bold"),
            f" ({status.workflow}) ",
            _styled(status.status),
            f"  version {status.version}",
        )
    )
    console.print(_times(status), markup=False, highlight=False)
    console.print(_runs(status), markup=False, highlight=False)
    if status.output is not None:
        console.print(f"output: {json.dumps(_plain(status.output))}")
    for part, why in status.unreadable.items():
        console.print(labelled(f"{part} unreadable:", "red", why))
    if status.error is not None:
        console.print(labelled("error:", "red", str(status.error)))
    from framework.runtime.waiting import wait_label

    for wait in status.waiting_for:
        console.print(Text(f"waiting for: {wait_label(wait)}"))
    if not steps:
        return
    from framework.runtime.durations import format_duration

    hidden = len(steps) - SHOWN_STEPS
    if hidden > 0:
        console.print(
            f"the {hidden} earlier steps are not shown, only the latest {SHOWN_STEPS}; "
            "--json lists them all"
        )
    table = Table("step", "kind", "status", "attempts", "duration")
    table.add_column("detail", overflow="fold")
    for step in steps[-SHOWN_STEPS:]:
        label = step.name if step.count == 1 else f"{step.name} #{step.count}"
        duration = format_duration(step.duration) if step.duration is not None else ""
        detail = step.event_type or step.child_id or (str(step.error) if step.error else "")
        if step.status == "waiting" and step.wake_at is not None:
            detail = f"until {step.wake_at:%Y-%m-%d %H:%M:%S} {detail}".strip()
        table.add_row(label, step.kind, _styled(step.status), str(step.attempts), duration, detail)
    print_table(table)


def _waits_text(status: InstanceStatus[Any]) -> str:
    """What a waiting instance waits for, after its status in a list (plain text)."""
    from framework.runtime.waiting import wait_label

    return "".join(f"\n{wait_label(wait)}" for wait in status.waiting_for)


def _times(status: InstanceStatus[Any]) -> str:
    """``created 2026-11-30 10:00:05 UTC (3 min ago), ended ... after 4.2 s``."""
    import time

    from framework.runtime.durations import format_duration, format_relative

    def moment(value: datetime) -> str:
        ago = format_relative(value.timestamp() - time.time())
        return f"{value:%Y-%m-%d %H:%M:%S} UTC ({ago})"

    text = f"created {moment(status.created_at)}"
    if status.ended_at is not None and status.duration is not None:
        return f"{text}, ended {moment(status.ended_at)} after {format_duration(status.duration)}"
    if status.updated_at == status.created_at:
        return text
    return f"{text}, updated {moment(status.updated_at)}"


def _runs(status: InstanceStatus[Any]) -> str:
    """``2 runs; kept 7 days once ended`` (its own retention, when it has one)."""
    from framework.runtime.durations import format_duration

    text = f"{status.runs} run{'' if status.runs == 1 else 's'}"
    if status.retention is not None:
        text += f"; kept {format_duration(status.retention)} once ended"
    return text


def _styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, "white"))




def _check_status(status: str) -> None:
    """``--status``: one of the statuses, else an error with close matches."""
    import difflib

    from framework.store.base import STATUSES

    if status not in STATUSES:
        close = difflib.get_close_matches(status, STATUSES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fail(f"unknown status {status!r}; {hint}use one of {', '.join(STATUSES)}")


async def _check_workflow(app: App, workflow: str) -> None:
    """``--workflow``: a declared workflow or one with stored instances, else an error with
    close matches."""
    from framework.errors import UnknownWorkflowError

    known = set(app.entrypoints) | set(await (await app.store()).count_by_status())
    if workflow not in known:
        raise UnknownWorkflowError(workflow, sorted(known))


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
    """Delete ended instances past their retention, in batches; safe while workers run.

    An instance's retention is its own (``fw start --retention``), else its workflow's
    (``retention``, ``success_retention``, ``error_retention`` on its [[workflows]] table of
    fw.toml), else the app's (the same keys under [runtime]); --older-than replaces the
    last two."""
    root = app_root(app)
    seconds = None if older_than is None else _parse_duration(older_than, "--older-than")

    async def main() -> tuple[dict[str, int], bool]:
        from framework.runtime.app import App
        from framework.runtime.retention import Retention, prune, retention_configured

        the_app = App.for_root(root)
        retention = None if seconds is None else Retention(success=seconds, error=seconds)
        configured = retention is not None or retention_configured(the_app)
        return (await prune(the_app, retention)).deleted, configured

    deleted, configured = run(main)
    if as_json:
        print_json({"deleted": deleted})
    else:
        shown = ", ".join(f"{n} {status}" for status, n in deleted.items()) or "nothing"
        console.print(f"pruned {shown}")
        if not configured:
            console.print(
                "fw.toml sets no retention, so only instances started with their own were "
                "pruned; pass --older-than or set [runtime] retention"
            )


def replay(
    file: Path = typer.Argument(..., help="A file written by `fw instance export`."),
    app: Path | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Replay an exported journal against the current code; exit 1 on non-determinism."""
    root = app_root(app)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
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
            console.print(labelled("non-determinism:", "red", report.nondeterminism))
        else:
            console.print(labelled("ok:", "green", "the current code replays this journal"))
    if not report.ok:
        raise typer.Exit(1)
