"""Every error fw raises, in one place, each with a message that says what to do next.

Each derives from ``FwError``, so ``except FwError`` catches whatever fw raises, except two
that stand for your own code's failure rather than fw's: ``NonRetryableError`` (you raise it
from a step) and ``InjectedFailure`` (the test environment raises it in your step's place).
A base module: it imports nothing of fw, and every layer imports it.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Iterable
from typing import Any


class FwError(Exception):
    """Base class of the errors fw raises."""


class ConfigError(FwError):
    """``fw.toml`` or the environment is invalid; the message names the file, line and key."""


class AppNotFoundError(FwError):
    """No ``fw.toml`` in the given folder (``--app DIR``, ``Worker(DIR)``, ``create_app(DIR)``)
    or, when none was given, in the working directory or any folder above it."""


class ScaffoldError(FwError):
    """A scaffold (``fw init``, ``fw new workflow``, ``fw new step``) cannot be made as asked;
    the message says why and what to do."""


class UnknownWorkflowError(FwError, LookupError):
    """No workflow has this name."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.close_matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(repr(m) for m in self.close_matches)}?"
            if self.close_matches
            else "; run `fw workflows list` to see the declared workflows"
        )
        super().__init__(f"unknown workflow {name!r}{hint}")


class InstanceNotFoundError(FwError, LookupError):
    """No instance has this id."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"no instance with id {instance_id!r}")


class InvalidInstanceIdError(FwError, ValueError):
    """An instance id breaks the id rule: 1-100 characters of ``[A-Za-z0-9_.:-]``, not ``.``
    or ``..`` alone."""

    def __init__(self, instance_id: str, index: int | None = None) -> None:
        self.instance_id = instance_id
        self.index = index
        """The item's position in ``create_batch``, when it came from one."""
        shown = instance_id if len(instance_id) <= 40 else instance_id[:40] + "…"
        if not instance_id:
            why = "it is empty"
        elif len(instance_id) > 100:
            why = f"it has {len(instance_id)} characters (at most 100)"
        elif instance_id in (".", ".."):
            why = "'.' and '..' are not ids"
        else:
            allowed = set(string.ascii_letters + string.digits + "_.:-")
            bad = sorted({c for c in instance_id if c not in allowed})
            why = "it contains " + ", ".join(repr(c) for c in bad[:5])
        where = "" if index is None else f"item {index} of the batch: "
        super().__init__(
            f"{where}invalid instance id {shown!r}: {why}; an id is 1-100 characters of "
            "letters, digits and _ . : -"
        )


class InstanceStateError(FwError):
    """The operation does not apply to the instance in its current status."""


class UnknownStepError(InstanceStateError):
    """``restart(from_step=...)`` names a step the instance's journal does not hold.

    Attributes:
        instance_id: the instance.
        step: the step asked for.
        occurrence: which occurrence of it (1 for the first).
        steps: the names of the steps the journal holds, in the order they ran (each once).
    """

    def __init__(self, instance_id: str, step: str, occurrence: int, steps: Iterable[str]) -> None:
        self.instance_id = instance_id
        self.step = step
        self.occurrence = occurrence
        self.steps = list(dict.fromkeys(steps))
        super().__init__(
            f"instance {instance_id!r} has no step {step!r} (occurrence {occurrence}) in its "
            f"journal; its steps: {', '.join(self.steps) or 'none'}"
        )


