"""Studio's activity chart of a workflow: the series from the store (one query per chart),
its percentiles, and the inline SVG on the workflow's page, on each store."""

from __future__ import annotations

import re

from framework.http.activity import (
    WINDOWS,
    Bucket,
    build_series,
    draw,
    percentile,
    window_start,
)
from framework.http.templating import studio_environment
from framework.store.base import DURATION_EDGES, EndedCount
from tests.http.conftest import Served

HOUR, DAY = WINDOWS
NOW = 1_800_000_030.0  # 30 s into a minute


def cls(seconds: float) -> int:
    return next(i for i, edge in enumerate(DURATION_EDGES) if seconds < edge)


def test_percentiles_fall_inside_the_class_of_the_true_value() -> None:
    durations = [0.2] * 50 + [3.0] * 45 + [40.0] * 5
    classes: dict[int, int] = {}
    for d in durations:
        classes[cls(d)] = classes.get(cls(d), 0) + 1

    p50, p95 = percentile(classes, 0.5), percentile(classes, 0.95)

    assert p50 is not None and p95 is not None
    assert DURATION_EDGES[cls(0.2) - 1] <= p50 <= DURATION_EDGES[cls(0.2)]
    assert DURATION_EDGES[cls(3.0) - 1] <= p95 <= DURATION_EDGES[cls(3.0)]
    assert percentile({}, 0.5) is None


def test_the_windows_end_with_the_bucket_holding_now() -> None:
    since = window_start(HOUR, NOW)

    assert since == NOW - 30 - 59 * 60
    assert window_start(DAY, NOW) % 1800 == 0
    assert window_start(DAY, NOW) + 48 * 1800 > NOW


def test_a_series_counts_throughput_errors_and_durations() -> None:
    counts = [
        EndedCount(59, "complete", cls(0.5), 3),
        EndedCount(59, "errored", cls(2.0), 1),
        EndedCount(10, "terminated", cls(100.0), 1),
        EndedCount(60, "complete", cls(1.0), 9),  # beyond the window: ignored
    ]

    series = build_series(HOUR, NOW, counts)

    assert len(series.buckets) == 60
    assert series.ended == 5 and series.errored == 1
    assert series.error_rate == 0.2
    last: Bucket = series.buckets[-1]
    assert last.ended == {"complete": 3, "errored": 1, "terminated": 0}
    chart = draw(series, "greet")
    assert chart.max_ended == 4
    assert chart.summary.startswith("5 ended · 1 errored (20.0%) · p50 ")
    assert [len(c.rects) for c in chart.columns].count(0) == 58
    assert len(chart.p50_points.split()) == 2  # the two buckets where something ended


def test_a_day_chart_dates_its_ends_which_share_a_time_of_day() -> None:
    day = draw(build_series(DAY, NOW, []), "greet")
    hour = draw(build_series(HOUR, NOW, []), "greet")

    assert re.fullmatch(r"\d\d [A-Z][a-z]{2} \d\d:\d\d", day.first_label), day.first_label
    assert day.first_label != day.last_label
    assert day.first_label[-5:] == day.last_label[-5:]
    assert re.fullmatch(r"\d\d:\d\d", hour.first_label), hour.first_label


def test_the_chart_escapes_what_it_shows() -> None:
    series = build_series(HOUR, NOW, [EndedCount(3, "complete", cls(1.0), 2)])
    chart = draw(series, "<b>bold</b>")
    macro = studio_environment().get_template("_activity.html.j2").module.activity_chart  # type: ignore[attr-defined]

    html = str(macro(chart))

    assert "<b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'role="img"' in html and 'aria-labelledby="activity-hour-title activity-hour-desc"' in html


async def test_the_workflow_page_charts_real_runs(served: Served) -> None:
    env = served.env
    for name in ("ada", "grace"):
        await (await env.start("greet", {"name": name})).result(timeout=30)
    failed = await env.start("boom", "no luck")
    await env.wait_for(failed, "errored")

    greet = (await served.client.get("/studio/workflows/greet")).text
    boom = (await served.client.get("/studio/workflows/boom")).text

    assert greet.count('<svg class="activity-chart"') == 2  # the last hour and the last day
    assert "Last hour: throughput, duration and errors of greet</title>" in greet
    assert re.search(r"2 ended · no errors · p50 \S+", greet)
    for chart in greet.split('<svg class="activity-chart"')[1:]:  # the hour's, the day's
        # Both runs end in the bucket of now, or (a minute boundary between them) in the one
        # before it too: one bar per bucket where something ended.
        titles = re.findall(r"<title>[^<]* to [^<]* UTC: (\d+) complete; p50 ", chart)
        assert sum(int(n) for n in titles) == 2 and 1 <= len(titles) <= 2, titles
        assert chart.count('class="o-complete"') == len(titles)
    assert "1 ended · 1 errored (100.0%)" in boom
    assert 'class="o-errored"' in boom
