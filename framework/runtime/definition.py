"""How users declare workflows and reusable steps: ``@workflow``, ``WorkflowEntrypoint``,
``define_step`` and ``branch``; and the uniform ``WorkflowDefinition`` the runtime executes."""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from framework.naming import concurrency_key_problem, concurrency_problem
from framework.runtime.durations import Duration, parse_duration
from framework.runtime.retries import Retries

if TYPE_CHECKING:
    from framework.runtime.context import (
        CompensationContext,
        RollbackContext,
        WorkflowContext,
        WorkflowEvent,
    )
    from framework.runtime.steps import WorkflowStep

P = TypeVar("P")
O = TypeVar("O")
R = TypeVar("R")
O_co = TypeVar("O_co", covariant=True)

OnFailure = Callable[["CompensationContext"], Awaitable[None]]


class WorkflowFunction(Generic[P, O]):
    """A workflow in function form, made by ``@workflow``."""

    def __init__(
        self,
        fn: Callable[[WorkflowContext[P]], Awaitable[O]],
        name: str | None = None,
        on_failure: OnFailure | None = None,
        *,
        retries: Retries | None = None,
        timeout: Duration | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@workflow needs an `async def` function; {fn.__qualname__} is not")
        self.fn = fn
        self.name = name
        self.on_failure = on_failure
        self.retries = retries
        self.timeout = timeout
        self.concurrency = concurrency
        self.concurrency_key = concurrency_key
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = fn.__module__
        self.__doc__ = fn.__doc__

    async def __call__(self, ctx: WorkflowContext[P]) -> O:
        return await self.fn(ctx)

    def __repr__(self) -> str:
        return f"<workflow {self.__module__}.{self.__qualname__}>"


class WorkflowEntrypoint(Generic[P, O]):
    """Base of a workflow in class form, as in Cloudflare Workflows.

    Subclass it as ``WorkflowEntrypoint[Params, Output]`` and implement ``run``; ``self.ctx``
    gives the rest of the workflow context (``log``, ``parallel``, ``spawn``, ``run_step``) and
    ``self.env`` the app's bindings. Set the class attribute ``on_failure`` to a compensation,
    ``retries`` to the default retries of its steps and ``timeout`` to the deadline of an
    instance (as ``@workflow(retries=..., timeout=...)``).
    """

    on_failure: ClassVar[OnFailure | None] = None
    retries: ClassVar[Retries | None] = None
    timeout: ClassVar[Duration | None] = None
    concurrency: ClassVar[int | None] = None
    """At most this many instances running at once (a literal: codegen reads it)."""
    concurrency_key: ClassVar[str | None] = None
    """The params path ``concurrency`` counts by (a literal: codegen reads it)."""

    def __init__(self, ctx: WorkflowContext[P]) -> None:
        self.ctx = ctx
        self.env = ctx.env

    async def run(self, event: WorkflowEvent[P], step: WorkflowStep) -> O:
        """The workflow body."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement `async def run`")


class _WorkflowDecorator:
    def __init__(
        self,
        name: str | None,
        on_failure: OnFailure | None,
        retries: Retries | None = None,
        timeout: Duration | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
    ) -> None:
        self.name = name
        self.on_failure = on_failure
        self.retries = retries
        self.timeout = timeout
        self.concurrency = concurrency
        self.concurrency_key = concurrency_key

    @overload
    def __call__(
        self, target: Callable[[WorkflowContext[P]], Awaitable[O]]
    ) -> WorkflowFunction[P, O]: ...

    @overload
    def __call__(
        self, target: type[WorkflowEntrypoint[P, O]]
    ) -> type[WorkflowEntrypoint[P, O]]: ...

    def __call__(self, target: Any) -> Any:
        if isinstance(target, type):
            if not issubclass(target, WorkflowEntrypoint):
                raise TypeError(f"@workflow on a class needs a WorkflowEntrypoint: {target!r}")
            entrypoint: type[WorkflowEntrypoint[Any, Any]] = target  # pyright: ignore[reportUnknownVariableType]
            if self.on_failure is not None:
                entrypoint.on_failure = self.on_failure
            if self.retries is not None:
                entrypoint.retries = self.retries
            if self.timeout is not None:
                entrypoint.timeout = self.timeout
            if self.concurrency is not None:
                entrypoint.concurrency = self.concurrency
            if self.concurrency_key is not None:
                entrypoint.concurrency_key = self.concurrency_key
            return entrypoint
        return WorkflowFunction(
            target,
            self.name,
            self.on_failure,
            retries=self.retries,
            timeout=self.timeout,
            concurrency=self.concurrency,
            concurrency_key=self.concurrency_key,
        )


@overload
def workflow(target: Callable[[WorkflowContext[P]], Awaitable[O]], /) -> WorkflowFunction[P, O]: ...


@overload
def workflow(
    *,
    name: str | None = None,
    on_failure: OnFailure | None = None,
    retries: Retries | None = None,
    timeout: Duration | None = None,
    concurrency: int | None = None,
    concurrency_key: str | None = None,
) -> _WorkflowDecorator: ...


def workflow(
    target: Callable[[WorkflowContext[Any]], Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    on_failure: OnFailure | None = None,
    retries: Retries | None = None,
    timeout: Duration | None = None,
    concurrency: int | None = None,
    concurrency_key: str | None = None,
) -> WorkflowFunction[Any, Any] | _WorkflowDecorator:
    """Declare the workflow of a ``*_workflow.py`` file.

    Use it bare (``@workflow``) or with options (``@workflow(name="payments",
    on_failure=compensate)``); ``name``, ``concurrency`` and ``concurrency_key`` must be
    literals, as codegen reads them.

    Args:
        name: the workflow's name, instead of the one derived from the file's.
        on_failure: a compensation, run once when an instance fails.
        retries: the default retries of its steps (over ``fw.toml``'s; a step's own
            ``retries`` still wins, field by field).
        timeout: the deadline of each instance, from its creation (or restart) to its end:
            past it the instance ends ``errored`` with ``WorkflowTimeoutError``, after its
            compensation ran, whatever it was doing or waiting for.
        concurrency: at most this many instances running at once, across every worker
            (per value of ``concurrency_key`` when it is set); the others stay queued in
            order (``docs/workflows.md``, "Concurrency limits").
        concurrency_key: a dotted path into the params (``"customer.id"``) whose value
            groups the instances the limit counts (1 per value when ``concurrency`` is unset).

    Raises:
        ValueError: ``concurrency`` or ``concurrency_key`` is not a valid value.
    """
    if timeout is not None:
        parse_duration(timeout)
    for problem in (concurrency_problem(concurrency), concurrency_key_problem(concurrency_key)):
        if problem is not None:
            raise ValueError(f"@workflow: {problem}")
    if target is not None:
        return WorkflowFunction(target)
    return _WorkflowDecorator(name, on_failure, retries, timeout, concurrency, concurrency_key)


@dataclass(frozen=True)
class StepDefinition(Generic[R]):
    """A reusable step made by ``define_step``; run it with ``ctx.run_step(step, args)``."""

    name: str
    handler: Callable[..., Awaitable[R]]
    rollback: Callable[[RollbackContext], Awaitable[None]] | None = None
    retries: Retries | None = None
    timeout: Duration | None = None
    rollback_retries: Retries | None = None
    rollback_timeout: Duration | None = None

    @cached_property
    def args_model(self) -> Any:
        """A pydantic model of the handler's keyword arguments (all but ``ctx``)."""
        from pydantic import ConfigDict, create_model

        hints = _type_hints(self.handler)
        fields: dict[str, Any] = {}
        for index, param in enumerate(inspect.signature(self.handler).parameters.values()):
            if index == 0:
                continue
            annotation = hints.get(param.name, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, default)
        config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")
        return create_model(f"{self.name}_args", __config__=config, **fields)

    @cached_property
    def argument_names(self) -> list[str]:
        """The handler's keyword arguments, in order (all but ``ctx``)."""
        return list(inspect.signature(self.handler).parameters)[1:]

    @cached_property
    def return_type(self) -> Any:
        """The handler's declared return type (``Any`` when it has none)."""
        return _type_hints(self.handler).get("return", Any)


def define_step(
    name: str,
    *,
    handler: Callable[..., Awaitable[R]],
    rollback: Callable[[RollbackContext], Awaitable[None]] | None = None,
    retries: Retries | None = None,
    timeout: Duration | None = None,
    rollback_retries: Retries | None = None,
    rollback_timeout: Duration | None = None,
) -> StepDefinition[R]:
    """Define a reusable, validated step.

    Args:
        name: the step's name in the journal.
        handler: ``async def handler(ctx: StepContext, **args) -> R``; its arguments and return
            value are validated by its annotations.
        rollback: ``async def rollback(ctx: RollbackContext) -> None``, run in reverse order of
            completion when the workflow later fails (a saga).
        retries: the step's retry policy (unset fields: the workflow's defaults).
        timeout: the limit of one attempt (default: the workflow's step timeout).
        rollback_retries: the rollback's own retry policy. Not the step's: a charge that
            must not be retried still wants its refund retried. Default: the workflow's
            default retries (``@workflow(retries=...)``, else ``fw.toml``).
        rollback_timeout: the limit of one attempt of the rollback (default: the workflow's
            step timeout, ``[defaults] timeout``).

    ``ctx.run_step(step, args, config=StepConfig(...))`` overrides ``retries`` and
    ``timeout`` for one call.
    """
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"define_step({name!r}): the handler must be an `async def` function")
    if rollback is not None and not inspect.iscoroutinefunction(rollback):
        raise TypeError(f"define_step({name!r}): the rollback must be an `async def` function")
    if rollback is None and (rollback_retries is not None or rollback_timeout is not None):
        raise TypeError(
            f"define_step({name!r}): rollback_retries and rollback_timeout need a rollback"
        )
    if rollback_timeout is not None:
        parse_duration(rollback_timeout)
    if timeout is not None:
        parse_duration(timeout)
    return StepDefinition(
        name, handler, rollback, retries, timeout, rollback_retries, rollback_timeout
    )


