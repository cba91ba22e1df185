"""Failures of a user's code: told apart from a stop of the run, and described safely.

User code (a step, a defined step's handler, a rollback, ``on_failure``, the workflow body)
may raise anything. ``SystemExit`` (argparse and click raise it), ``KeyboardInterrupt``,
``asyncio.CancelledError`` and any other ``BaseException`` raised by that code are its
failures, like an ``Exception``: they never end the worker. Only these stop a run:

- ``Suspend``, fw's own unwinding of a body that must wait or stop;
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
import traceback
from types import CodeType

from framework.runtime.records import MESSAGE_LIMIT, cut_text
from framework.runtime.suspension import Suspend


def raised_by_user(exc: BaseException) -> bool:
    """Whether ``exc``, caught around user code in a run's task, is that code's failure
    (True) or a stop of the run to let through (False)."""
    if isinstance(exc, Exception):
        return True
    if isinstance(exc, Suspend | GeneratorExit):
        return False
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
    """The formatted traceback of ``exc``, each frame and message cut to ``MESSAGE_LIMIT``
    (a traceback's message line repeats the exception's message)."""
    try:
        pieces = list(traceback.TracebackException.from_exception(exc).format())
    except Exception as broken:  # an exception object odd enough to break the traceback module
        return f"<formatting the traceback failed: {message_of(broken)}>"
    return "".join(_cut_line(piece) for piece in pieces)


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
