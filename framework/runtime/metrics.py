"""Prometheus metrics of an app: what this process did, and the state of the whole store.

Two kinds, told apart on purpose:

- Counters and histograms of this process (``ProcessMetrics``, one per ``App``): instances
  started and ended, step attempts and their durations, how late timers fired. Each process
  counts its own work; Prometheus adds them up across processes (``sum by (workflow)``).
- Gauges of the store, read when scraped (a ``StoreState``, which ``http/metrics.py`` reads):
  instances by status, the claimable backlog, workers alive. Any process serving
  ``/metrics`` tells the truth about the whole store, so one scrape is enough for them.

Labels are bounded: a workflow's name (fixed by codegen), a status or an outcome; never an
instance id or a step name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from framework.store.base import STATUSES

if TYPE_CHECKING:
    from collections.abc import Iterable

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of the text exposition format."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ProcessMetrics:
    """The counters and histograms of one process (of one ``App``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._started = Counter(
            "fw_instances_started",
            "Instances this process started (created), by workflow.",
            ["workflow"],
            registry=self.registry,
        )
        self._ended = Counter(
            "fw_instances_ended",
            "Instances whose end this process recorded, by workflow and outcome "
            "(complete, errored, terminated).",
            ["workflow", "outcome"],
            registry=self.registry,
        )
        self._step_duration = Histogram(
            "fw_step_duration_seconds",
            "Seconds one attempt of a step's code took in this process, by workflow and "
            "outcome (complete, failed); replayed steps are not counted.",
            ["workflow", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._step_attempts = Histogram(
            "fw_step_attempts",
            "Attempts a step took, observed when it completed or failed for good, by workflow.",
            ["workflow"],
            buckets=ATTEMPT_BUCKETS,
            registry=self.registry,
        )
        self._timer_lag = Histogram(
            "fw_timer_lag_seconds",
            "How late a durable sleep fired after its due time, by workflow.",
            ["workflow"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

        # The labelled children of the per-step and timer histograms, found once:
        # ``labels()`` validates and locks on every call, twice per step.
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._attempts: dict[str, Histogram] = {}
        self._lags: dict[str, Histogram] = {}

    def instance_started(self, workflow: str, count: int = 1) -> None:
        """``count`` instances of ``workflow`` were created by this process."""
        self._started.labels(workflow).inc(count)

    def instance_ended(self, workflow: str, outcome: str) -> None:
        """An instance of ``workflow`` ended ``outcome`` (a terminal status)."""
        self._ended.labels(workflow, outcome).inc()

    def step_attempt(self, workflow: str, seconds: float, *, failed: bool) -> None:
        """One attempt of a step's code ran for ``seconds``."""
        key = (workflow, "failed" if failed else "complete")
        child = self._durations.get(key)
        if child is None:
            child = self._durations[key] = self._step_duration.labels(*key)
        child.observe(max(0.0, seconds))

    def step_ended(self, workflow: str, attempts: int) -> None:
        """A step completed, or failed for good, after ``attempts`` attempts."""
        child = self._attempts.get(workflow)
        if child is None:
            child = self._attempts[workflow] = self._step_attempts.labels(workflow)
        child.observe(attempts)

    def timer_fired(self, workflow: str, lag: float) -> None:
        """A sleep due at some time fired ``lag`` seconds after it."""
        child = self._lags.get(workflow)
        if child is None:
            child = self._lags[workflow] = self._timer_lag.labels(workflow)
        child.observe(max(0.0, lag))


@dataclass(frozen=True)
class StoreState:
    """The gauges read from the store at scrape time (``up`` False: the read failed)."""

    up: bool
    counts: dict[str, dict[str, int]] = field(default_factory=dict[str, dict[str, int]])
    backlog: dict[str, int] = field(default_factory=dict[str, int])
    workers_alive: int = 0


class _StoreCollector(Collector):
    """Yields the gauges of one ``StoreState``."""

    def __init__(self, state: StoreState) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        state = self.state
        up = GaugeMetricFamily(
            "fw_store_up", "1 when this scrape could read the store, else 0 (no store gauges)."
        )
        up.add_metric([], 1.0 if state.up else 0.0)
        yield up
        workers = GaugeMetricFamily(
            "fw_workers_alive", "Workers running now (see docs/operations.md#metrics)."
        )
        workers.add_metric([], float(state.workers_alive))
        yield workers
        if not state.up:
            return
        instances = GaugeMetricFamily(
            "fw_instances",
            "Instances in the store, by workflow and status.",
            labels=["workflow", "status"],
        )
        for workflow, by_status in sorted(state.counts.items()):
            for status in STATUSES:
                instances.add_metric([workflow, status], float(by_status.get(status, 0)))
        yield instances
        backlog = GaugeMetricFamily(
            "fw_backlog_instances",
            "Instances a worker could claim now (queued, waiting or running on an expired "
            "lease, and due), by workflow.",
            labels=["workflow"],
        )
        for workflow in sorted({*state.counts, *state.backlog}):
            backlog.add_metric([workflow], float(state.backlog.get(workflow, 0)))
        yield backlog


class _Delegate(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def exposition(metrics: ProcessMetrics, state: StoreState) -> bytes:
    """The text a scrape answers: this process's ``metrics`` and the store's ``state``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Delegate(metrics.registry))
    registry.register(_StoreCollector(state))
    return generate_latest(registry)
