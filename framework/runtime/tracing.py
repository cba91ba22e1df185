"""Optional OpenTelemetry spans (install ``fw[otel]``): one span per step attempt that really
runs, none for steps a replay skips, so traces never show a step twice for one execution."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on the environment
    _trace = None  # type: ignore[assignment]


@contextmanager
def step_span(
    workflow: str, instance_id: str, step: str, count: int, attempt: int
) -> Generator[None]:
    """A span ``fw.step <name>`` around one attempt, when OpenTelemetry is installed."""
    if _trace is None or isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider):
        yield  # no SDK configured: spans would go nowhere
        return
    tracer: Any = _trace.get_tracer("fw")
    attributes = {
        "fw.workflow": workflow,
        "fw.instance_id": instance_id,
        "fw.step": step,
        "fw.step.occurrence": count,
        "fw.step.attempt": attempt,
    }
    with tracer.start_as_current_span(f"fw.step {step}", attributes=attributes) as span:
        try:
            yield
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, str(exc)))
            raise
