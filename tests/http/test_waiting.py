"""What a waiting instance waits for (``waiting_for``) and ``retry-now``, through the API,
the Python handle and Studio's pages, on both stores."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Served
from tests.http.test_studio import csrf_of, rejected_page


async def waiting_for(served: Served, instance_id: str) -> list[dict[str, Any]]:
    await served.wait_status(instance_id, "waiting")
    body = (await served.client.get(f"/api/instances/{instance_id}")).json()
    return body["waiting_for"]  # type: ignore[no-any-return]


async def test_a_retry_wait_says_when_and_after_which_error(served: Served) -> None:
    served.env.fail_step("say", error=ConnectionError("bank down"))
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "ada"}}
    )

    [wait] = await waiting_for(served, "g")

    assert (wait["kind"], wait["step"]) == ("retry", "say")
    assert wait["error"]["name"] == "ConnectionError" and wait["error"]["message"] == "bank down"
    assert wait["error"]["attempts"] == 1 and wait["until"]
    status = await served.env.app.instance_handle("greet", "g").status()
    assert [(w.kind, w.step) for w in status.waiting_for] == [("retry", "say")]
    listed = (await served.client.get("/api/instances?workflow=greet")).json()["instances"]
    assert [w["kind"] for w in listed[0]["waiting_for"]] == ["retry"]


async def test_retry_now_runs_the_pending_retry_at_once(served: Served) -> None:
    served.env.fail_step("say")
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "ada"}}
    )
    [wait] = await waiting_for(served, "g")
    assert wait["kind"] == "retry"

    response = await served.client.post("/api/instances/g/retry-now")

    assert response.status_code == 200, response.text
    assert response.json()["id"] == "g"
    assert await served.result("g", "greet") == {"text": "hello ada", "mood": "happy"}
    steps = (await served.client.get("/api/instances/g")).json()["steps"]
    assert steps[0]["attempts"] == 2
    again = await served.client.post("/api/instances/g/retry-now")
    assert again.status_code == 409
    assert "complete" in again.json()["message"]


async def test_an_event_wait_names_its_type_and_refuses_retry_now(served: Served) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "a", "params": {}})

    [wait] = await waiting_for(served, "a")

    assert (wait["kind"], wait["step"], wait["event_type"]) == (
        "event",
        "await-approval",
        "approval",
    )
    assert wait["until"] is not None  # its 7-day timeout
    refused = await served.client.post("/api/instances/a/retry-now")
    assert refused.status_code == 409
    assert refused.json()["message"] == (
        "instance 'a' waits for an event, not for a retry: it has no retry to run now"
    )
    page = (await served.client.get("/studio/instances/a")).text
    assert 'data-wait="event"' in page and '<option value="approval"' in page
    assert "Retry now" not in page


async def test_a_parent_waits_for_its_children(served: Served) -> None:
    served.env.fail_step("say", times=None)  # children retry: the parent keeps waiting
    await served.client.post(
        "/api/workflows/fan-out/instances", json={"id": "p", "params": ["a", "b"]}
    )

    [wait] = await waiting_for(served, "p")

    assert wait["kind"] == "children"
    assert len(wait["children"]) == 2
    page = (await served.client.get("/studio/instances/p")).text
    assert 'data-wait="children"' in page
    assert 'name="type"' not in page  # no event form: it waits for no event


async def test_studio_offers_retry_now_for_a_retry_wait_only(served: Served) -> None:
    served.env.fail_step("say")
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "ada"}}
    )
    await waiting_for(served, "g")

    page = (await served.client.get("/studio/instances/g")).text
    listing = (await served.client.get("/studio/instances")).text

    assert 'data-wait="retry"' in page and "/studio/instances/g/retry-now" in page
    assert "retry of &#39;say&#39; at" in listing
    assert 'name="type"' not in page


async def test_studio_retry_now_button_runs_the_retry(served: Served) -> None:
    served.env.fail_step("say")
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "ada"}}
    )
    await waiting_for(served, "g")
    token = await csrf_of(served.client, "/studio/instances/g")

    done = await served.client.post("/studio/instances/g/retry-now", data={"csrf_token": token})

    assert done.status_code == 303
    assert done.headers["location"] == "/studio/instances/g?done=retry-now"
    assert await served.result("g", "greet") == {"text": "hello ada", "mood": "happy"}
    refused = await served.client.post("/studio/instances/g/retry-now", data={"csrf_token": token})
    shown = await rejected_page(served.client, refused, "/studio/instances/g")
    assert "only a waiting instance has a retry to run now" in shown
