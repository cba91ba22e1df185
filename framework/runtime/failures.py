"""Describing a user's exception safely: its message (even when ``__str__`` raises) and its
traceback, cut to their limits."""

from __future__ import annotations

import traceback

from framework.runtime.records import MESSAGE_LIMIT, cut_text


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

