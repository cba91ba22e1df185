"""A workflow's activity for Studio: throughput, duration (p50, p95) and error rate over the
last hour and the last day, from one bounded store query per chart, drawn as inline SVG.

An instance counts when it ended (its last change in an ended status, as ``ended_at`` in the
API), in the bucket of that time; its duration runs from its creation to its end. The store
counts ended instances by bucket, status and duration class (``DURATION_EDGES``, six classes
per decade), so the percentiles are estimated within a class (log-interpolated), the way
Prometheus estimates them from a histogram: close, not exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from framework.runtime.durations import format_duration
from framework.store.base import DURATION_EDGES, EndedCount

if TYPE_CHECKING:
    from framework.store.base import Store

OUTCOMES = ("complete", "errored", "terminated")


@dataclass(frozen=True)
class Window:
    """A chart's span: ``buckets`` buckets of ``width`` seconds, the last one holding now."""

    key: str
    title: str
    width: float
    buckets: int
    per: str
    """How a bucket is said (``minute``)."""
    reuse: float
    """Seconds a series is reused (Studio's live refresh asks for the page each second)."""


WINDOWS = (
    Window("hour", "Last hour", 60.0, 60, "minute", reuse=5.0),
    Window("day", "Last day", 1800.0, 48, "30 minutes", reuse=60.0),
)


@dataclass
class Bucket:
    """One bucket of a chart: when it starts, its ended instances by outcome and duration."""

    start: float
    ended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    classes: dict[int, int] = field(default_factory=dict[int, int])

    @property
    def total(self) -> int:
        return sum(self.ended.values())

    def percentile(self, q: float) -> float | None:
        return percentile(self.classes, q)


@dataclass(frozen=True)
class Series:
    """The data of one chart."""

    window: Window
    since: float
    buckets: list[Bucket]

    @property
    def ended(self) -> int:
        return sum(b.total for b in self.buckets)

    @property
    def errored(self) -> int:
        return sum(b.ended["errored"] for b in self.buckets)

    @property
    def error_rate(self) -> float | None:
        """Errored / ended over the window (None: nothing ended)."""
        return None if not self.ended else self.errored / self.ended

    def percentile(self, q: float) -> float | None:
        merged: dict[int, int] = {}
        for bucket in self.buckets:
            for cls, n in bucket.classes.items():
                merged[cls] = merged.get(cls, 0) + n
        return percentile(merged, q)


