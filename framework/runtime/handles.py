"""Handles: start and manage instances of a workflow (``workflows.get(name)``).

Public (``framework.WorkflowHandle``, ``framework.Instance``), and a contract with generated
code, whose ``workflows.py`` imports ``WorkflowHandle`` from this module by name for its types
(see ``framework.runtime.registry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import typing
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypedDict, cast

from typing_extensions import TypeVar

from framework.errors import (
    InstanceFailedError,
    InstanceNotFoundError,
    InstanceTerminatedError,
    InvalidInstanceIdError,
    ResultTimeoutError,
    SerializationError,
    UnknownStepError,
)
from framework.runtime import handoff, serialization
from framework.runtime.attempts import attempt_records
from framework.runtime.durations import Duration, parse_retention
from framework.runtime.ids import check_instance_id, is_valid_instance_id, new_instance_id
from framework.runtime.journal import check_step_name
from framework.runtime.logs import log_record
from framework.runtime.outcomes import Failure, Success, failure_of, success_of
from framework.runtime.records import (
    AnyInstanceStatus,
    ErrorInfo,
    InstanceStatus,
    LogRecord,
    StepRecord,
    timestamp,
)
from framework.runtime.waiting import waiting_for
from framework.store.base import (
    LOG_LIMIT,
    STATUSES,
    TERMINAL,
    InstanceRow,
    NewInstance,
    Status,
    StepRow,
)

if TYPE_CHECKING:
    from framework.runtime.app import App
    from framework.runtime.definition import Branch, WorkflowDefinition
    from framework.runtime.sync import SyncInstance, SyncWorkflowHandle


class AnyEvents(Protocol):
    """``send_event`` of an instance whose event types are not tracked (``Instance[P, O]``):
    any ``(type, payload)``, checked at run time only. A typed handle's instances have instead
    a protocol generated per workflow, with one overload per event type it waits for."""

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, None]: ...


class AnySyncEvents(Protocol):
    """``send_event`` of the synchronous facade (``instance.sync``) when event types are not
    tracked; a typed handle's has a blocking twin of its generated events protocol."""

    def __call__(self, *args: Any, **kwargs: Any) -> None: ...


P = TypeVar("P")
O = TypeVar("O")
E = TypeVar("E", covariant=True, bound=AnyEvents, default=AnyEvents)
S = TypeVar("S", covariant=True, bound=AnySyncEvents, default=AnySyncEvents)

REMOTE_POLL_CAP = 0.1
"""Longest wait between two reads of an instance whose worker runs in another process."""
LOCAL_POLL_CAP = 1.0
"""The same with a worker in this process, which signals the end (polling only guards)."""


class BatchItem(TypedDict, Generic[P], total=False):
    """One instance of ``create_batch``: its params and, optionally, its id."""

    params: P | Mapping[str, Any] | None
    id: str


def _journalable(name: str) -> bool:
    """Whether a journal could hold a step of this name (else no restart can name it)."""
    try:
        check_step_name(name)
    except (TypeError, ValueError):
        return False
    return True


_BATCH_KEYS = ("params", "id")


def _check_batch_item(index: int, item: object) -> None:
    """Refuse an item of ``create_batch`` that is not a ``BatchItem``: a misspelt key would
    otherwise start an instance without what it meant (a random id for ``"idd"``)."""
    if not isinstance(item, Mapping):
        raise TypeError(
            f"item {index} of the batch is of type {type(item).__name__}, not a dict with "
            "'params' and, optionally, 'id'"
        )
    keys = typing.cast(Mapping[object, object], item).keys()
    unknown = sorted(str(key) for key in keys if key not in _BATCH_KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], _BATCH_KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"item {index} of the batch has unknown key {unknown[0]!r:.100}{hint} (an item "
            "holds 'params' and, optionally, 'id')"
        )


@dataclass(frozen=True)
class InstancePage(Generic[O]):
    """A page of ``handle.list(...)``: instances newest first, and the next page's cursor."""

    instances: list[InstanceStatus[O]]
    next_cursor: str | None


