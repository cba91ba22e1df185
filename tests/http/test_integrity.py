"""What the API stores is what it can read back, and its answers say what happened: JSON
past the reader's limits is refused with 422, rows stored before that check still render,
and concurrent starts of one id answer exactly one 201. On both stores."""

from __future__ import annotations

import asyncio

from framework.store.base import NewInstance
from tests.http.conftest import Served
from tests.http.test_studio import csrf_of, rejected_page

DEEP = "[" * 250 + "]" * 250


async def test_an_event_payload_nested_past_the_limit_is_422_and_the_instance_untouched(
    served: Served,
) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")

    deep = await served.client.post(
        "/api/instances/ap/events",
        content='{"type": "approval", "payload": ' + DEEP + "}",
        headers={"Content-Type": "application/json"},
    )
    not_finite = await served.client.post(
        "/api/instances/ap/events",
        content='{"type": "approval", "payload": {"score": NaN}}',
        headers={"Content-Type": "application/json"},
    )

    assert deep.status_code == 422, deep.text
    assert deep.json()["error"] == "not_serializable"
    assert "nested 250 levels deep, over the limit of 200 levels" in deep.json()["message"]
    assert not_finite.status_code == 400  # JSON has no NaN: the body is not JSON
    assert not_finite.json()["error"] == "invalid_json"
    detail = await served.client.get("/api/instances/ap")
    assert detail.status_code == 200 and detail.json()["status"] == "waiting"
    ok = await served.client.post(
        "/api/instances/ap/events", json={"type": "approval", "payload": {"ok": True}}
    )
    assert ok.status_code == 202
    assert await served.result("ap", "approval") == {"ok": True}


async def test_params_that_could_not_be_read_back_are_422_and_nothing_is_stored(
    served: Served,
) -> None:
    deep = await served.client.post(
        "/api/workflows/echo/instances",
        content='{"id": "deep", "params": ' + DEEP + "}",
        headers={"Content-Type": "application/json"},
    )
    infinite = await served.client.post(
        "/api/workflows/echo/instances",
        content='{"id": "inf", "params": [1, Infinity]}',
        headers={"Content-Type": "application/json"},
    )

    assert deep.status_code == 422 and deep.json()["error"] == "not_serializable"
    assert "the params of workflow 'echo' is JSON nested 250 levels deep" in deep.json()["message"]
    assert infinite.status_code == 400 and infinite.json()["error"] == "invalid_json"
    listing = await served.client.get("/api/instances")
    assert listing.json()["instances"] == []


async def test_rows_stored_before_the_check_show_as_unreadable_and_the_rest_renders(
    served: Served,
) -> None:
    store = await served.env.app.store()
    now = served.env.app.clock.now()
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")
    # As fw stored them before refusing such JSON at the door.
    await store.create_instances([NewInstance("old-params", "echo", DEEP, now)])
    await store.send_event("ap", "approval", DEEP, now)
    await served.wait_status("ap", "errored")
    await served.wait_status("old-params", "errored")

    event = await served.client.get("/api/instances/ap")
    params = await served.client.get("/api/instances/old-params")
    listing = await served.client.get("/api/instances")
    page = await served.client.get("/studio/instances/old-params")
    event_page = await served.client.get("/studio/instances/ap")
    studio_list = await served.client.get("/studio/instances")

    assert event.status_code == 200, event.text
    (prepare, wait) = event.json()["steps"]
    assert wait["output"] is None and "nested deeper than 200" in wait["unreadable"]["output"]
    assert prepare["unreadable"] == {} and prepare["output"] == "ready"
    assert "event payload taken by 'await-approval' is nested deeper than 200 levels" in (
        event.json()["error"]["message"]
    )
    assert params.status_code == 200
    assert params.json()["params"] is None
    assert "nested deeper than 200 levels" in params.json()["unreadable"]["params"]
    assert listing.status_code == 200
    assert {i["id"] for i in listing.json()["instances"]} == {"ap", "old-params"}
    assert page.status_code == 200 and "Unreadable: the stored JSON is nested deeper" in page.text
    assert event_page.status_code == 200 and "Output unreadable:" in event_page.text
    assert studio_list.status_code == 200 and "old-params" in studio_list.text


async def test_concurrent_starts_of_one_id_answer_one_201_and_say_if_params_differ(
    served: Served,
) -> None:
    bodies = [{"id": "once", "params": n % 2} for n in range(20)]

    answers = await asyncio.gather(
        *(served.client.post("/api/workflows/echo/instances", json=body) for body in bodies)
    )

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] * 19 + [201], [a.json() for a in answers]
    (winner,) = [n for n, a in enumerate(answers) if a.status_code == 201]
    assert answers[winner].json()["created"] is True
    for n, answer in enumerate(answers):
        body = answer.json()
        assert body["id"] == "once"
        assert body["created"] is (n == winner)
        assert body["params_match"] is (n % 2 == winner % 2), (n, winner, body)
    assert await served.result("once", "echo") == winner % 2


async def test_an_id_of_another_workflow_is_409_id_conflict(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "e1", "params": 1})

    response = await served.client.post(
        "/api/workflows/boom/instances", json={"id": "e1", "params": "x"}
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "id_conflict",
        "message": "id 'e1' already belongs to an instance of workflow 'echo'; nothing was stored",
    }


async def test_studio_shows_a_refused_event_payload_in_the_form(served: Served) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")
    token = await csrf_of(served.client, "/studio/instances/ap")

    response = await served.client.post(
        "/studio/instances/ap/event",
        data={"csrf_token": token, "type": "approval", "payload": DEEP},
    )

    shown = await rejected_page(served.client, response, "/studio/instances/ap")
    assert "nested 250 levels deep, over the limit of 200" in shown
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "waiting"
