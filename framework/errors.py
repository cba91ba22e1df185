"""Every error fw raises, in one place, each with a message that says what to do next.

Each derives from ``FwError``, so ``except FwError`` catches whatever fw raises, except two
that stand for your own code's failure rather than fw's: ``NonRetryableError`` (you raise it
from a step) and ``InjectedFailure`` (the test environment raises it in your step's place).
A base module: it imports nothing of fw, and every layer imports it.
"""

from __future__ import annotations

import difflib
import string
import typing
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


class UnknownEventTypeError(FwError, ValueError):
    """An event of a type the instance's workflow never waits for (every ``wait_for_event``
    of it names a literal type, so the event could only wait forever); nothing is stored."""

    def __init__(self, workflow: str, event_type: str, known: Iterable[str]) -> None:
        self.workflow = workflow
        self.event_type = event_type
        self.known = sorted(known)
        self.close_matches = difflib.get_close_matches(event_type, self.known, n=3, cutoff=0.6)
        if self.close_matches:
            hint = f"; did you mean {', '.join(repr(m) for m in self.close_matches)}?"
        elif self.known:
            hint = f"; it waits for {', '.join(repr(k) for k in self.known)}"
        else:
            hint = "; it waits for no event"
        super().__init__(
            f"workflow {workflow!r} never waits for an event of type {event_type!r}{hint}"
        )


class InvalidEventPayloadError(FwError, ValueError):
    """An event's payload does not fit the ``model`` its wait declares; nothing is stored.

    ``errors`` are pydantic's (``loc``, ``msg``, ``type``)."""

    def __init__(self, workflow: str, event_type: str, errors: list[dict[str, Any]]) -> None:
        self.workflow = workflow
        self.event_type = event_type
        self.errors = errors
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ())) or "payload"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"the payload of event {event_type!r} of workflow {workflow!r} is invalid: "
            f"{where}: {first.get('msg', 'invalid')}{more}"
        )


class WorkflowImportError(FwError, ImportError):
    """A workflow's module fails to import (a syntax error, a missing package, an exception
    raised at import): the message names the file and line, and the original error.

    Attributes:
        workflow: the workflow whose module failed.
        file: the file to fix, relative to the app folder when inside it.
        line: the line there, when known.
        error: the original error as ``Type: message``.
    """

    def __init__(self, workflow: str, file: str, line: int | None, error: str) -> None:
        self.workflow = workflow
        self.file = file
        self.line = line
        self.error = error
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: workflow {workflow!r} cannot be imported: {error}")


class InstanceNotFoundError(FwError, LookupError):
    """No instance has this id (``close_matches``: stored ids that look like it, if known)."""

    def __init__(self, instance_id: str, close_matches: Iterable[str] = ()) -> None:
        self.instance_id = instance_id
        self.close_matches = list(close_matches)
        hint = (
            f"; did you mean {', '.join(repr(m) for m in self.close_matches)}?"
            if self.close_matches
            else ""
        )
        super().__init__(f"no instance with id {instance_id!r}{hint}")


class AmbiguousInstanceIdError(FwError, LookupError):
    """An id prefix given on the command line matches several instances."""

    def __init__(self, prefix: str, candidates: Iterable[str], more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = list(candidates)
        shown = ", ".join(self.candidates) + (", ..." if more else "")
        super().__init__(
            f"{prefix!r} is the start of several instance ids ({shown}); give more of the id"
        )


class InvalidInstanceIdError(FwError, ValueError):
    """An instance id breaks the id rule: 1-100 characters of ``[A-Za-z0-9_.:-]``, not ``.``
    or ``..`` alone."""

    def __init__(self, instance_id: str, index: int | None = None) -> None:
        self.instance_id = instance_id
        self.index = index
        """The item's position in ``create_batch``, when it came from one."""
        given = typing.cast(object, instance_id)
        if not isinstance(given, str):  # a caller without a type checker
            where = "" if index is None else f"item {index} of the batch: "
            super().__init__(
                f"{where}invalid instance id {instance_id!r:.40}: it is of type "
                f"{type(instance_id).__name__}, not str; an id is 1-100 characters of "
                "letters, digits and _ . : -"
            )
            return
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
    """Raise from a step to fail it at once, skipping its remaining retries (any exception
    whose ``retryable`` attribute is ``False`` does the same)."""

    retryable = False


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
        retryable: False when the error was one fw never retries (``NonRetryableError``,
            ``retryable = False``, a serialization or payload error); True when the step's
            retries ran out.
    """

    def __init__(
        self,
        step: str,
        error_type: str,
        error_message: str,
        attempts: int,
        *,
        retryable: bool = True,
    ) -> None:
        self.step = step
        self.error_type = error_type
        self.error_message = error_message
        self.attempts = attempts
        self.retryable = retryable
        plural = "s" if attempts != 1 else ""
        super().__init__(
            f"step {step!r} failed after {attempts} attempt{plural}: {error_type}: {error_message}"
        )


class StepTimeoutError(FwError, TimeoutError):
    """One attempt of a step ran longer than its ``timeout``."""


class WorkflowTimeoutError(FwError, TimeoutError):
    """An instance ran past its deadline (``@workflow(timeout=...)``, ``[[workflows]]
    deadline``): it ended ``errored`` with this error's name, after its compensation ran."""


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


class ConcurrencyKeyError(FwError, ValueError):
    """The params of an instance hold no value at its workflow's ``concurrency_key``; nothing
    is stored."""


class SerializationError(FwError, TypeError):
    """A value cannot be stored as JSON (a step output, params, an event payload)."""


class NonDeterminismError(FwError):
    """On replay, the workflow asked for a different step than its journal holds at that point.

    Attributes:
        step: the journaled step where the code and the journal part ways, when known.
    """

    def __init__(self, message: str, step: str | None = None) -> None:
        self.step = step
        super().__init__(message)


class CrashLoopError(FwError):
    """An instance's worker died under it too many times in a row."""


class StoreError(FwError):
    """The database failed (corrupt, locked, full, unreachable); the message says which."""


class StoreUnavailableError(StoreError):
    """The database server cannot be reached now (down, restarting, a cut network): trying
    again later may work, unlike a wrong password or a missing database."""


class StoreClosedError(StoreError):
    """The store was closed (its app or process is shutting down): trying again cannot work."""


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


class RemoteError(FwError):
    """The fw HTTP API, called by a remote client (``connect``), answered an error that no other
    fw error stands for, or could not be reached.

    Attributes:
        url: the API's base URL.
        status: the HTTP status of the answer (None when none came).
        kind: the ``error`` of the answer's body (``"invalid_body"``, ``"forbidden"``...).
    """

    def __init__(
        self, message: str, *, url: str, status: int | None = None, kind: str | None = None
    ) -> None:
        self.url = url
        self.status = status
        self.kind = kind
        super().__init__(message)


class RemoteAuthError(RemoteError):
    """The API refused the remote client: no token or a wrong one (401), too many wrong
    tokens from this address (429, ``retry_after`` seconds to wait), or a change asked with
    the read-only token (403, ``kind`` ``"read_only"``)."""

    def __init__(
        self, message: str, *, url: str, status: int, kind: str, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, url=url, status=status, kind=kind)


class RemoteUnavailableError(RemoteError):
    """The API cannot be reached (refused, unresolvable, timed out) or answered 503 (its
    store is down or its app not ready): trying again later may work."""
