"""``GET /metrics``: Prometheus text, parsed by prometheus_client's own parser, after real runs
on each store: an instance that completes (through a sleep), one that errors, some queued."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.http.conftest import MakeServed, Served


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[(name, frozenset(labels.items()))]


async def test_metrics_count_real_runs_and_read_the_store(served: Served) -> None:
    env = served.env
    greeted = await env.start("greet", {"name": "ada"})
    failed = await env.start("boom", "no luck")
    await greeted.result(timeout=30)
    await env.wait_for(failed, "errored")

    response = await served.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    for workflow in ("greet", "boom"):
        assert value(found, "fw_instances_started_total", workflow=workflow) == 1
    assert value(found, "fw_instances_ended_total", workflow="greet", outcome="complete") == 1
    assert value(found, "fw_instances_ended_total", workflow="boom", outcome="errored") == 1
    assert (
        "fw_instances_ended_total",
        frozenset({("workflow", "approval"), ("outcome", "complete")}),
    ) not in found
    # One attempt each: greet's say completed, boom's explode failed (not retryable).
    assert value(found, "fw_step_duration_seconds_count", workflow="greet", outcome="complete") == 1
    assert value(found, "fw_step_duration_seconds_count", workflow="boom", outcome="failed") == 1
    assert value(found, "fw_step_attempts_count", workflow="boom") == 1
    assert value(found, "fw_step_attempts_sum", workflow="boom") == 1
    assert value(found, "fw_step_attempts_bucket", workflow="greet", le="1.0") == 1
    # greet's sleep fired once, on time (the test clock skips to its due time).
    assert value(found, "fw_timer_lag_seconds_count", workflow="greet") == 1
    assert 0 <= value(found, "fw_timer_lag_seconds_sum", workflow="greet") < 5
    # The store's state, read at scrape time.
    assert value(found, "fw_store_up") == 1
    assert value(found, "fw_instances", workflow="greet", status="complete") == 1
    assert value(found, "fw_instances", workflow="boom", status="errored") == 1
    assert value(found, "fw_instances", workflow="greet", status="running") == 0
    assert value(found, "fw_backlog_instances", workflow="greet") == 0
    assert value(found, "fw_workers_alive") == 1


async def test_the_backlog_is_what_is_due_and_unclaimed(served: Served) -> None:
    env = served.env
    await env.worker.stop()  # nobody claims: what is started stays due
    await env.get("echo").create_batch([{"params": n} for n in range(3)])

    found = samples((await served.client.get("/metrics")).text)

    assert value(found, "fw_backlog_instances", workflow="echo") == 3
    assert value(found, "fw_instances", workflow="echo", status="queued") == 3
    assert value(found, "fw_instances_started_total", workflow="echo") == 3
    assert value(found, "fw_workers_alive") == 0


async def test_metrics_follow_the_api_token(make_served: MakeServed) -> None:
    token, reader = "t" * 40, "r" * 40
    served = await make_served(token=token, read_token=reader)

    refused = await served.client.get("/metrics")
    wrong = await served.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    scraped = await served.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    read = await served.client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"] == "unauthorized"
    assert wrong.status_code == 401
    assert scraped.status_code == 200
    assert read.status_code == 200  # the read-only token reads metrics
    assert "fw_store_up 1.0" in scraped.text


async def test_metrics_are_in_the_openapi_document(served: Served) -> None:
    document = (await served.client.get("/openapi.json")).json()

    operation = document["paths"]["/metrics"]["get"]

    assert operation["operationId"] == "get_metrics"
    assert "text/plain" in operation["responses"]["200"]["content"]
