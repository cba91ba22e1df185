"""The remote client: the handles of ``workflows.get(name)``, served over the HTTP API.

A process with no database (a web frontend, another service, a script on a laptop) starts and
manages instances through ``fw serve``: ``connect(url, token=...)`` from the app's generated
package returns a ``Client`` whose ``workflows.get(name)`` is typed per workflow as the local
one is. The methods and errors are those of ``WorkflowHandle`` and ``Instance``; an output is
read into the workflow's declared output type, so the workflow's module is imported on the
first output read (its params are checked by the server, whose field errors come back as a
``pydantic.ValidationError``). ``result()`` long-polls ``GET /api/instances/{id}?wait=``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, cast
from urllib.parse import quote

from typing_extensions import TypeVar

from framework.client.answers import Call, json_text
from framework.client.connection import DEFAULT_TIMEOUT, Connection
from framework.errors import (
    InstanceFailedError,
    InstanceNotFoundError,
    InstanceTerminatedError,
    RemoteUnavailableError,
    ResultTimeoutError,
    SerializationError,
    UnknownWorkflowError,
)
from framework.runtime.durations import Duration, parse_retention
from framework.runtime.handles import AnyEvents, AnySyncEvents, InstancePage
from framework.runtime.ids import check_instance_id
from framework.runtime.outcomes import Failure, Success, failure_of, success_of
from framework.runtime.records import AnyInstanceStatus, InstanceStatus, LogRecord, StepRecord
from framework.store.base import LOG_LIMIT

if TYPE_CHECKING:
    from framework.client.sync import SyncRemoteInstance, SyncRemoteWorkflowHandle
    from framework.runtime.registry import Entrypoint

P = TypeVar("P")
O = TypeVar("O")
W = TypeVar("W")
E = TypeVar("E", covariant=True, bound=AnyEvents, default=AnyEvents)
S = TypeVar("S", covariant=True, bound=AnySyncEvents, default=AnySyncEvents)

LONG_POLL = 30
"""Seconds one ``result()`` request asks the server to wait (the API allows 60)."""
CLOCK_SLACK = 0.05
"""Seconds a deadline may be overshot, rather than ask the server for one second less."""
RECONNECT_WINDOW = 60.0
"""Seconds ``result()`` keeps asking a server that stopped answering (restarting, say)."""
BACKOFF_CAP = 2.0
"""Longest pause between polls when the server answers before its wait (an fw without
``?wait=``, or an instance that ended and was restarted) or does not answer."""


class Client(Generic[W]):
    """A connection to an fw HTTP API and its ``workflows``.

    Use it as an async (or plain) context manager, or call ``aclose()`` (``close()``), so its
    connections close. ``W`` is the type of ``workflows``: per app, from the generated
    ``connect``; ``RemoteWorkflows`` from ``framework.client.connect``.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        entrypoints: Mapping[str, type[Entrypoint]] | None = None,
    ) -> None:
        self.connection = Connection(url, token, timeout)
        self._entrypoints = dict(entrypoints) if entrypoints is not None else None
        self._output_types: dict[str, Any] = {}
        self.workflows: W = cast(W, RemoteWorkflows(self))

    def __repr__(self) -> str:
        return f"<Client {self.connection.url!r}>"

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.connection.url

    async def instance(self, id: str) -> RemoteInstance[Any, Any]:
        """The instance ``id``, of whichever workflow.

        Raises:
            InstanceNotFoundError: no instance has that id.
        """
        data = await self.connection.request("GET", instance_path(id), Call(instance_id=id))
        return RemoteInstance(self, str(data["workflow"]), id)

    async def aclose(self) -> None:
        """Close this event loop's connections and those of the synchronous facade."""
        from framework.client.sync import close_facade

        await self.connection.aclose()
        await asyncio.to_thread(close_facade, self.connection)

    def close(self) -> None:
        """Close the synchronous facade's connections (``aclose`` in async code)."""
        from framework.client.sync import close_facade

        self.connection.closed = True
        close_facade(self.connection)

    async def __aenter__(self) -> Client[W]:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Client[W]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def known_names(self) -> list[str] | None:
        """The workflow names this client was generated with (None: untyped)."""
        return None if self._entrypoints is None else sorted(self._entrypoints)

    def output_type(self, workflow: str) -> Any:
        """The declared output type of ``workflow`` (``Any`` for one this client was not
        generated with), importing its module on first use."""
        if workflow in self._output_types:
            return self._output_types[workflow]
        entrypoint = (self._entrypoints or {}).get(workflow)
        output_type: Any = Any
        if entrypoint is not None:
            from framework.runtime.definition import as_definition

            definition = as_definition(entrypoint.load())
            output_type = Any if definition is None else definition.output_type
        self._output_types[workflow] = output_type
        return output_type