class InstanceIdConflictError(InstanceStateError):
    """``create`` or ``create_batch`` stored nothing: an id belongs to an instance of another
    workflow, or one batch gives an id twice.

    Attributes:
        instance_id: the id.
        index: the item's position in the batch (None for a batch of one).
        workflow: the workflow of the instance holding the id (None for a repeated id).
        first_index: for a repeated id, the position of its first item.
    """

    def __init__(
        self,
        instance_id: str,
        index: int | None,
        *,
        workflow: str | None = None,
        first_index: int | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.index = index
        self.workflow = workflow
        self.first_index = first_index
        if workflow is not None:
            where = "" if index is None else f" (item {index} of the batch)"
            problem = (
                f"id {instance_id!r}{where} already belongs to an instance of workflow "
                f"{workflow!r}"
            )
        else:
            problem = (
                f"id {instance_id!r} is given twice in one batch (items {first_index} and {index})"
            )
        super().__init__(f"{problem}; nothing was stored")


class NonRetryableError(Exception):
    """Raise from a step to fail it at once, skipping its remaining retries."""


class InjectedFailure(RuntimeError):
    """The default error of a failure planned by the test environment (``fail_step``): the
    step's attempt fails with it as if its body had raised it."""


class StepError(FwError):
    """A step failed for good (its retries are exhausted); raised into the workflow body.

    Attributes:
        step: the step's name.
        error_type: the class name of the error the step raised (``"ValueError"``).
        error_message: that error's message.
        attempts: how many attempts ran.
    """

    def __init__(self, step: str, error_type: str, error_message: str, attempts: int) -> None:
        self.step = step
        self.error_type = error_type
        self.error_message = error_message
        self.attempts = attempts
        plural = "s" if attempts != 1 else ""
        super().__init__(
            f"step {step!r} failed after {attempts} attempt{plural}: {error_type}: {error_message}"
        )


class StepTimeoutError(FwError, TimeoutError):
    """One attempt of a step ran longer than its ``timeout``."""


class EventTimeoutError(FwError, TimeoutError):
    """``wait_for_event`` reached its timeout before a matching event arrived."""

    def __init__(self, step: str, event_type: str) -> None:
        self.step = step
        self.event_type = event_type
        super().__init__(f"wait {step!r} timed out before an event of type {event_type!r} arrived")


class ChildWorkflowError(FwError):
    """A child instance started by ``ctx.parallel`` ended errored or terminated."""

    def __init__(self, child_id: str, workflow: str, status: str, message: str) -> None:
        self.child_id = child_id
        self.workflow = workflow
        self.status = status
        super().__init__(f"child {workflow!r} instance {child_id!r} ended {status}: {message}")


class PayloadTooLargeError(FwError, ValueError):
    """A params or step payload exceeds the configured limit (``[runtime] payload_limit``)."""


class SerializationError(FwError, TypeError):
    """A value cannot be stored as JSON (a step output, params, an event payload)."""


class NonDeterminismError(FwError):
    """On replay, the workflow asked for a different step than its journal holds at that point."""


class CrashLoopError(FwError):
    """An instance's worker died under it too many times in a row."""


class StoreError(FwError):
    """The database failed (corrupt, locked, full, unreachable); the message says which."""


class StoreUnavailableError(StoreError):
    """The database server cannot be reached now (down, restarting, a cut network): trying
    again later may work, unlike a wrong password or a missing database."""


class LeaseLostError(FwError):
    """The claim running an instance is no longer its lease holder (it expired, or the
    instance was terminated or restarted meanwhile): the store refused the write. The worker
    drops that run; whoever holds the instance now carries on."""


class ListenError(FwError, OSError):
    """The HTTP server cannot listen on the address asked for (in use, or not this machine's)."""


class InstanceFailedError(FwError):
    """``result()`` was awaited on an instance that ended ``errored``."""

    def __init__(self, instance_id: str, error: Any) -> None:
        self.instance_id = instance_id
        self.error = error
        super().__init__(f"instance {instance_id!r} ended errored: {error}")


class InstanceTerminatedError(FwError):
    """``result()`` was awaited on an instance that was terminated."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"instance {instance_id!r} was terminated")


class ResultTimeoutError(FwError, TimeoutError):
    """``result(timeout=...)`` passed before the instance reached a terminal status.

    Attributes:
        instance_id: the instance.
        status: its status when the timeout passed.
        reason: why it has not ended, in words (no worker has claimed it, it waits for an
            event of type X until T, a timer, a retry, its children, it is paused...).
    """

    def __init__(
        self, instance_id: str, timeout: float, status: str, reason: str | None = None
    ) -> None:
        self.instance_id = instance_id
        self.status = status
        self.reason = reason
        because = f": {reason}" if reason else ""
        super().__init__(
            f"instance {instance_id!r} is still {status} after {timeout:g} "
            f"second{'' if timeout == 1 else 's'}{because}"
        )
