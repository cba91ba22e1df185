"""A stand-in for a worker, for tests that drive a ``Liveness`` watch by hand."""

from __future__ import annotations

from dataclasses import dataclass

from framework.runtime.app import App


@dataclass
class Registered:
    """What ``Liveness`` reads of a worker (``runtime/liveness.py`` ``Registrant``)."""

    id: str
    app: App
    lease: float
    concurrency: int = 1
    running: int = 0
