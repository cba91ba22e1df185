"""How an instance ended, as a value rather than an exception: ``inst.outcome()`` returns a
``Success`` (its typed output) or a ``Failure`` (the failed step, its attempts, the error and
the journal), as workkit's ``result()`` returns ``{ok, value}`` / ``{ok: false, error}``.

The two are told apart by ``ok`` (``Literal[True]`` / ``Literal[False]``) and by truthiness
(``__bool__`` is typed ``Literal[True]`` / ``Literal[False]``), so ``if outcome:``,
``if outcome.ok is True:`` and ``match outcome: case Success():`` narrow the union in mypy and
pyright alike; the bare ``if outcome.ok:`` narrows in mypy only (pyright does not narrow on
an attribute's truthiness).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from framework.runtime.records import ErrorInfo, InstanceStatus, StepRecord

O = TypeVar("O")


class Success(BaseModel, Generic[O]):
    """An instance that completed: its ``output``, typed by the workflow's output ``O``."""

    model_config = ConfigDict(frozen=True)

    ok: Literal[True] = True
    instance_id: str
    output: O

    def __bool__(self) -> Literal[True]:
        return True


AnySuccess = Success[Any]
"""``Success[Any]``, held (see ``records.AnyInstanceStatus``)."""


class Failure(BaseModel):
    """An instance that ended ``errored`` or ``terminated``.

    Attributes:
        status: ``errored`` or ``terminated``.
        error: why (``name``, ``message``, ``step``, ``retryable``); a termination without
            compensation reads ``InstanceTerminatedError``.
        failed_step: the step that failed (or that the instance had reached: a deadline, a
            termination), None when the body failed outside any step.
        attempts: how many attempts that step made, when known.
        steps: the instance's journal, as ``inst.steps()`` gives it.
    """

    model_config = ConfigDict(frozen=True)

    ok: Literal[False] = False
    instance_id: str
    status: Literal["errored", "terminated"]
    error: ErrorInfo
    failed_step: str | None = None
    attempts: int | None = None
    steps: list[StepRecord] = []

    def __bool__(self) -> Literal[False]:
        return False


def success_of(status: InstanceStatus[Any]) -> Success[Any]:
    """The outcome of a ``complete`` instance."""
    return AnySuccess(instance_id=status.id, output=status.output)


def failure_of(status: InstanceStatus[Any], steps: Sequence[StepRecord]) -> Failure:
    """The outcome of an ``errored`` or ``terminated`` instance with journal ``steps``."""
    error = status.error
    if error is None:
        error = ErrorInfo(
            name="InstanceTerminatedError",
            message=f"instance {status.id!r} was terminated",
            retryable=False,
        )
    failed = error.step
    attempts = error.attempts
    if failed is not None:
        tried = [s for s in steps if s.name == failed and s.kind != "rollback"]
        if tried and attempts is None:
            attempts = tried[-1].attempts
    state: Literal["errored", "terminated"] = (
        "terminated" if status.status == "terminated" else "errored"
    )
    return Failure(
        instance_id=status.id,
        status=state,
        error=error,
        failed_step=failed,
        attempts=attempts,
        steps=list(steps),
    )
