"""Failures of a user's code: told apart from a stop of the run, and described safely.

User code (a step, a defined step's handler, a rollback, ``on_failure``, the workflow body)
may raise anything. ``SystemExit`` (argparse and click raise it), ``KeyboardInterrupt``,
``asyncio.CancelledError`` and any other ``BaseException`` raised by that code are its
failures, like an ``Exception``: they never end the worker. Only these stop a run:

- ``Suspend``, fw's own unwinding of a body that must wait or stop;
- a ``GeneratorExit`` that ``close()`` throws into a suspended coroutine (a collected task's):
  a new one is thrown into each frame, so its traceback starts at the frame catching it,
  where one the user's code raised comes up from the frames below;
- a cancellation of the task running it (a shutdown past its grace, a lost lease), which
  ``Task.cancelling()`` counts, unlike a ``CancelledError`` the user's code raised itself;
- a ``KeyboardInterrupt`` raised by a Python-level SIGINT handler (``asyncio.run``'s second
  Ctrl-C). ``fw worker`` and ``fw serve`` handle SIGINT and SIGTERM on the event loop, where
  a signal never raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sysconfig
import traceback
from pathlib import Path
from types import CodeType

from framework.errors import (
    NonRetryableError,
    PayloadTooLargeError,
    SerializationError,
    StepError,
)
from framework.runtime.records import MESSAGE_LIMIT, ErrorInfo, cut_text
from framework.runtime.suspension import Suspend
from framework.store.base import StepRow


def raised_by_user(exc: BaseException) -> bool:
    """Whether ``exc``, caught around user code in a run's task, is that code's failure
    (True) or a stop of the run to let through (False)."""
    if isinstance(exc, Exception):
        return True
    if isinstance(exc, Suspend):
        return False
    if isinstance(exc, GeneratorExit):  # the user's comes up from below the frame catching it
        return exc.__traceback__ is not None and exc.__traceback__.tb_next is not None
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is None or task.cancelling() == 0
    if isinstance(exc, KeyboardInterrupt):
        return not _raised_by_sigint_handler(exc)
    return True


def message_of(exc: BaseException) -> str:
    """``str(exc)``, cut to ``MESSAGE_LIMIT``; a ``__str__`` that raises is described instead."""
    try:
        text = str(exc)
    except BaseException as broken:  # a user's __str__ may raise anything
        try:
            text = f"<str() failed: {type(broken).__name__}: {broken}>"
        except BaseException:
            text = f"<str() failed: {type(broken).__name__}>"
    return cut_text(text)


def traceback_of(exc: BaseException) -> str:
    """The formatted traceback of ``exc`` from the user's code on: the frames of fw and of
    the standard library that called that code are left out, as are fw's frames inside it
    (a traceback with no frame of the user's keeps all of them). Each frame and message is
    cut to ``MESSAGE_LIMIT`` (a traceback's message line repeats the exception's message)."""
    try:
        summary = traceback.TracebackException.from_exception(exc)
        _keep_user_frames(summary)
        pieces = list(summary.format())
    except Exception as broken:  # an exception object odd enough to break the traceback module
        return f"<formatting the traceback failed: {message_of(broken)}>"
    return "".join(_cut_line(piece) for piece in pieces)


_FW_DIR = str(Path(__file__).resolve().parents[1]) + "/"
_STDLIB_DIRS = tuple(
    {str(Path(sysconfig.get_paths()[key]).resolve()) + "/" for key in ("stdlib", "platstdlib")}
)


NOT_RETRYABLE = (NonRetryableError, SerializationError, PayloadTooLargeError)


def retryable(exc: BaseException) -> bool:
    """Whether a step that raised ``exc`` may run again: not when it is one of
    ``NOT_RETRYABLE`` or has a ``retryable`` attribute (of its class or its own) that is
    ``False`` (an attribute that cannot be read counts as retryable)."""
    if isinstance(exc, NOT_RETRYABLE):
        return False
    try:
        return getattr(exc, "retryable", True) is not False
    except Exception:  # a user's property may raise anything
        return True


def error_info(
    exc: BaseException, step: str | None = None, attempts: int | None = None
) -> ErrorInfo:
    """How an exception is stored: class name, message, step and a traceback, cut to
    their limits (a user's exception may raise from ``__str__`` or carry megabytes)."""
    if isinstance(exc, StepError):
        return ErrorInfo(
            name=exc.error_type,
            message=exc.error_message,
            step=exc.step,
            attempts=exc.attempts,
            retryable=exc.retryable,
        )
    return ErrorInfo(
        name=type(exc).__name__,
        message=message_of(exc),
        step=step,
        attempts=attempts,
        traceback=traceback_of(exc),
        retryable=retryable(exc),
    )


def step_error(row: StepRow) -> StepError:
    """The StepError a journaled failed step raises again on replay."""
    error = ErrorInfo.model_validate_json(row.error or "{}")
    return StepError(
        row.name, error.name, error.message, row.attempts, retryable=error.retryable
    )


def _is_fw_frame(filename: str) -> bool:
    """Whether a frame's file is part of fw itself."""
    return _resolved(filename).startswith(_FW_DIR)


def is_user_file(filename: str) -> bool:
    """Whether a frame's file is a user's: neither fw's nor the standard library's."""
    path = _resolved(filename)
    return not path.startswith(_FW_DIR) and not path.startswith(_STDLIB_DIRS)


@functools.lru_cache(maxsize=1024)
def _resolved(filename: str) -> str:
    try:
        return str(Path(filename).resolve())
    except (OSError, RuntimeError, ValueError):
        return filename


def _keep_user_frames(summary: traceback.TracebackException) -> None:
    """Trim the stacks of ``summary`` and of the exceptions chained to it, in place."""
    pending, seen = [summary], set[int]()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = _user_stack(current.stack)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += getattr(current, "exceptions", None) or []


def _user_stack(stack: traceback.StackSummary) -> traceback.StackSummary:
    first = next((i for i, f in enumerate(stack) if is_user_file(f.filename)), None)
    if first is None:
        return stack
    kept = [f for f in list(stack)[first:] if not _is_fw_frame(f.filename)]
    return traceback.StackSummary.from_list(kept)


def _cut_line(piece: str) -> str:
    if len(piece) <= MESSAGE_LIMIT:
        return piece
    return cut_text(piece, MESSAGE_LIMIT - 1) + "\n"


def _raised_by_sigint_handler(exc: KeyboardInterrupt) -> bool:
    code = _code_of(signal.getsignal(signal.SIGINT))
    innermost = exc.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    return code is not None and innermost is not None and innermost.tb_frame.f_code is code


def _code_of(handler: object) -> CodeType | None:
    while isinstance(handler, functools.partial):  # asyncio.run installs a partial
        handler = handler.func
    function = getattr(handler, "__func__", handler)
    code = getattr(function, "__code__", None)
    return code if isinstance(code, CodeType) else None
