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

from framework.runtime.durations import Duration
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

OnFailure = Callable[["CompensationContext"], Awaitable[None]]


class WorkflowFunction(Generic[P, O]):
    """A workflow in function form, made by ``@workflow``."""

    def __init__(
        self,
        fn: Callable[[WorkflowContext[P]], Awaitable[O]],
        name: str | None = None,
        on_failure: OnFailure | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@workflow needs an `async def` function; {fn.__qualname__} is not")
        self.fn = fn
        self.name = name
        self.on_failure = on_failure
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
    ``self.env`` the app's bindings. Set the class attribute ``on_failure`` to a compensation.
    """

    on_failure: ClassVar[OnFailure | None] = None

    def __init__(self, ctx: WorkflowContext[P]) -> None:
        self.ctx = ctx
        self.env = ctx.env

    async def run(self, event: WorkflowEvent[P], step: WorkflowStep) -> O:
        """The workflow body."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement `async def run`")


class _WorkflowDecorator:
    def __init__(self, name: str | None, on_failure: OnFailure | None) -> None:
        self.name = name
        self.on_failure = on_failure

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
            return entrypoint
        return WorkflowFunction(target, self.name, self.on_failure)


@overload
def workflow(target: Callable[[WorkflowContext[P]], Awaitable[O]], /) -> WorkflowFunction[P, O]: ...


@overload
def workflow(
    *, name: str | None = None, on_failure: OnFailure | None = None
) -> _WorkflowDecorator: ...


def workflow(
    target: Callable[[WorkflowContext[Any]], Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    on_failure: OnFailure | None = None,
) -> WorkflowFunction[Any, Any] | _WorkflowDecorator:
    """Declare the workflow of a ``*_workflow.py`` file.

    Use it bare (``@workflow``) or with options (``@workflow(name="payments",
    on_failure=compensate)``); ``name`` must be a string literal, as codegen reads it.
    """
    if target is not None:
        return WorkflowFunction(target)
    return _WorkflowDecorator(name, on_failure)


@dataclass(frozen=True)
class StepDefinition(Generic[R]):
    """A reusable step made by ``define_step``; run it with ``ctx.run_step(step, args)``."""

    name: str
    handler: Callable[..., Awaitable[R]]
    rollback: Callable[[RollbackContext], Awaitable[None]] | None = None
    retries: Retries | None = None
    timeout: Duration | None = None

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
) -> StepDefinition[R]:
    """Define a reusable, validated step.

    Args:
        name: the step's name in the journal.
        handler: ``async def handler(ctx: StepContext, **args) -> R``; its arguments and return
            value are validated by its annotations.
        rollback: ``async def rollback(ctx: RollbackContext) -> None``, run in reverse order of
            completion when the workflow later fails (a saga).
        retries: the step's retry policy.
        timeout: the limit of one attempt.
    """
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"define_step({name!r}): the handler must be an `async def` function")
    if rollback is not None and not inspect.iscoroutinefunction(rollback):
        raise TypeError(f"define_step({name!r}): the rollback must be an `async def` function")
    return StepDefinition(name, handler, rollback, retries, timeout)


@dataclass(frozen=True)
class Branch:
    """One child workflow of ``ctx.parallel``: a declared workflow's name and its params."""

    workflow: str
    params: Any = None


def branch(workflow: str, params: Any = None) -> Branch:
    """A branch of ``ctx.parallel([...])``: run workflow ``workflow`` with ``params``."""
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
