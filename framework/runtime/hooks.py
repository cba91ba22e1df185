"""Hooks: points in a run where a tool outside the runtime may act, defined here so that the
runtime never imports the tool. The test environment's failure injection
(``framework.testing.FaultPlan``) implements ``AttemptHook``."""

from __future__ import annotations

from typing import Protocol


class AttemptHook(Protocol):
    """Consulted before each attempt of a step's body (``App.attempt_hook``)."""

    def before_attempt(self, workflow: str, step: str) -> None:
        """Called before an attempt of step ``step`` of an instance of ``workflow``; whatever
        it raises fails that attempt, as if the step's body had raised it (retried, then
        raised into the workflow, like any failure of the body)."""
        ...