def percentile(classes: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile of durations counted by ``DURATION_EDGES`` class, interpolated
    geometrically inside the class it falls in (None: no durations)."""
    total = sum(classes.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for cls in sorted(classes):
        n = classes[cls]
        if seen + n >= rank and n:
            if cls >= len(DURATION_EDGES):
                return DURATION_EDGES[-1]
            upper = DURATION_EDGES[cls]
            lower = DURATION_EDGES[cls - 1] if cls else upper / 1.5
            share = min(max((rank - seen) / n, 0.0), 1.0)
            return lower * math.pow(upper / lower, share)
        seen += n
    return DURATION_EDGES[-1]


def build_series(window: Window, now: float, counts: list[EndedCount]) -> Series:
    """The buckets of ``window`` ending with the one holding ``now``, filled from ``counts``."""
    since = window_start(window, now)
    buckets = [Bucket(since + i * window.width) for i in range(window.buckets)]
    for row in counts:
        if not 0 <= row.bucket < window.buckets:
            continue
        bucket = buckets[row.bucket]
        if row.status in bucket.ended:
            bucket.ended[row.status] += row.count
        bucket.classes[row.duration_class] = (
            bucket.classes.get(row.duration_class, 0) + row.count
        )
    return Series(window, since, buckets)


def window_start(window: Window, now: float) -> float:
    """Where ``window`` starts: buckets align to multiples of their width (UTC)."""
    end = (math.floor(now / window.width) + 1) * window.width
    return end - window.width * window.buckets


async def read_series(store: Store, workflow: str, window: Window, now: float) -> Series:
    """One chart's data: one query to the store."""
    since = window_start(window, now)
    counts = await store.count_ended(workflow, since, window.width, window.buckets)
    return build_series(window, now, counts)


class ActivityCache:
    """Series reused for their window's ``reuse`` seconds (per workflow), so a page refreshed
    every second queries the store at most once per chart in that time."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], tuple[float, Series]] = {}

    async def series(self, store: Store, workflow: str, now: float) -> list[Series]:
        found: list[Series] = []
        for window in WINDOWS:
            key = (workflow, window.key)
            kept = self._kept.get(key)
            if kept is None or time.monotonic() - kept[0] > window.reuse:
                kept = (time.monotonic(), await read_series(store, workflow, window, now))
                if len(self._kept) > 1000:
                    self._kept.clear()
                self._kept[key] = kept
            found.append(kept[1])
        return found


# Drawing.

WIDTH, HEIGHT = 640.0, 230.0
LEFT, RIGHT = 64.0, 12.0
BARS_TOP, BARS_HEIGHT = 12.0, 80.0
LINES_TOP, LINES_HEIGHT = 124.0, 80.0
COLORS = {"complete": "#1f8a4c", "errored": "#c62828", "terminated": "#757575"}


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    color: str
    outcome: str


@dataclass(frozen=True)
class Column:
    """One bucket drawn: its stacked bars and what its tooltip says."""

    x: float
    width: float
    rects: list[Rect]
    title: str


@dataclass(frozen=True)
class Chart:
    """One chart, ready for ``_activity.html.j2``: coordinates and the words to show."""

    id: str
    title: str
    summary: str
    description: str
    columns: list[Column]
    p50_points: str
    p95_points: str
    max_ended: int
    max_duration: str
    min_duration: str
    """The duration axis runs from ``min_duration`` to ``max_duration`` on a log scale."""
    first_label: str
    last_label: str
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    bars_top: float = BARS_TOP
    bars_bottom: float = BARS_TOP + BARS_HEIGHT
    lines_top: float = LINES_TOP
    lines_bottom: float = LINES_TOP + LINES_HEIGHT
    colors: dict[str, str] = field(default_factory=lambda: dict(COLORS))


def draw(series: Series, workflow: str) -> Chart:
    """The chart of ``series`` (the ids in it are unique per window)."""
    window = series.window
    plot = WIDTH - LEFT - RIGHT
    step = plot / window.buckets
    max_ended = max((b.total for b in series.buckets), default=0)
    p50s = [b.percentile(0.5) for b in series.buckets]
    p95s = [b.percentile(0.95) for b in series.buckets]
    known = [p for p in (*p50s, *p95s) if p is not None]
    max_duration = max(known, default=0.0)
    min_duration = min(min(known, default=0.0), max_duration / 10)
    columns: list[Column] = []
    for i, bucket in enumerate(series.buckets):
        x = LEFT + i * step
        rects: list[Rect] = []
        base = BARS_TOP + BARS_HEIGHT
        for outcome in OUTCOMES:
            n = bucket.ended[outcome]
            if not n:
                continue
            height = BARS_HEIGHT * n / max_ended
            base -= height
            bar = Rect(x + 0.5, base, max(step - 1.0, 0.5), height, COLORS[outcome], outcome)
            rects.append(bar)
        columns.append(Column(x, step, rects, _bucket_title(bucket, window, p50s[i], p95s[i])))
    rate = series.error_rate
    p50, p95 = series.percentile(0.5), series.percentile(0.95)
    summary = (
        f"{series.ended} ended · "
        + ("no errors" if not series.errored else f"{series.errored} errored")
        + (f" ({rate:.1%})" if rate else "")
        + (
            f" · p50 {format_duration(p50)} · p95 {format_duration(p95)}"
            if p50 is not None and p95 is not None
            else ""
        )
    )
    description = (
        f"{workflow}: instances ended per {window.per} over the {window.title.lower()} "
        f"(bars: complete, errored, terminated), and their duration from start to end "
        f"(lines: p50 and p95). {summary}."
    )
    return Chart(
        id=f"activity-{window.key}",
        title=f"{window.title}: throughput, duration and errors of {workflow}",
        summary=summary,
        description=description,
        columns=columns,
        p50_points=_points(p50s, min_duration, max_duration, step),
        p95_points=_points(p95s, min_duration, max_duration, step),
        max_ended=max_ended,
        max_duration=format_duration(max_duration) if max_duration else "",
        min_duration=format_duration(min_duration) if max_duration else "",
        first_label=_clock(series.since, window),
        last_label=_clock(series.since + window.width * window.buckets, window),
    )


def _points(values: list[float | None], low: float, high: float, step: float) -> str:
    """An SVG polyline's points on a log scale from ``low`` to ``high`` (a bucket with
    nothing ended is left out)."""
    if not high or low <= 0:
        return ""
    bottom = LINES_TOP + LINES_HEIGHT
    span = math.log(high / low) or 1.0

    def y(value: float) -> float:
        return bottom - LINES_HEIGHT * math.log(max(value, low) / low) / span

    return " ".join(
        f"{LEFT + (i + 0.5) * step:.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None
    )


def _bucket_title(bucket: Bucket, window: Window, p50: float | None, p95: float | None) -> str:
    when = f"{_clock(bucket.start, window)} to {_clock(bucket.start + window.width, window)} UTC"
    if not bucket.total:
        return f"{when}: none ended"
    counts = ", ".join(f"{n} {outcome}" for outcome, n in bucket.ended.items() if n)
    durations = (
        f"; p50 {format_duration(p50)}, p95 {format_duration(p95)}"
        if p50 is not None and p95 is not None
        else ""
    )
    return f"{when}: {counts}{durations}"


def _clock(moment: float, window: Window) -> str:
    """The time of ``moment`` (UTC), with its date when ``window`` spans a day or more (the
    two ends of a day's chart are the same time of day)."""
    spans_days = window.width * window.buckets >= 86400
    return datetime.fromtimestamp(moment, UTC).strftime("%d %b %H:%M" if spans_days else "%H:%M")


async def workflow_activity(
    cache: ActivityCache, store: Store, workflow: str, now: float
) -> list[Chart]:
    """The charts of a workflow's page: the last hour and the last day."""
    return [draw(series, workflow) for series in await cache.series(store, workflow, now)]