class WorkflowHandle(Generic[P, O, E, S]):
    """Starts and finds instances of one workflow, typed by its params ``P``, its output ``O``
    and the ``send_event`` of its instances ``E`` (the event types it waits for; ``S``: the
    same for the synchronous facade)."""

    def __init__(self, app: App, name: str) -> None:
        self._app = app
        self.name = name

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.name!r}>"

    @property
    def app(self) -> App:
        """The app this handle starts instances in."""
        return self._app

    async def create(
        self,
        params: P | Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        retention: Duration | None = None,
    ) -> Instance[P, O, E, S]:
        """Start an instance; a worker runs it.

        ``params`` is the declared type or plain JSON-like data validated into it. With an
        ``id`` that exists, returns that instance (starting is idempotent): the returned
        instance's ``created`` says which happened, and ``params_match`` whether the stored
        params equal these. ``retention``: how long to keep it once it has ended (``fw
        prune`` and workers delete it then), beating its workflow's and the app's retention.

        Raises:
            pydantic.ValidationError: invalid params; nothing is stored.
            PayloadTooLargeError: the params are over the payload limit.
            SerializationError: the params could not be read back as JSON (nested deeper
                than 200 levels, or holding NaN or infinity); nothing is stored.
            ConcurrencyKeyError: the workflow counts its concurrency by a params path the
                params hold no value at; nothing is stored.
            InvalidInstanceIdError: ``id`` breaks the id rule (1-100 characters of
                ``[A-Za-z0-9_.:-]``); nothing is stored.
            InstanceIdConflictError: ``id`` belongs to an instance of another workflow.
            ValueError: ``retention`` is not a duration; nothing is stored.
        """
        if id is not None:
            check_instance_id(id)
        seconds = parse_retention(retention)
        value = serialization.validate(params, self._definition.params_type)
        new = self._new_instances(
            [(value, id, f"the params of workflow {self.name!r}")], retention=seconds
        )
        (instance,) = await self._store(new)
        return instance

    async def create_batch(self, items: Sequence[BatchItem[P]]) -> list[Instance[P, O, E, S]]:
        """Start several instances in one transaction: all of them, or none.

        Every item is checked before any is stored, and the ids again in the transaction
        that stores them. Returns the instances in order (see ``create`` for ids that exist).

        Raises:
            pydantic.ValidationError: invalid params; every invalid item is reported, each
                error's ``loc`` starting with the item's index.
            InvalidInstanceIdError, PayloadTooLargeError, SerializationError: as for
                ``create``; the message names the item.
            InstanceIdConflictError: two items give one id, or an id belongs to an instance
                of another workflow (``index`` and ``instance_id`` name it).
        """
        for index, item in enumerate(items):
            _check_batch_item(index, item)
            instance_id = item.get("id")
            if instance_id is not None and not is_valid_instance_id(instance_id):
                raise InvalidInstanceIdError(instance_id, index)
        params_type = self._definition.params_type
        values = serialization.validate_each([item.get("params") for item in items], params_type)
        new = self._new_instances(
            [
                (value, item.get("id"), self._item_params(index, item))
                for index, (item, value) in enumerate(zip(items, values, strict=True))
            ]
        )
        return await self._store(new)

    def branch(self, params: P | Mapping[str, Any] | None = None) -> Branch[O]:
        """A branch of ``ctx.parallel`` running this workflow as a child with ``params``:
        its params are checked against ``P`` and its output typed ``O``."""
        from framework.runtime.definition import Branch

        return Branch(self.name, params)

    @property
    def _definition(self) -> WorkflowDefinition:
        return self._app.definition(self.name)

    def _item_params(self, index: int, item: BatchItem[P]) -> str:
        named = f" (id {item['id']!r})" if "id" in item else ""
        return f"the params of item {index}{named} of a batch of workflow {self.name!r}"

    def _new_instances(
        self, entries: list[tuple[Any, str | None, str]], retention: float | None = None
    ) -> list[NewInstance]:
        """The rows to store for (validated params, id or None, what to call the params);
        refuses params whose JSON would not read back."""
        limit = self._app.settings.runtime.payload_limit
        params_type = self._definition.params_type
        now = self._app.clock.now()
        version = self._app.version_of(self.name)
        concurrency = self._app.concurrency_limits.get(self.name)
        new: list[NewInstance] = []
        for params, instance_id, what in entries:
            data = serialization.dump(params, params_type, limit, what)
            key = None if concurrency is None else concurrency.key_of(data)
            new.append(
                NewInstance(
                    instance_id or new_instance_id(),
                    self.name,
                    data,
                    now,
                    version,
                    retention=retention,
                    concurrency_key=key,
                )
            )
        return new

    async def _store(self, new: list[NewInstance]) -> list[Instance[P, O, E, S]]:
        store = await self._app.store()
        outcomes = await handoff.create_instances(self._app.handoffs, store, new)
        if started := sum(outcome.created for outcome in outcomes):
            self._app.metrics.instance_started(self.name, started)
        return [
            Instance(
                self._app,
                self.name,
                outcome.row.id,
                created=outcome.created,
                params_match=outcome.created or serialization.same_json(outcome.row.params, sent),
                created_status=outcome.row.status,
            )
            for outcome, sent in zip(outcomes, (n.params for n in new), strict=True)
        ]

    async def get(self, id: str) -> Instance[P, O, E, S]:
        """The instance ``id`` of this workflow.

        Raises:
            InstanceNotFoundError: no instance of this workflow has that id.
        """
        row = await (await self._app.store()).get_instance(id)
        if row is None or row.workflow != self.name:
            raise InstanceNotFoundError(id)
        return Instance(self._app, self.name, id)

    async def list(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> InstancePage[O]:
        """Instances of this workflow, newest first; pass ``next_cursor`` for the next page.

        Raises:
            ValueError: ``status`` is not a status, or ``limit`` is below 1, or ``cursor`` is
                not a page's ``next_cursor``.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r:.100}; use one of {', '.join(STATUSES)}")
        given = typing.cast(object, limit)
        if not isinstance(given, int) or isinstance(given, bool) or given < 1:
            raise ValueError(f"limit {limit!r:.100} is not a number of instances (1 or more)")
        store = await self._app.store()
        page = await store.list_instances(
            workflow=self.name, status=status, limit=limit, cursor=cursor
        )
        output_type = self._app.definition(self.name).output_type
        return InstancePage(
            [instance_status(row, output_type) for row in page.instances], page.next_cursor
        )

    @property
    def sync(self) -> SyncWorkflowHandle[P, O, S]:
        """The same handle for synchronous code (Flask, Django, scripts)."""
        from framework.runtime.sync import SyncWorkflowHandle

        return SyncWorkflowHandle(self)


class Instance(Generic[P, O, E, S]):
    """One instance of a workflow, by id, typed by its params ``P``, its output ``O`` and its
    ``send_event`` ``E`` (``S`` for ``.sync``); ``Instance[P, O]``: event types not tracked.

    Attributes:
        created: from ``create``: True when that call stored the instance, False when the
            id existed (None for an instance found otherwise).
        params_match: from ``create``: whether the stored params equal those given
            (always True when ``created``; None for an instance found otherwise).
        created_status: from ``create``: the status the instance had when that call
            committed (``queued``, or ``running`` when a worker of this process took it
            then; any status for an id that existed), None for an instance found otherwise.
    """

    def __init__(
        self,
        app: App,
        workflow: str,
        id: str,
        *,
        created: bool | None = None,
        params_match: bool | None = None,
        created_status: Status | None = None,
    ) -> None:
        self._app = app
        self.workflow = workflow
        self.id = id
        self.created = created
        self.params_match = params_match
        self.created_status = created_status

    def __repr__(self) -> str:
        return f"<Instance {self.workflow!r} {self.id!r}>"

    @property
    def app(self) -> App:
        """The app this instance belongs to."""
        return self._app

    async def status(self) -> InstanceStatus[O]:
        """The instance's status, typed output and error, and what it waits for."""
        row = await self._row()
        waiting: list[StepRow] = []
        if row.status == "waiting":
            waiting = await (await self._app.store()).list_waiting_steps([self.id])
        return instance_status(row, self._app.definition(self.workflow).output_type, waiting)

    async def result(self, timeout: float | None = None) -> O:
        """Wait for the instance to end and return its output.

        Raises:
            InstanceFailedError: it ended errored (``.error`` says why).
            InstanceTerminatedError: it was terminated.
            ResultTimeoutError: ``timeout`` seconds passed first.
            SerializationError: its stored output cannot be read (``status()`` shows why).
        """
        row = await self._wait_until_ended(timeout)
        status = instance_status(row, self._app.definition(self.workflow).output_type)
        if status.status == "errored":
            raise InstanceFailedError(self.id, status.error)
        if status.status == "terminated":
            raise InstanceTerminatedError(self.id)
        if "output" in status.unreadable:
            raise SerializationError(
                f"the output of instance {self.id!r} cannot be read: {status.unreadable['output']}"
            )
        return status.output  # type: ignore[return-value]

    async def outcome(self, timeout: float | None = None) -> Success[O] | Failure:
        """Wait for the instance to end and say how, without raising for a failure: a
        ``Success`` with the typed output, or a ``Failure`` with the failed step, its
        attempts, the error and the journal. ``if outcome:`` tells them apart (and narrows
        the type); ``result()`` is the same wait, raising instead.

        Raises:
            ResultTimeoutError: ``timeout`` seconds passed first (the instance has no outcome
                yet).
            SerializationError: it completed but its stored output cannot be read.
        """
        row = await self._wait_until_ended(timeout)
        status = instance_status(row, self._app.definition(self.workflow).output_type)
        if status.status == "complete":
            if "output" in status.unreadable:
                raise SerializationError(
                    f"the output of instance {self.id!r} cannot be read: "
                    f"{status.unreadable['output']}"
                )
            return cast(Success[O], success_of(status))
        return failure_of(status, await self.steps())

    async def _wait_until_ended(self, timeout: float | None) -> InstanceRow:
        """Poll the stored row, backing off, until it ends; a worker of this process ending
        it wakes the wait at once (then polling only guards against other processes).

        When that worker's own commit ended it, the row returned is the last one read with
        the status, output and error that commit stored (``signals.Ended``): what
        ``result()`` and ``outcome()`` read of it, with no second read."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.001
        with self._app.clock.awaiting(), self._app.signals.watching(self.id) as watch:
            # The first read waits for no other: with a worker in this process, the
            # instance may well have ended by then (or will signal its end). It lets that
            # worker go first: an instance just handed to it starts (on SQLite, alone, it
            # may well run to its end) before a read that would only find it not started.
            local = self._app.local_workers > 0
            if local:
                await asyncio.sleep(0)
            row = await self._awaited_row(first=local)
            while row.status not in TERMINAL:
                if deadline is not None and loop.time() >= deadline:
                    raise await self._timed_out(row, timeout or 0.0)
                local = self._app.local_workers > 0
                delay = LOCAL_POLL_CAP if local else min(delay * 2, REMOTE_POLL_CAP)
                pause = delay if deadline is None else min(delay, max(0.0, deadline - loop.time()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await watch.event.wait()
                watch.event.clear()
                ended = watch.ended
                if ended is None:
                    row = await self._awaited_row()
                else:
                    row = replace(row, status=ended.status, output=ended.output, error=ended.error)
        return row

    async def _timed_out(self, row: InstanceRow, timeout: float) -> ResultTimeoutError:
        from framework.runtime.waiting import pending_reason

        steps = await (await self._app.store()).list_steps(self.id)
        reason = pending_reason(row, steps, self._app.clock.now())
        return ResultTimeoutError(self.id, timeout, row.status, reason)

    async def steps(self) -> list[StepRecord]:
        """The step timeline: each step's kind, status, attempts, timing, output and error."""
        store = await self._app.store()
        ended = is_terminal((await self._row()).status)
        return [step_record(row, ended) for row in await store.list_steps(self.id)]

    async def logs(self, limit: int = LOG_LIMIT) -> list[LogRecord]:
        """The instance's ``ctx.log`` lines, oldest first: the last ``limit`` (the store keeps
        the last 1,000), each with its time, level, message, fields and step."""
        store = await self._app.store()
        await self._row()
        return [log_record(row) for row in await store.list_logs(self.id, limit)]

    async def pause(self) -> None:
        """Pause: a waiting instance stays put; a running one stops at its next step."""
        await (await self._app.store()).pause(self.id, self._app.clock.now())

    async def resume(self) -> None:
        """Resume a paused instance."""
        await (await self._app.store()).resume(self.id, self._app.clock.now())

    async def terminate(self, compensate: bool = False) -> None:
        """End the instance (and its children) now; it runs no further step.

        With ``compensate``, a worker first runs the rollbacks of its completed steps and
        its ``on_failure`` handler, then ends it ``terminated``.
        """
        row = await (await self._app.store()).terminate(self.id, self._app.clock.now(), compensate)
        if row.status == "terminated":
            self._app.metrics.instance_ended(row.workflow, "terminated")

    async def restart(self, from_step: str | None = None, occurrence: int = 1) -> None:
        """Run again from the top, or from step ``from_step`` (keeping the journal before it),
        under the code as it is now: the instance's ``version`` becomes that code's."""
        if from_step is not None and not _journalable(from_step):
            await self._row()  # an unknown instance is that first
            steps = await (await self._app.store()).list_steps(self.id)
            raise UnknownStepError(self.id, from_step, occurrence, [r.name for r in steps])
        step = None if from_step is None else (from_step, occurrence)
        known = self.workflow in self._app.entrypoints  # else: the worker records its own
        version = self._app.version_of(self.workflow) if known else None
        await (await self._app.store()).restart(self.id, self._app.clock.now(), step, version)

    async def retry_now(self) -> None:
        """Run the pending retry of a step now instead of at its scheduled time.

        Raises:
            InstanceStateError: the instance is not waiting for a retry.
        """
        await (await self._app.store()).retry_now(self.id, self._app.clock.now())

    @property
    def send_event(self) -> E:
        """``await inst.send_event(type, payload)``: deliver an event to
        ``wait_for_event(..., type=type)``; buffered until then.

        On a typed handle's instance, type checkers check ``type`` against the event types
        the workflow waits for and ``payload`` against that wait's ``model``.

        Raises:
            UnknownEventTypeError: the workflow never waits for this type (when each of its
                waits names a literal type); nothing is stored.
            InvalidEventPayloadError: the payload does not fit the wait's ``model``.
            PayloadTooLargeError: the payload is over the payload limit.
            SerializationError: the payload could not be read back as JSON (nested deeper
                than 200 levels, or holding NaN or infinity); nothing is stored.
            InstanceStateError: the instance has ended.
        """
        return cast(E, self._send_event)

    async def _send_event(self, type: str, payload: Any = None) -> None:
        from framework.runtime.events import declared_events

        check_step_name(type, "event type")
        entrypoint = self._app.entrypoints.get(self.workflow)
        model: Any = Any
        if entrypoint is not None:
            payload, model = declared_events(entrypoint).validate(type, payload)
        limit = self._app.settings.runtime.payload_limit
        data = serialization.dump(payload, model, limit, f"the payload of event {type!r}")
        await (await self._app.store()).send_event(self.id, type, data, self._app.clock.now())

    @property
    def sync(self) -> SyncInstance[P, O, S]:
        """The same instance for synchronous code."""
        from framework.runtime.sync import SyncInstance

        return SyncInstance(self)

    async def _row(self) -> InstanceRow:
        row = await (await self._app.store()).get_instance(self.id)
        if row is None:
            raise InstanceNotFoundError(self.id)
        return row

    async def _awaited_row(self, first: bool = False) -> InstanceRow:
        row = await self._app.awaited_row(self.id, first)
        if row is None:
            raise InstanceNotFoundError(self.id)
        return row


def instance_status(
    row: InstanceRow, output_type: Any, steps: Sequence[StepRow] = ()
) -> InstanceStatus[Any]:
    """The public status of a stored instance, its output typed as ``output_type``; a stored
    value that cannot be read is None, and ``unreadable`` says why. ``steps``: its journal
    (at least the waiting entries), read to say what a waiting instance waits for."""
    unreadable: dict[str, str] = {}
    complete = row.status == "complete"
    output = _read(row.output, output_type, "output", unreadable) if complete else None
    return AnyInstanceStatus(
        id=row.id,
        workflow=row.workflow,
        status=row.status,
        output=output,
        error=ErrorInfo.model_validate_json(row.error) if row.error else None,
        params=_read(row.params, Any, "params", unreadable),
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        version=row.version,
        parent_id=row.parent_id,
        unreadable=unreadable,
        waiting_for=waiting_for(steps) if row.status == "waiting" else [],
        runs=row.runs,
        retention=row.retention,
    )


def _read(text: str | None, annotation: Any, field: str, unreadable: dict[str, str]) -> Any:
    value, why = serialization.try_load(text, annotation)
    if why is not None:
        unreadable[field] = why
    return value


def step_record(row: StepRow, ended: bool = False) -> StepRecord:
    """The public record of a journal entry of an instance (``ended``: the instance has
    ended, so a step still ``waiting`` in its journal reads ``stopped``)."""
    import json

    detail: dict[str, Any] = json.loads(row.detail) if row.detail else {}
    unreadable: dict[str, str] = {}
    return StepRecord(
        name=row.name,
        count=row.count,
        kind=row.kind,
        status="stopped" if ended and row.status == "waiting" else row.status,
        attempts=row.attempts,
        started_at=timestamp(row.started_at),
        finished_at=timestamp(row.finished_at),
        wake_at=timestamp(row.wake_at),
        input=_read(row.input, Any, "input", unreadable),
        output=_read(row.output, Any, "output", unreadable),
        error=ErrorInfo.model_validate_json(row.error) if row.error else None,
        event_type=detail.get("type"),
        child_id=detail.get("child_id"),
        child_workflow=detail.get("workflow"),
        unreadable=unreadable,
        attempt_history=attempt_records(row, detail),
        idempotency_key_sha256=detail.get("idempotency_key_sha256"),
    )


def is_terminal(status: str) -> bool:
    """Whether ``status`` is one an instance never leaves."""
    return status in TERMINAL
