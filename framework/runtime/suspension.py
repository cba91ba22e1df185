"""How a workflow body is stopped mid-way: a wait, a pause, a shutdown, non-determinism."""

from __future__ import annotations


class Suspend(BaseException):
    """Unwinds a workflow body that must stop here. A BaseException, so a body's
    ``except Exception`` cannot swallow it."""
