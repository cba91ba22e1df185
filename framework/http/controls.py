"""Controlling an instance from a request: pause, resume, terminate, restart, retry now.

The JSON API and Studio's buttons both come here, so an action means the same through either.
Whether it applies to the instance now is the store's answer, given in the transaction that
applies it: an ``InstanceStateError`` (409 ``invalid_state``; a restart from a step the journal
does not hold is its ``UnknownStepError``, 409 ``unknown_step``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from framework.runtime.handles import Instance

Action = Literal["pause", "resume", "terminate", "restart", "retry-now"]
ACTIONS: tuple[Action, ...] = get_args(Action)


@dataclass(frozen=True)
class Control:
    """One action and its options, as a request asked for it."""

    action: Action
    compensate: bool = False
    """terminate: run the rollbacks and ``on_failure`` first."""
    from_step: str | None = None
    """restart: from this journaled step (None: from the top)."""
    occurrence: int = 1
    """restart: which occurrence of ``from_step``."""


async def apply_action(instance: Instance[Any, Any], control: Control) -> None:
    """Do ``control.action`` to ``instance``.

    Raises:
        InstanceStateError: the action does not apply to the instance in its status.
        UnknownStepError: a restart from a step the instance's journal does not hold.
    """
    match control.action:
        case "pause":
            await instance.pause()
        case "resume":
            await instance.resume()
        case "terminate":
            await instance.terminate(compensate=control.compensate)
        case "restart":
            await instance.restart(control.from_step, control.occurrence)
        case "retry-now":
            await instance.retry_now()
