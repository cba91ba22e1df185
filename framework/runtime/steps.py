"""``ctx.step``: durable steps, timers and event waits."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar, overload

from framework.runtime.durations import Duration, parse_duration
from framework.runtime.journal import check_step_name
from framework.runtime.retries import Retries

R = TypeVar("R")
M = TypeVar("M")


class StepBackend(Protocol):
    """What ``ctx.step`` asks of the run (the runtime's ``StepApi``)."""

    async def run_function_step(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: Retries | None,
        timeout: Duration | None,
        idempotency_key: str | None,
    ) -> Any: ...

    async def sleep_until(self, name: str, target: Callable[[float], float]) -> None: ...

    async def wait_for_event(
        self, name: str, event_type: str, timeout: float | None, model: type[Any] | None
    ) -> Any: ...

    def current_idempotency_key(self) -> str: ...

    def patched(self, change_id: str) -> bool: ...


class WorkflowStep:
    """The durable operations of a workflow body.

    Each operation is journaled under its name (and occurrence, when a name repeats): on
    replay a finished step returns its stored result instead of running again.
    """

    def __init__(self, backend: StepBackend) -> None:
        self._backend = backend

    @overload
    async def do(
        self,
        name: str,
        fn: Callable[..., Awaitable[R]],
        /,
        *args: Any,
        retries: Retries | None = None,
        timeout: Duration | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> R: ...

    @overload
    async def do(
        self,
        name: str,
        fn: Callable[..., R],
        /,
        *args: Any,
        retries: Retries | None = None,
        timeout: Duration | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> R: ...

    async def do(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: Retries | None = None,
        timeout: Duration | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` (sync or async) once and journal its return value.

        The value is stored as JSON typed by ``fn``'s return annotation, so a model comes
        back as that model on replay. A failure is retried by ``retries`` (defaults from
        ``fw.toml``), each attempt limited by ``timeout``; once retries are exhausted, or on
        ``NonRetryableError``, a ``StepError`` is raised here.

        ``idempotency_key`` replaces the derived key that ``step.idempotency_key`` gives
        inside the step (``"charge:" + order_id``); the journal keeps its SHA-256.

        ``retries``, ``timeout`` and ``idempotency_key`` are ``do``'s own: they are never
        passed to ``fn``. To give ``fn`` an argument of one of these names, bind it first
        (``functools.partial(fn, timeout=5)``).
        """
        return await self._backend.run_function_step(
            name, fn, args, kwargs, retries, timeout, idempotency_key
        )

    async def sleep(self, name: str, duration: Duration) -> None:
        """Wait ``duration`` durably: the instance holds no worker while it sleeps."""
        seconds = parse_duration(duration)
        await self._backend.sleep_until(name, lambda now: now + seconds)

    async def sleep_until(self, name: str, when: datetime | float) -> None:
        """Wait until ``when`` (an aware datetime, or epoch seconds) durably."""
        target = when.timestamp() if isinstance(when, datetime) else float(when)
        if not math.isfinite(target):
            raise ValueError(f"sleep_until {name!r}: {when!r} is not a moment")
        await self._backend.sleep_until(name, lambda now: target)

    @overload
    async def wait_for_event(
        self, name: str, *, type: str, timeout: Duration | None = None, model: None = None
    ) -> Any: ...

    @overload
    async def wait_for_event(
        self, name: str, *, type: str, timeout: Duration | None = None, model: type[M]
    ) -> M: ...

    async def wait_for_event(
        self,
        name: str,
        *,
        type: str,
        timeout: Duration | None = None,
        model: type[Any] | None = None,
    ) -> Any:
        """Wait for an event of ``type`` sent with ``instance.send_event`` and return its
        payload (validated into ``model`` when given). Events sent before the wait are
        buffered. Raises ``EventTimeoutError`` when ``timeout`` passes first."""
        check_step_name(type, "event type")
        seconds = None if timeout is None else parse_duration(timeout)
        return await self._backend.wait_for_event(name, type, seconds, model)

    @property
    def idempotency_key(self) -> str:
        """Inside a step: a key stable across the retries and replays of this step of this
        instance, to pass to external APIs so they deduplicate a repeated side effect: the
        ``idempotency_key`` given to ``do`` (or ``run_step``), else one derived from the
        instance id, the step's name and occurrence (and the restart, after a ``restart``)."""
        return self._backend.current_idempotency_key()

    def patched(self, change_id: str) -> bool:
        """The same as ``ctx.patched``."""
        return self._backend.patched(change_id)