@dataclass(frozen=True)
class Branch(Generic[O_co]):
    """One child workflow of ``ctx.parallel``: a declared workflow's name and its params.

    Typed by the child's output ``O_co`` when made by a typed handle
    (``workflows.get("image-tag").branch(params)``); ``Branch[Any]`` when made by ``branch``.
    """

    workflow: str
    params: Any = None


def branch(workflow: str, params: Any = None) -> Branch[Any]:
    """An untyped branch of ``ctx.parallel([...])``: run workflow ``workflow`` with ``params``.

    The escape hatch for a name known only at run time (as ``workflows.get_dynamic``); with
    a name known when writing the code, prefer ``workflows.get(name).branch(params)``, whose
    name, params and output type checkers check.
    """
    return Branch(workflow, params)


@dataclass(frozen=True)
class WorkflowDefinition:
    """What the runtime needs of a user's workflow, whichever form declared it."""

    target: WorkflowFunction[Any, Any] | type[WorkflowEntrypoint[Any, Any]]

    @property
    def qualname(self) -> str:
        return f"{self.target.__module__}.{self.target.__qualname__}"

    @cached_property
    def params_type(self) -> Any:
        return self._types[0]

    @cached_property
    def output_type(self) -> Any:
        return self._types[1]

    @property
    def on_failure(self) -> OnFailure | None:
        return self.target.on_failure

    @property
    def retries(self) -> Retries | None:
        """The default retries of its steps declared in code."""
        return self.target.retries

    @property
    def deadline(self) -> float | None:
        """The deadline of an instance declared in code (``timeout``), in seconds."""
        timeout = self.target.timeout
        return None if timeout is None else parse_duration(timeout)

    @property
    def source_file(self) -> str | None:
        module = sys.modules.get(self.target.__module__)
        return getattr(module, "__file__", None)

    async def invoke(self, ctx: WorkflowContext[Any]) -> Any:
        """Run the body once (from the top) in ``ctx``."""
        if isinstance(self.target, WorkflowFunction):
            return await self.target(ctx)
        instance = self.target(ctx)
        return await instance.run(ctx.event, ctx.step)

    @cached_property
    def _types(self) -> tuple[Any, Any]:
        if isinstance(self.target, WorkflowFunction):
            hints = _type_hints(self.target.fn)
            parameters = list(inspect.signature(self.target.fn).parameters)
            context = hints.get(parameters[0], Any) if parameters else Any
            args = typing.get_args(context)
            return (args[0] if args else Any), hints.get("return", Any)
        for base in getattr(self.target, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, WorkflowEntrypoint):
                params, output = typing.get_args(base)
                return params, output
        return Any, Any


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except NameError as exc:
        raise TypeError(f"cannot resolve the annotations of {fn.__qualname__}: {exc}") from None


def as_definition(target: object) -> WorkflowDefinition | None:
    """The definition behind a module attribute, or None when it declares no workflow."""
    if isinstance(target, WorkflowFunction):
        function: WorkflowFunction[Any, Any] = target  # pyright: ignore[reportUnknownVariableType]
        return WorkflowDefinition(function)
    if isinstance(target, type) and issubclass(target, WorkflowEntrypoint):
        entrypoint: type[WorkflowEntrypoint[Any, Any]] = target  # pyright: ignore[reportUnknownVariableType]
        return None if entrypoint is WorkflowEntrypoint else WorkflowDefinition(entrypoint)
    return None