class RemoteWorkflows:
    """``client.workflows``: a handle per workflow name (the generated ``connect`` types it)."""

    def __init__(self, client: Client[Any]) -> None:
        self._client = client

    def get(self, name: str) -> RemoteWorkflowHandle[Any, Any]:
        """The handle of workflow ``name``.

        Raises:
            UnknownWorkflowError: a client generated for an app checks the name at once, with
                close matches; else the server does, on the first call.
        """
        known = self._client.known_names()
        if known is not None and name not in known:
            raise UnknownWorkflowError(name, known)
        return RemoteWorkflowHandle(self._client, name)

    def get_dynamic(self, name: str) -> RemoteWorkflowHandle[Any, Any]:
        """Like ``get``, for names only known at run time (typed ``str``)."""
        return self.get(name)

    def names(self) -> list[str]:
        """The workflow names this client was generated with, sorted ([] when untyped)."""
        return self._client.known_names() or []


class RemoteWorkflowHandle(Generic[P, O, E, S]):
    """Starts and finds instances of one workflow over the API, typed as ``WorkflowHandle``:
    by its params ``P``, its output ``O`` and the ``send_event`` of its instances ``E`` (``S``
    for the synchronous facade)."""

    def __init__(self, client: Client[Any], name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<RemoteWorkflowHandle {self.name!r} at {self._client.url}>"

    async def create(
        self,
        params: P | Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        retention: Duration | None = None,
    ) -> RemoteInstance[P, O, E, S]:
        """Start an instance (see ``WorkflowHandle.create``): idempotent on ``id``, kept
        for ``retention`` once ended when given.

        Raises:
            pydantic.ValidationError: invalid params (the server's field errors); nothing
                is stored.
            InvalidInstanceIdError: ``id`` breaks the id rule; nothing is sent.
            ValueError: ``retention`` is not a duration; nothing is sent.
            SerializationError: the params are not JSON data (NaN, infinity, too deep).
            PayloadTooLargeError, InstanceIdConflictError, UnknownWorkflowError: as locally.
            RemoteAuthError, RemoteUnavailableError, RemoteError: the API refused the call
                or could not be reached.
        """
        if id is not None:
            check_instance_id(id)
        seconds = parse_retention(retention)
        params_text = json_text(params, f"the params of workflow {self.name!r}")
        id_text = "" if id is None else f', "id": {json.dumps(id)}'
        if seconds is not None:
            id_text += f', "retention": {json.dumps(seconds)}'
        data = await self._client.connection.request(
            "POST",
            f"/api/workflows/{segment(self.name)}/instances",
            Call(workflow=self.name, instance_id=id, params=params),
            body=f'{{"params": {params_text}{id_text}}}',
        )
        return RemoteInstance(
            self._client,
            self.name,
            str(data["id"]),
            created=bool(data["created"]),
            params_match=bool(data["params_match"]),
        )

    async def get(self, id: str) -> RemoteInstance[P, O, E, S]:
        """The instance ``id`` of this workflow.

        Raises:
            InstanceNotFoundError: no instance of this workflow has that id.
        """
        data = await self._client.connection.request(
            "GET", instance_path(id), Call(workflow=self.name, instance_id=id)
        )
        if data["workflow"] != self.name:
            raise InstanceNotFoundError(id)
        return RemoteInstance(self._client, self.name, id)

    async def list(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> InstancePage[O]:
        """Instances of this workflow, newest first; pass ``next_cursor`` for the next page.

        The API lists summaries: each status has no ``output`` nor ``params`` (read them
        with ``get(id)`` then ``status()``).
        """
        query = {"limit": str(limit)}
        if status is not None:
            query["status"] = status
        if cursor:
            query["cursor"] = cursor
        data = await self._client.connection.request(
            "GET",
            f"/api/workflows/{segment(self.name)}/instances",
            Call(workflow=self.name),
            query=query,
        )
        statuses = [AnyInstanceStatus.model_validate(item) for item in data["instances"]]
        return InstancePage(statuses, data["next_cursor"])

    @property
    def sync(self) -> SyncRemoteWorkflowHandle[P, O, S]:
        """The same handle for synchronous code."""
        from framework.client.sync import SyncRemoteWorkflowHandle

        return SyncRemoteWorkflowHandle(self)


class RemoteInstance(Generic[P, O, E, S]):
    """One instance of a workflow, by id, over the API (the methods of ``Instance``), typed by
    its params ``P``, its output ``O`` and its ``send_event`` ``E`` (``S`` for ``.sync``).

    Attributes:
        created: from ``create``: True when that call stored the instance, False when the
            id existed (None for an instance found otherwise).
        params_match: from ``create``: whether the stored params equal those given.
    """

    def __init__(
        self,
        client: Client[Any],
        workflow: str,
        id: str,
        *,
        created: bool | None = None,
        params_match: bool | None = None,
    ) -> None:
        self._client = client
        self.workflow = workflow
        self.id = id
        self.created = created
        self.params_match = params_match

    def __repr__(self) -> str:
        return f"<RemoteInstance {self.workflow!r} {self.id!r} at {self._client.url}>"

    async def status(self) -> InstanceStatus[O]:
        """The instance's status, its output read into the workflow's output type."""
        return self._status(await self._detail())

    async def result(self, timeout: float | None = None) -> O:
        """Wait for the instance to end and return its output (see ``Instance.result``).

        Each request asks the server to answer once the instance ends, or after up to
        30 seconds (a long poll), so a long wait costs a request every 30 seconds.

        Raises:
            InstanceFailedError: it ended errored (``.error`` says why).
            InstanceTerminatedError: it was terminated.
            ResultTimeoutError: ``timeout`` seconds passed first (``.reason`` says why).
            SerializationError: its output cannot be read as its type.
            RemoteUnavailableError: the API could not be reached.
        """
        data = await self._wait_until_ended(timeout)
        status = self._status(data)
        if status.status == "errored":
            raise InstanceFailedError(self.id, status.error)
        if status.status == "terminated":
            raise InstanceTerminatedError(self.id)
        if "output" in status.unreadable:
            raise SerializationError(
                f"the output of instance {self.id!r} cannot be read: {status.unreadable['output']}"
            )
        return cast(O, status.output)

    async def outcome(self, timeout: float | None = None) -> Success[O] | Failure:
        """Wait for the instance to end and say how, without raising for a failure (see
        ``Instance.outcome``): one long poll of ``GET /api/instances/{id}?wait=``, whose
        answer holds the journal.

        Raises:
            ResultTimeoutError: ``timeout`` seconds passed first (``.reason`` says why).
            SerializationError: its output cannot be read as its type.
            RemoteUnavailableError: the API could not be reached.
        """
        data = await self._wait_until_ended(timeout)
        status = self._status(data)
        if status.status == "complete":
            if "output" in status.unreadable:
                raise SerializationError(
                    f"the output of instance {self.id!r} cannot be read: "
                    f"{status.unreadable['output']}"
                )
            return cast(Success[O], success_of(status))
        return failure_of(status, [StepRecord.model_validate(s) for s in data["steps"]])

    async def _wait_until_ended(self, timeout: float | None) -> dict[str, Any]:
        """Long-poll the instance until it ends or ``timeout`` passes.

        The server waits whole seconds: the fraction of a second left at the end is slept
        here, then read once more. A server that answers before the wait it was asked for
        is polled with a backoff instead, and one that stops answering after it has answered
        this client (restarted, say) is asked again with a backoff for up to
        ``RECONNECT_WINDOW``.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        backoff = Backoff(loop, deadline)
        lost: float | None = None
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            wait = LONG_POLL if left is None else min(LONG_POLL, math.floor(left + CLOCK_SLACK))
            asked = loop.time()
            try:
                data = await self._detail(wait)
            except RemoteUnavailableError:
                lost = asked if lost is None else lost
                reached = self._client.connection.answered
                if not reached or loop.time() - lost >= RECONNECT_WINDOW or backoff.expired:
                    raise
                await backoff.pause()
                continue
            lost = None
            if data["status"] in ("complete", "errored", "terminated"):
                return data
            if backoff.expired:
                reason = data.get("reason")
                raise ResultTimeoutError(
                    self.id, timeout or 0.0, str(data["status"]), str(reason) if reason else None
                )
            if wait == 0:
                await asyncio.sleep(left or 0.0)
            elif loop.time() - asked < wait * 0.9:
                await backoff.pause()

    async def steps(self) -> list[StepRecord]:
        """The step timeline: each step's kind, status, attempts, timing, output and error."""
        data = await self._detail()
        return [StepRecord.model_validate(step) for step in data["steps"]]

    async def logs(self, limit: int = LOG_LIMIT) -> list[LogRecord]:
        """The instance's ``ctx.log`` lines, oldest first: the last ``limit`` (the server
        keeps the last 1,000), each with its time, level, message, fields and step."""
        data = await self._client.connection.request(
            "GET", f"{instance_path(self.id)}/logs", self._call()
        )
        lines = [LogRecord.model_validate(line) for line in data["logs"]]
        return lines[-limit:] if limit > 0 else []

    async def pause(self) -> None:
        """Pause: a waiting instance stays put; a running one stops at its next step.

        Raises:
            InstanceStateError: the instance cannot be paused in its status.
        """
        await self._control("pause")

    async def resume(self) -> None:
        """Resume a paused instance.

        Raises:
            InstanceStateError: the instance is not paused.
        """
        await self._control("resume")

    async def retry_now(self) -> None:
        """Run the pending retry of a step now instead of at its scheduled time.

        Raises:
            InstanceStateError: the instance is not waiting for a retry.
        """
        await self._control("retry-now")

    async def terminate(self, compensate: bool = False) -> None:
        """End the instance (and its children) now (with ``compensate``, rollbacks first).

        Raises:
            InstanceStateError: the instance has ended.
        """
        await self._control("terminate", {"compensate": compensate})

    async def restart(self, from_step: str | None = None, occurrence: int = 1) -> None:
        """Run again from the top, or from step ``from_step`` (keeping the journal before it).

        Raises:
            UnknownStepError: the journal holds no such step (``.steps`` lists those it has).
            InstanceStateError: the instance cannot be restarted in its status.
        """
        await self._control(
            "restart",
            {"from_step": from_step, "occurrence": occurrence},
            Call(self.workflow, self.id, step=from_step, occurrence=occurrence),
        )

    @property
    def send_event(self) -> E:
        """``await inst.send_event(type, payload)``: deliver an event to
        ``wait_for_event(..., type=type)``; buffered until then.

        On a typed handle's instance, type checkers check ``type`` against the event types
        the workflow waits for and ``payload`` against that wait's ``model``, as locally.

        Raises:
            UnknownEventTypeError: the workflow never waits for this type (when each of its
                waits names a literal type); nothing is stored.
            InvalidEventPayloadError: the payload does not fit the wait's ``model``.
            SerializationError: the payload is not JSON data (NaN, infinity, too deep).
            PayloadTooLargeError: the payload is over the server's payload limit.
            InstanceStateError: the instance has ended.
        """
        return cast(E, self._send_event)

    async def _send_event(self, type: str, payload: Any = None) -> None:
        payload_text = json_text(payload, f"the payload of event {type!r}")
        await self._client.connection.request(
            "POST",
            f"{instance_path(self.id)}/events",
            Call(self.workflow, self.id, event_type=type),
            body=f'{{"type": {json.dumps(type)}, "payload": {payload_text}}}',
        )

    @property
    def sync(self) -> SyncRemoteInstance[P, O, S]:
        """The same instance for synchronous code."""
        from framework.client.sync import SyncRemoteInstance

        return SyncRemoteInstance(self)

    def _call(self) -> Call:
        return Call(workflow=self.workflow, instance_id=self.id)

    async def _control(
        self, action: str, options: dict[str, Any] | None = None, call: Call | None = None
    ) -> None:
        await self._client.connection.request(
            "POST",
            f"{instance_path(self.id)}/{action}",
            call or self._call(),
            body=None if options is None else json.dumps(options),
        )

    async def _detail(self, wait: int | None = None) -> dict[str, Any]:
        """The instance's detail; with ``wait``, once it ends or after ``wait`` seconds (then
        with the ``reason`` it has not ended)."""
        query = None if wait is None else {"wait": str(wait)}
        data: dict[str, Any] = await self._client.connection.request(
            "GET", instance_path(self.id), self._call(), query=query, wait=wait or 0
        )
        return data

    def _status(self, data: dict[str, Any]) -> InstanceStatus[O]:
        """The status in an instance's detail, its output read into the output type."""
        status = AnyInstanceStatus.model_validate(data)
        if status.status != "complete" or "output" in status.unreadable:
            return status
        try:
            output = read_output(data.get("output"), self._client.output_type(self.workflow))
        except SerializationError as exc:
            unreadable = {**status.unreadable, "output": str(exc)}
            return status.model_copy(update={"output": None, "unreadable": unreadable})
        return status.model_copy(update={"output": output})


class Backoff:
    """Pauses that double from 0.1 second up to ``BACKOFF_CAP``, never past a deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        self._loop = loop
        self._deadline = deadline
        self._delay = 0.05

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self._deadline is not None and self._loop.time() >= self._deadline

    async def pause(self) -> None:
        self._delay = min(self._delay * 2, BACKOFF_CAP)
        until = self._loop.time() + self._delay
        if self._deadline is not None:
            until = min(until, self._deadline)
        await asyncio.sleep(max(0.0, until - self._loop.time()))


def read_output(value: Any, output_type: Any) -> Any:
    """An output as the API gives it, read into ``output_type`` as fw reads a stored one.

    Raises:
        SerializationError: it does not fit the type (the workflow changed since, say).
    """
    from framework.runtime import serialization

    text = json.dumps(value)
    found, why = serialization.try_load(text, output_type)
    if why is not None:
        raise SerializationError(why)
    return found


def segment(value: str) -> str:
    """``value`` as one URL path segment (``/`` as ``%2F``; ``.`` and ``..`` escaped)."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if value in (".", "..") else quoted


def instance_path(instance_id: str) -> str:
    """The API path of an instance."""
    return f"/api/instances/{segment(instance_id)}"


def connect(
    url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Client[RemoteWorkflows]:
    """A client of the fw HTTP API at ``url`` (``http://host:8787``), untyped: any workflow
    name, outputs as JSON data. An app's generated package has a ``connect`` typed per
    workflow; prefer it.

    ``token`` is the server's ``FW_API_TOKEN`` (sent as ``Authorization: Bearer``);
    ``timeout`` bounds each request (a long poll adds its wait).
    """
    return Client(url, token=token, timeout=timeout)
