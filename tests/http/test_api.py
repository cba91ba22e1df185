"""The JSON API on both stores: every endpoint, its errors and its pagination."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from framework.store.base import NewInstance
from tests.http.conftest import MakeServed, Served

STATUSES = {"queued", "running", "waiting", "paused", "complete", "errored", "terminated"}


async def test_workflows_are_listed_with_schemas_and_counts(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"params": 1})

    response = await served.client.get("/api/workflows")

    assert response.status_code == 200
    workflows = {w["name"]: w for w in response.json()["workflows"]}
    assert sorted(workflows) == ["approval", "boom", "echo", "fan-out", "greet"]
    greet = workflows["greet"]
    assert greet["binding"] == "GREET_WORKFLOW"
    assert greet["class_name"] == "GreetWorkflow"
    assert greet["file"] == "workflows/greet_workflow.py"
    assert len(greet["version"]) == 12
    assert set(greet["counts"]) == STATUSES
    assert greet["params_schema"]["required"] == ["name"]
    assert greet["params_schema"]["properties"]["times"]["description"] == "How many times."
    assert greet["output_schema"]["type"] == "object"
    assert workflows["echo"]["total"] == 1
    one = await served.client.get("/api/workflows/greet")
    assert one.json()["params_schema"] == greet["params_schema"]


async def test_start_creates_then_returns_the_existing_instance(served: Served) -> None:
    body = {"id": "greet-1", "params": {"name": "ada", "times": 2}}

    created = await served.client.post("/api/workflows/greet/instances", json=body)
    again = await served.client.post("/api/workflows/greet/instances", json=body)

    assert created.status_code == 201
    assert created.json()["id"] == "greet-1" and created.json()["workflow"] == "greet"
    assert created.json()["status"] in ("queued", "running", "waiting")  # a worker may be on it
    assert created.headers["location"] == "/api/instances/greet-1"
    assert again.status_code == 200
    assert again.json()["id"] == "greet-1"
    assert await served.result("greet-1", "greet") == {
        "text": "hello ada hello ada",
        "mood": "happy",
    }


async def test_a_random_id_is_given_when_none_is_sent(served: Served) -> None:
    response = await served.client.post("/api/workflows/echo/instances", json={"params": [1, 2]})

    assert response.status_code == 201
    assert len(response.json()["id"]) == 32


async def test_invalid_params_are_422_with_field_errors_and_nothing_is_stored(
    served: Served,
) -> None:
    response = await served.client.post(
        "/api/workflows/greet/instances", json={"id": "bad", "params": {"times": 9, "mood": "meh"}}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_params"
    errors = {tuple(e["loc"]): e for e in body["detail"]}
    assert set(errors) == {("params", "name"), ("params", "times"), ("params", "mood")}
    assert errors[("params", "name")]["type"] == "missing"
    assert errors[("params", "times")]["msg"] == "Input should be less than or equal to 5"
    assert "params.name: Field required" in body["message"]
    missing = await served.client.get("/api/instances/bad")
    assert missing.status_code == 404
    listing = await served.client.get("/api/workflows/greet/instances")
    assert listing.json()["instances"] == []


async def test_a_malformed_body_is_400_or_422(served: Served) -> None:
    not_json = await served.client.post(
        "/api/workflows/echo/instances",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    extra = await served.client.post("/api/workflows/echo/instances", json={"param": 1})
    no_type = await served.client.post("/api/instances/x/events", json={"payload": 1})

    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid_json"
    assert extra.status_code == 422
    assert extra.json()["detail"][0]["loc"] == ["param"]
    assert no_type.status_code == 404  # the instance is checked first


async def test_an_unknown_workflow_is_404_with_close_matches(served: Served) -> None:
    start = await served.client.post("/api/workflows/gret/instances", json={"params": {}})
    listing = await served.client.get("/api/workflows/aproval/instances")
    one = await served.client.get("/api/workflows/fan_out")

    assert start.status_code == 404
    assert start.json()["error"] == "unknown_workflow"
    assert start.json()["close_matches"] == ["greet"]
    assert "did you mean 'greet'?" in start.json()["message"]
    assert listing.status_code == 404
    assert listing.json()["close_matches"] == ["approval"]
    assert one.json()["close_matches"] == ["fan-out"]


async def test_an_instance_has_status_output_params_version_and_steps(served: Served) -> None:
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "bo", "loud": True}}
    )
    await served.result("g", "greet")

    body = (await served.client.get("/api/instances/g")).json()

    assert body["status"] == "complete"
    assert body["output"] == {"text": "HELLO BO", "mood": "happy"}
    assert body["params"] == {"name": "bo", "times": 1, "mood": "happy", "loud": True, "tags": []}
    assert body["error"] is None
    assert len(body["version"]) == 12
    assert body["parent"] is None and body["children"] == []
    steps = {s["name"]: s for s in body["steps"]}
    assert steps["say"]["kind"] == "do" and steps["say"]["attempts"] == 1
    assert steps["say"]["output"] == "HELLO BO"
    assert steps["rest"]["kind"] == "sleep" and steps["rest"]["wake_at"]
    assert steps["say"]["duration"] >= 0


async def test_children_link_to_their_parent_and_ids_with_colons_route(served: Served) -> None:
    await served.client.post(
        "/api/workflows/fan-out/instances", json={"id": "fan", "params": ["a", "b"]}
    )
    await served.result("fan", "fan-out")

    parent = (await served.client.get("/api/instances/fan")).json()
    child_id = parent["children"][0]["id"]
    child = (await served.client.get(f"/api/instances/{child_id}")).json()

    assert ":" in child_id
    assert [c["status"] for c in parent["children"]] == ["complete", "complete"]
    assert {s["child_status"] for s in parent["steps"]} == {"complete"}
    assert child["parent"]["id"] == "fan"
    assert child["parent"]["workflow"] == "fan-out"


async def test_an_id_outside_the_id_rule_is_refused_and_nothing_is_stored(served: Served) -> None:
    for bad in ["a/b", "a\nb", ".", "..", "x" * 101, "é"]:
        response = await served.client.post(
            "/api/workflows/echo/instances", json={"id": bad, "params": 7}
        )
        assert response.status_code == 422, bad
        assert response.json()["error"] == "invalid_id"
    listed = await served.client.get("/api/instances")
    assert listed.json()["instances"] == []


async def test_an_id_with_a_slash_stored_before_the_id_rule_is_addressed_percent_encoded(
    served: Served,
) -> None:
    store = await served.env.app.store()
    now = served.env.app.clock.now()
    await store.create_instances([NewInstance("a/b c", "echo", "7", now)])
    await served.result("a/b c", "echo")
    path = quote("a/b c", safe="")

    detail = await served.client.get(f"/api/instances/{path}")
    output = await served.client.get(f"/api/instances/{path}/output")

    assert detail.json()["id"] == "a/b c"
    assert output.json() == 7


async def test_instances_are_listed_newest_first_a_page_at_a_time(served: Served) -> None:
    for n in range(5):
        await served.client.post("/api/workflows/echo/instances", json={"id": f"e{n}", "params": n})
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})

    seen: list[str] = []
    cursor = ""
    while True:
        page = await served.client.get(f"/api/workflows/echo/instances?limit=2&cursor={cursor}")
        assert page.status_code == 200
        seen += [i["id"] for i in page.json()["instances"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == ["e4", "e3", "e2", "e1", "e0"]
    everything = (await served.client.get("/api/instances?search=e")).json()["instances"]
    assert [i["id"] for i in everything] == ["e4", "e3", "e2", "e1", "e0"]
    mixed = (await served.client.get("/api/instances")).json()["instances"]
    assert mixed[0]["id"] == "ap" and "output" not in mixed[0]


async def test_listing_filters_by_status_and_rejects_bad_queries(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "done", "params": 1})
    await served.result("done", "echo")
    await served.client.post("/api/workflows/approval/instances", json={"id": "w", "params": {}})
    await served.wait_status("w", "waiting")

    complete = await served.client.get("/api/instances?status=complete")
    bad_status = await served.client.get("/api/instances?status=finished")
    bad_limit = await served.client.get("/api/instances?limit=0")
    bad_cursor = await served.client.get("/api/instances?cursor=zzz")

    assert [i["id"] for i in complete.json()["instances"]] == ["done"]
    assert bad_status.status_code == 400 and "queued" in bad_status.json()["message"]
    assert bad_limit.status_code == 400
    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"] == "invalid_cursor"


async def test_pause_resume_terminate_and_409_when_an_action_does_not_apply(served: Served) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")

    paused = await served.client.post("/api/instances/ap/pause")
    paused_again = await served.client.post("/api/instances/ap/pause")
    resumed = await served.client.post("/api/instances/ap/resume")
    resumed_again = await served.client.post("/api/instances/ap/resume")
    await served.wait_status("ap", "waiting")
    terminated = await served.client.post("/api/instances/ap/terminate")
    terminated_again = await served.client.post("/api/instances/ap/terminate")
    late_event = await served.client.post("/api/instances/ap/events", json={"type": "approval"})

    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert paused_again.status_code == 409
    assert paused_again.json() == {
        "error": "invalid_state",
        "message": "instance 'ap' is paused: cannot pause",
    }
    assert resumed.status_code == 200 and resumed.json()["status"] in (
        "queued",
        "running",
        "waiting",
    )
    assert resumed_again.status_code == 409
    assert terminated.json()["status"] == "terminated"
    assert terminated_again.status_code == 409
    assert late_event.status_code == 409
    unknown = await served.client.post("/api/instances/ap/explode")
    assert unknown.status_code == 404


@pytest.mark.parametrize("action", ["pause", "resume", "terminate", "restart", "retry-now"])
async def test_every_control_checks_its_body_and_changes_nothing_when_it_is_refused(
    served: Served, action: str
) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")
    path = f"/api/instances/ap/{action}"

    as_text = await served.client.post(path, content="x", headers={"Content-Type": "text/plain"})
    malformed = await served.client.post(
        path, content="{", headers={"Content-Type": "application/json"}
    )
    unknown_option = await served.client.post(path, json={"nope": 1})

    assert as_text.status_code == 415
    assert as_text.json()["error"] == "unsupported_media_type"
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "invalid_json"
    assert unknown_option.status_code == 422
    assert unknown_option.json()["error"] == "invalid_body"
    for response in (as_text, malformed, unknown_option):
        assert {"error", "message"} <= set(response.json()), response.json()
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "waiting"


async def test_controls_without_options_take_no_body_or_an_empty_object(served: Served) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")

    paused = await served.client.post("/api/instances/ap/pause")
    resumed = await served.client.post("/api/instances/ap/resume", json={})

    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert resumed.status_code == 200


async def test_an_event_completes_a_waiting_instance(served: Served) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")

    response = await served.client.post(
        "/api/instances/ap/events", json={"type": "approval", "payload": {"ok": True}}
    )

    assert response.status_code == 202
    assert response.json()["event"] == "approval"
    assert await served.result("ap", "approval") == {"ok": True}


async def test_restart_from_a_journaled_step(served: Served) -> None:
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "x"}}
    )
    await served.result("g", "greet")

    unknown = await served.client.post("/api/instances/g/restart", json={"from_step": "nope"})
    restarted = await served.client.post("/api/instances/g/restart", json={"from_step": "rest"})
    await served.result("g", "greet")
    whole = await served.client.post("/api/instances/g/restart")

    assert unknown.status_code == 409  # the request is well formed; the journal lacks the step
    assert unknown.json()["error"] == "unknown_step"
    assert unknown.json()["steps"] == ["rest", "say"]
    assert "has no step 'nope' (occurrence 1) in its journal" in unknown.json()["message"]
    assert restarted.status_code == 200
    assert restarted.json()["status"] in ("queued", "running", "waiting")  # a worker may be on it
    assert whole.status_code == 200
    assert await served.result("g", "greet") == {"text": "hello x", "mood": "happy"}


async def test_an_unknown_instance_is_404_with_close_matches(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "order-17", "params": 1})

    detail = await served.client.get("/api/instances/order-71")
    action = await served.client.post("/api/instances/order-1/pause")
    event = await served.client.post("/api/instances/zzz/events", json={"type": "t"})

    assert detail.status_code == 404
    assert detail.json()["error"] == "instance_not_found"
    assert detail.json()["close_matches"] == ["order-17"]
    assert "did you mean 'order-17'?" in detail.json()["message"]
    assert action.status_code == 404 and action.json()["close_matches"] == ["order-17"]
    assert event.status_code == 404 and event.json()["close_matches"] == []


async def test_an_errored_instance_shows_its_error(served: Served) -> None:
    await served.client.post("/api/workflows/boom/instances", json={"id": "b", "params": "no luck"})
    await served.wait_status("b", "errored")

    body = (await served.client.get("/api/instances/b")).json()
    output = await served.client.get("/api/instances/b/output")

    assert body["error"]["name"] == "NonRetryableError"
    assert body["error"]["message"] == "no luck"
    assert body["error"]["step"] == "explode"
    assert body["error"]["retryable"] is False
    assert output.status_code == 409 and output.json()["error"] == "no_output"


async def test_the_output_downloads_as_json(served: Served) -> None:
    big = {"rows": ["x" * 100] * 500}
    await served.client.post("/api/workflows/echo/instances", json={"id": "big", "params": big})
    await served.result("big", "echo")

    response = await served.client.get("/api/instances/big/output")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="big-output.json"'
    assert response.json() == big


async def test_a_body_over_the_limit_is_413(make_served: MakeServed) -> None:
    served = await make_served(body_limit=2_000)
    payload = {"params": "x" * 3_000}

    declared = await served.client.post("/api/workflows/echo/instances", json=payload)

    async def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield b"x" * 1_000

    streamed = await served.client.post("/api/workflows/echo/instances", content=chunks())

    assert declared.status_code == 413
    assert declared.json()["error"] == "body_too_large"
    assert "2,000 bytes" in declared.json()["message"]
    assert streamed.status_code == 413
    assert (await served.client.get("/api/instances")).json()["instances"] == []


async def test_params_over_the_payload_limit_are_413(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from framework.http import create_app
    from framework.testing import workflow_test_env
    from tests.apps import write_app
    from tests.http.conftest import ECHO

    root = write_app(tmp_path, {"echo_workflow.py": ECHO}, "[runtime]\npayload_limit = 100\n")
    async with workflow_test_env(root, database=database_url) as env:
        transport = httpx.ASGITransport(app=create_app(env.app, token=""))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post(
                "/api/workflows/echo/instances", json={"params": "y" * 500}
            )

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_unknown_paths_answer_json_under_api_and_a_page_elsewhere(served: Served) -> None:
    api = await served.client.get("/api/nothing")
    wrong_method = await served.client.delete("/api/workflows")
    page = await served.client.get("/studio/nothing/here")

    assert api.status_code == 404 and api.json()["error"] == "not_found"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"
    assert page.status_code == 404 and "<h1>404" in page.text


async def test_terminate_can_compensate_first(served: Served) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")

    response = await served.client.post("/api/instances/ap/terminate", json={"compensate": True})
    bad = await served.client.post("/api/instances/ap/terminate", json={"compensate": "maybe"})

    assert response.status_code == 200
    await served.wait_status("ap", "terminated")
    assert bad.status_code == 422


async def test_start_with_a_retention_and_read_it_back_with_runs_and_duration(
    served: Served,
) -> None:
    body = {"id": "kept", "params": {"name": "ada"}, "retention": "2 days"}

    created = await served.client.post("/api/workflows/greet/instances", json=body)
    await served.result("kept", "greet")
    detail = (await served.client.get("/api/instances/kept")).json()
    listed = (await served.client.get("/api/instances")).json()["instances"]

    assert created.status_code == 201
    assert detail["retention"] == 172800.0
    assert detail["runs"] == 2  # greet sleeps once: a run before the sleep, one after
    assert detail["ended_at"] is not None and detail["duration"] >= 1.0
    assert (listed[0]["id"], listed[0]["retention"], listed[0]["runs"]) == ("kept", 172800.0, 2)
    seconds = await served.client.post(
        "/api/workflows/echo/instances", json={"params": 1, "retention": 60}
    )
    assert (await served.client.get(f"/api/instances/{seconds.json()['id']}")).json()[
        "retention"
    ] == 60.0


async def test_a_bad_retention_is_422_naming_the_field_and_nothing_is_stored(
    served: Served,
) -> None:
    for retention in ("soon", -5, True, {"days": 2}):
        body = {"id": "bad", "params": 1, "retention": retention}
        response = await served.client.post("/api/workflows/echo/instances", json=body)

        assert response.status_code == 422, response.text
        assert "retention" in response.text
    assert (await served.client.get("/api/instances/bad")).status_code == 404


async def test_a_retention_past_what_the_document_allows_is_422_saying_why(
    served: Served,
) -> None:
    """The document bounds a retention (a number by ``maximum``, text by its digits per
    unit), and the server refuses what it leaves out, saying why."""
    document = (await served.client.get("/openapi.json")).json()
    body = document["paths"]["/api/workflows/echo/instances"]["post"]["requestBody"]
    text, number, _ = body["content"]["application/json"]["schema"]["properties"]["retention"][
        "anyOf"
    ]
    assert number["maximum"] == 1000 * 365.25 * 86400
    for retention, said in (
        (number["maximum"] * 2, "longer than the longest fw takes"),
        ("9000000000 weeks", "longer than the longest fw takes"),
        ("200000 days", "too many digits for its unit"),
    ):
        assert re.fullmatch(text["pattern"], str(retention)) is None
        body = {"id": "far", "params": 1, "retention": retention}
        response = await served.client.post("/api/workflows/echo/instances", json=body)
        assert response.status_code == 422, response.text
        assert said in response.text
    kept = {"id": "far", "params": 1, "retention": "99999 days"}
    assert re.fullmatch(text["pattern"], kept["retention"])
    assert (await served.client.post("/api/workflows/echo/instances", json=kept)).status_code == 201
