"""Failure injection for tests: make chosen step attempts fail without changing their code."""

from __future__ import annotations

from dataclasses import dataclass, field

from framework.errors import InjectedFailure


@dataclass
class _Fault:
    step: str
    workflow: str | None
    remaining: int | None
    error: BaseException | type[BaseException]


@dataclass
class FaultPlan:
    """Which step attempts fail: the runtime's ``AttemptHook`` (``App.attempt_hook``),
    consulted before each attempt."""

    _faults: list[_Fault] = field(default_factory=list[_Fault])

    def fail_step(
        self,
        step: str,
        *,
        times: int | None = 1,
        error: BaseException | type[BaseException] | None = None,
        workflow: str | None = None,
    ) -> None:
        """Make the next ``times`` attempts of step ``step`` raise ``error`` (``None``:
        every attempt). ``workflow`` limits it to one workflow."""
        self._faults.append(
            _Fault(step, workflow, times, error or InjectedFailure(f"injected failure of {step!r}"))
        )

    def clear(self) -> None:
        """Remove every planned failure."""
        self._faults.clear()

    def before_attempt(self, workflow: str, step: str) -> None:
        """Raise the planned error if this attempt is to fail."""
        for fault in self._faults:
            if fault.step != step or fault.workflow not in (None, workflow):
                continue
            if fault.remaining is not None:
                if fault.remaining <= 0:
                    continue
                fault.remaining -= 1
            raise fault.error
