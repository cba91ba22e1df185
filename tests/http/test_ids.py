"""Every stored instance is reachable by its id, whatever the id: ids stored before the id rule
may hold ``/``, a newline, ``.`` or ``..``, ``~``, spaces or any character. The API and Studio
address each with one path segment, never confuse an id holding ``/`` with a sub-resource, and
escape ids in every URL they write. Ids and search strings longer than any store holds are
refused before the store is asked."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import quote

import pytest

from framework.http.state import quote_id, studio_id, studio_segment
from framework.store.base import NewInstance
from tests.http.conftest import Served
from tests.http.test_studio import csrf_of

LEGACY_IDS = ["a\nb", "a\rb", "w/output", ".", "..", "~x", "a b", "100%", "q?x#y", "\u00e9t\u00e9"]


async def store_legacy(served: Served, *ids: str, params: str = "7") -> None:
    """Store instances as an fw from before the id rule did, and run them to completion."""
    store = await served.env.app.store()
    now = served.env.app.clock.now()
    await store.create_instances([NewInstance(i, "echo", params, now) for i in ids])
    for instance_id in ids:
        await served.result(instance_id, "echo")


async def start_waiting_legacy(served: Served, instance_id: str) -> None:
    store = await served.env.app.store()
    now = served.env.app.clock.now()
    await store.create_instances([NewInstance(instance_id, "approval", "{}", now)])
    await served.wait_status(quote_id(instance_id), "waiting")


@pytest.mark.parametrize("instance_id", LEGACY_IDS, ids=repr)
def test_url_segments_read_back_as_the_id(instance_id: str) -> None:
    from urllib.parse import unquote

    assert "/" not in quote_id(instance_id)
    assert unquote(quote_id(instance_id)) == instance_id
    segment = studio_segment(instance_id)
    assert "/" not in segment and unquote(segment) not in (".", "..")
    assert studio_id(unquote(segment)) == instance_id


async def test_every_legacy_id_is_reachable_through_the_api(served: Served) -> None:
    await store_legacy(served, *LEGACY_IDS)

    for instance_id in LEGACY_IDS:
        path = f"/api/instances/{quote_id(instance_id)}"
        detail = await served.client.get(path)
        output = await served.client.get(f"{path}/output")
        assert detail.status_code == 200, (instance_id, detail.text)
        assert detail.json()["id"] == instance_id
        assert output.status_code == 200 and output.json() == 7, instance_id
        restarted = await served.client.post(f"{path}/restart")
        assert restarted.status_code == 200, (instance_id, restarted.text)
        assert restarted.json()["id"] == instance_id
        await served.result(instance_id, "echo")


async def test_control_and_events_reach_a_legacy_id_with_a_newline(served: Served) -> None:
    await start_waiting_legacy(served, "ap\nproval")
    path = f"/api/instances/{quote_id('ap' + chr(10) + 'proval')}"

    paused = await served.client.post(f"{path}/pause")
    resumed = await served.client.post(f"{path}/resume")
    sent = await served.client.post(
        f"{path}/events", json={"type": "approval", "payload": {"ok": True}}
    )

    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert resumed.status_code == 200
    assert sent.status_code == 202
    assert await served.result("ap\nproval", "approval") == {"ok": True}


async def test_an_encoded_slash_is_part_of_the_id_not_a_sub_resource(served: Served) -> None:
    await store_legacy(served, "w", params="1")

    missing = await served.client.get("/api/instances/w%2Foutput")
    missing_studio = await served.client.get("/studio/instances/w%2Foutput")
    await store_legacy(served, "w/output", params="2")
    found = await served.client.get("/api/instances/w%2Foutput")
    output_of_w = await served.client.get("/api/instances/w/output")
    output_of_slash = await served.client.get("/api/instances/w%2Foutput/output")

    assert missing.status_code == 404
    assert missing.json()["error"] == "instance_not_found"
    assert "'w/output'" in missing.json()["message"]
    assert missing_studio.status_code == 404
    assert found.json()["id"] == "w/output"
    assert output_of_w.json() == 1
    assert output_of_slash.json() == 2


async def test_studio_reaches_and_controls_every_legacy_id(served: Served) -> None:
    await store_legacy(served, *LEGACY_IDS, "e1")
    listing = (await served.client.get("/studio/instances")).text
    links = {
        unescape(m.group(2)): unescape(m.group(1))
        for m in re.finditer(r'<a class="mono" href="([^"]+)">([^<]*)</a>', listing)
    }
    token = await csrf_of(served.client, "/studio/instances/e1")

    for instance_id in LEGACY_IDS:
        href = links[instance_id]
        assert href == f"/studio/instances/{studio_segment(instance_id)}"
        page = await served.client.get(href)
        assert page.status_code == 200, (instance_id, page.text[:300])
        assert instance_id in unescape(page.text)
        actions = set(re.findall(r'<form method="post" action="([^"]+)"', page.text))
        assert f"{href}/restart" in {unescape(a) for a in actions}, actions
        download = await served.client.get(f"{href}/output")
        assert download.json() == 7
        restarted = await served.client.post(f"{href}/restart", data={"csrf_token": token})
        assert restarted.status_code == 303, (instance_id, restarted.text[:300])
        assert restarted.headers["location"] == f"{href}?done=restart"
        await served.result(instance_id, "echo")


async def test_studio_404_links_to_close_matches_escaped(served: Served) -> None:
    await store_legacy(served, "order/17")

    page = await served.client.get(f"/studio/instances/{quote('order/71', safe='')}")

    assert page.status_code == 404
    assert 'href="/studio/instances/order%2F17"' in page.text


async def test_the_location_of_a_new_instance_is_escaped(served: Served) -> None:
    created = await served.client.post(
        "/api/workflows/echo/instances", json={"id": "a:b.c_d-e", "params": 1}
    )

    assert created.status_code == 201
    assert created.headers["location"] == "/api/instances/a:b.c_d-e"
    assert quote_id("a b/c\n") == "a%20b%2Fc%0A"


@pytest.mark.parametrize("length", [4097, 50_000])
async def test_over_long_ids_are_404_before_the_store_is_asked(served: Served, length: int) -> None:
    long_id = "x" * length

    api = await served.client.get(f"/api/instances/{long_id}")
    output = await served.client.get(f"/api/instances/{long_id}/output")
    control = await served.client.post(f"/api/instances/{long_id}/pause")
    studio = await served.client.get(f"/studio/instances/{long_id}")

    for response in (api, output, control):
        assert response.status_code == 404, response.text[:200]
        assert response.json()["error"] == "instance_not_found"
        assert f"{length:,} characters" in response.json()["message"]
    assert studio.status_code == 404


async def test_a_stored_id_of_4096_characters_is_still_reachable(served: Served) -> None:
    await store_legacy(served, "y" * 2000)

    response = await served.client.get(f"/api/instances/{'y' * 2000}")

    assert response.status_code == 200


@pytest.mark.parametrize("length", [4097, 50_000])
async def test_over_long_searches_are_400_before_the_store_is_asked(
    served: Served, length: int
) -> None:
    await store_legacy(served, "e1")
    text = "x" * length

    api = await served.client.get("/api/instances", params={"search": text})
    per_workflow = await served.client.get("/api/workflows/echo/instances", params={"search": text})
    workflow = await served.client.get("/api/instances", params={"workflow": text})
    studio = await served.client.get("/studio/instances", params={"q": text})

    for response in (api, per_workflow):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_search"
    assert workflow.status_code == 400 and workflow.json()["error"] == "invalid_workflow"
    assert studio.status_code == 400


async def test_nul_in_ids_and_filters_is_a_plain_miss(served: Served) -> None:
    await store_legacy(served, "e1")

    detail = await served.client.get("/api/instances/e%001")
    search = await served.client.get("/api/instances", params={"search": "e\x00"})
    workflow = await served.client.get("/api/instances", params={"workflow": "echo\x00"})
    studio = await served.client.get("/studio/instances/e%001")
    event = await served.client.post(
        "/api/instances/e1/events", json={"type": "a\x00b", "payload": None}
    )

    assert detail.status_code == 404
    assert search.status_code == 200 and search.json()["instances"] == []
    assert workflow.status_code == 200 and workflow.json()["instances"] == []
    assert studio.status_code == 404
    assert event.status_code == 422 and event.json()["error"] == "invalid_body"
