"""Optional OpenTelemetry spans (install ``fw[otel]``): one span per step attempt that really
runs, none for steps a replay skips, so traces never show a step twice for one execution."""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from framework.runtime.failures import message_of, raised_by_user, traceback_of
from framework.runtime.records import TRACEBACK_LIMIT, cut_text

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on the environment
    _trace = None  # type: ignore[assignment]

_PROVIDER_FROM_ENVIRONMENT = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
"""OpenTelemetry loads the provider this names on its first ``get_tracer_provider``."""


def step_span(
    workflow: str, instance_id: str, step: str, count: int, attempt: int
) -> AbstractContextManager[None]:
    """A span ``fw.step <name>`` around one attempt, when OpenTelemetry is installed and an
    SDK is configured (else spans would go nowhere: nothing is done)."""
    if not _sdk_configured():
        return _NO_SPAN
    return _span(workflow, instance_id, step, count, attempt)


_NO_SPAN = nullcontext()
_UNKNOWN = object()


def _sdk_configured() -> bool:
    """Whether a tracer provider is set. OpenTelemetry's own answer looks up an environment
    variable each time none is (5% of a busy worker's CPU): its global is read first, and
    that answer is taken only when it may have changed."""
    if _trace is None:
        return False
    provider = getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN)  # set once, by set_tracer_provider
    if provider is None and not _PROVIDER_FROM_ENVIRONMENT:
        return False
    return not isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider)


@contextmanager
def _span(workflow: str, instance_id: str, step: str, count: int, attempt: int) -> Generator[None]:
    assert _trace is not None
    tracer: Any = _trace.get_tracer("fw")
    attributes = {
        "fw.workflow": workflow,
        "fw.instance_id": instance_id,
        "fw.step": step,
        "fw.step.occurrence": count,
        "fw.step.attempt": attempt,
    }
    with tracer.start_as_current_span(
        f"fw.step {step}",
        attributes=attributes,
        record_exception=False,  # its str(exc) may raise or be megabytes long: see below
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as exc:
            if raised_by_user(exc):
                description = _record_exception(span, exc)
                span.set_status(_trace.Status(_trace.StatusCode.ERROR, description))
            raise


def _record_exception(span: Any, exc: BaseException) -> str:
    """Add the ``exception`` event of ``exc`` to ``span``, its message told safely and cut;
    return ``"Type: message"``."""
    message = message_of(exc)
    span.add_event(
        "exception",
        {
            "exception.type": _qualified_name(type(exc)),
            "exception.message": message,
            "exception.stacktrace": cut_text(traceback_of(exc), TRACEBACK_LIMIT, keep="end"),
        },
    )
    return f"{type(exc).__name__}: {message}"


def _qualified_name(cls: type[BaseException]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "") else f"{module}.{cls.__qualname__}"
