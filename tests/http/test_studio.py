"""Studio's pages and forms, over HTTP: what each page shows, the start form with inline
errors, the controls, live refresh hints, and serving under a mount prefix."""

from __future__ import annotations

import re
from html import unescape

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from framework.http import create_app
from tests.http.conftest import Served

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


async def csrf_of(client: httpx.AsyncClient, path: str) -> str:
    """The CSRF field of a page's forms (the client keeps the cookie)."""
    page = await client.get(path)
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


async def rejected_page(client: httpx.AsyncClient, response: httpx.Response, page: str) -> str:
    """The page a rejected Studio form redirects to (post-redirect-get), fetched as a
    browser would: its address is ``page`` naming the flash, and it shows by GET."""
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert re.fullmatch(re.escape(page) + r"\?form=[0-9a-f]{16}(#[a-z-]+)?", location), location
    shown = await client.get(location.partition("#")[0])
    assert shown.status_code == 200
    return shown.text


def field_block(html: str, key: str) -> str:
    """The HTML of the start form's field ``key``."""
    start = html.index(f'data-field="{key}"')
    return html[start : html.index("</label>", start)]


async def test_the_workflows_page_lists_every_workflow(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "e", "params": 1})
    await served.result("e", "echo")

    response = await served.client.get("/studio")

    assert response.status_code == 200
    html = response.text
    for text in ("greet", "GREET_WORKFLOW", "GreetWorkflow", "workflows/greet_workflow.py"):
        assert text in html
    assert "1 complete" in html
    assert 'href="/studio/instances?workflow=echo&amp;status=complete"' in html
    assert "data-fw-poll" not in html  # nothing live: no refresh
    assert response.headers["content-security-policy"].startswith("default-src 'self'")


async def test_the_root_goes_to_studio(served: Served) -> None:
    response = await served.client.get("/")

    assert response.status_code == 307
    assert response.headers["location"] == "/studio"


async def test_the_start_form_is_built_from_the_params_schema(served: Served) -> None:
    html = (await served.client.get("/studio/workflows/greet")).text

    assert 'name="id"' in html
    assert '<input type="text" name="p.name"' in html
    assert "Who to greet." in html
    assert 'name="p.times" value="1"' in html
    assert '<option value="&#34;grumpy&#34;">grumpy</option>' in html
    assert '<input type="checkbox" name="p.loud" value="true">' in html
    assert '<textarea name="p.tags"' in html
    assert "Params schema" in html


async def test_starting_from_the_form_opens_the_new_instance(served: Served) -> None:
    token = await csrf_of(served.client, "/studio/workflows/greet")

    response = await served.client.post(
        "/studio/workflows/greet/start",
        data={
            "csrf_token": token,
            "id": "from-form",
            "p.name": "ada",
            "p.times": "2",
            "p.mood": '"grumpy"',
            "p.loud": "true",
            "p.tags": '["x"]',
        },
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/studio/instances/from-form?done=started"
    detail = (await served.client.get("/api/instances/from-form")).json()
    assert detail["params"] == {
        "name": "ada",
        "times": 2,
        "mood": "grumpy",
        "loud": True,
        "tags": ["x"],
    }
    page = await served.client.get(response.headers["location"])
    assert "Instance started." in page.text


async def test_invalid_params_show_inline_and_nothing_is_stored(served: Served) -> None:
    token = await csrf_of(served.client, "/studio/workflows/greet")

    response = await served.client.post(
        "/studio/workflows/greet/start",
        data={"csrf_token": token, "id": "bad", "p.name": "", "p.times": "many", "p.tags": "[1,"},
    )

    html = await rejected_page(served.client, response, "/studio/workflows/greet")
    assert "Field required" in field_block(html, "name")
    assert "not valid JSON" in field_block(html, "tags")
    assert 'value="many"' in field_block(html, "times")  # what was typed is kept
    assert 'value="bad"' in html
    assert (await served.client.get("/api/instances/bad")).status_code == 404

    token = await csrf_of(served.client, "/studio/workflows/greet")
    response = await served.client.post(
        "/studio/workflows/greet/start",
        data={"csrf_token": token, "p.name": "x", "p.times": "many"},
    )
    html = await rejected_page(served.client, response, "/studio/workflows/greet")
    assert "unable to parse string as an integer" in field_block(html, "times")
    assert (await served.client.get("/api/instances")).json()["instances"] == []


async def test_whole_params_use_one_json_field(served: Served) -> None:
    token = await csrf_of(served.client, "/studio/workflows/fan-out")

    response = await served.client.post(
        "/studio/workflows/fan-out/start",
        data={"csrf_token": token, "id": "fan", "p.params": '["a", 3]'},
    )

    html = await rejected_page(served.client, response, "/studio/workflows/fan-out")
    assert "1: Input should be a valid string" in field_block(html, "params")


async def test_the_instance_page_shows_steps_children_and_refreshes_while_live(
    served: Served,
) -> None:
    await served.client.post(
        "/api/workflows/fan-out/instances", json={"id": "fan", "params": ["ann", "bo"]}
    )
    await served.result("fan", "fan-out")
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")

    done = (await served.client.get("/studio/instances/fan")).text
    live = (await served.client.get("/studio/instances/ap")).text
    child = (await served.client.get("/studio/instances/fan:greet:1")).text

    assert "data-fw-poll" not in done
    assert 'data-step="greet #2" data-kind="child" data-status="complete"' in done
    assert 'href="/studio/instances/fan:greet:2"' in done
    assert "Download output (JSON)" in done
    assert 'href="/studio/instances/fan/output"' in done
    assert 'data-fw-poll="1000"' in live
    assert "waits for event <code>approval</code>" in live
    assert 'data-step="prepare"' in live
    assert '<option value="1:prepare">from prepare</option>' in live
    assert 'href="/studio/instances/fan"' in child  # the parent link
    assert "hello ann" in child


async def test_controls_pause_resume_send_events_and_say_when_they_do_not_apply(
    served: Served,
) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")
    token = await csrf_of(served.client, "/studio/instances/ap")

    paused = await served.client.post("/studio/instances/ap/pause", data={"csrf_token": token})
    again = await served.client.post("/studio/instances/ap/pause", data={"csrf_token": token})
    refusal = await rejected_page(served.client, again, "/studio/instances/ap")
    resumed = await served.client.post("/studio/instances/ap/resume", data={"csrf_token": token})
    await served.wait_status("ap", "waiting")
    bad_payload = await served.client.post(
        "/studio/instances/ap/event",
        data={"csrf_token": token, "type": "approval", "payload": "{oops"},
    )
    shown = await rejected_page(served.client, bad_payload, "/studio/instances/ap")
    sent = await served.client.post(
        "/studio/instances/ap/event",
        data={"csrf_token": token, "type": "approval", "payload": '{"ok": true}'},
    )

    assert paused.status_code == 303
    assert paused.headers["location"] == "/studio/instances/ap?done=pause"
    assert "instance &#39;ap&#39; is paused: cannot pause" in refusal
    assert resumed.status_code == 303
    assert "the payload is not valid JSON" in shown
    assert "{oops" in shown
    assert sent.status_code == 303
    assert await served.result("ap", "approval") == {"ok": True}


async def test_restart_and_terminate_from_the_page(served: Served) -> None:
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "x"}}
    )
    await served.result("g", "greet")
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")
    token = await csrf_of(served.client, "/studio/instances/g")

    restarted = await served.client.post(
        "/studio/instances/g/restart", data={"csrf_token": token, "from_step": "1:rest"}
    )
    terminated = await served.client.post(
        "/studio/instances/ap/terminate", data={"csrf_token": token}
    )

    assert restarted.status_code == 303
    assert await served.result("g", "greet") == {"text": "hello x", "mood": "happy"}
    assert terminated.status_code == 303
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "terminated"
    page = (await served.client.get("/studio/instances/ap?done=terminate")).text
    assert "Terminated." in page and 'name="type"' not in page  # no event form once ended


async def test_a_restart_from_a_step_the_journal_lacks_shows_409_on_the_page(
    served: Served,
) -> None:
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "x"}}
    )
    await served.result("g", "greet")
    token = await csrf_of(served.client, "/studio/instances/g")

    refused = await served.client.post(
        "/studio/instances/g/restart", data={"csrf_token": token, "from_step": "2:rest"}
    )

    shown = await rejected_page(served.client, refused, "/studio/instances/g")
    assert "has no step &#39;rest&#39; (occurrence 2) in its journal" in shown
    assert (await served.client.get("/api/instances/g")).json()["status"] == "complete"


async def test_the_instances_page_filters_searches_and_pages(served: Served) -> None:
    for n in range(55):
        await served.client.post(
            "/api/workflows/echo/instances", json={"id": f"e-{n:02}", "params": n}
        )
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})

    first = (await served.client.get("/studio/instances?workflow=echo")).text
    older_link = re.search(r'class="next-page" href="([^"]+)"', first)
    assert older_link
    second = (await served.client.get(unescape(older_link.group(1)))).text
    search = (await served.client.get("/studio/instances?q=e-1")).text

    ids = re.findall(r'data-instance="([^"]+)"', first)
    assert len(ids) == 50 and ids[0] == "e-54" and "ap" not in ids
    assert re.findall(r'data-instance="([^"]+)"', second) == [
        "e-04",
        "e-03",
        "e-02",
        "e-01",
        "e-00",
    ]
    assert sorted(re.findall(r'data-instance="([^"]+)"', search)) == [f"e-1{n}" for n in range(10)]
    # Any case; three characters or more read the trigram index, fewer read the instances.
    upper = (await served.client.get("/studio/instances?q=E-1")).text
    assert re.findall(r'data-instance="([^"]+)"', upper) == [f"e-1{n}" for n in range(9, -1, -1)]
    short = (await served.client.get("/studio/instances?q=5")).text
    assert re.findall(r'data-instance="([^"]+)"', short) == [
        *(f"e-5{n}" for n in range(4, -1, -1)), *(f"e-{n}5" for n in range(4, -1, -1))
    ]
    api = (await served.client.get("/api/instances?search=E-5&limit=3")).json()
    assert [i["id"] for i in api["instances"]] == ["e-54", "e-53", "e-52"]
    rest = await served.client.get(f"/api/instances?search=E-5&cursor={api['next_cursor']}")
    assert [i["id"] for i in rest.json()["instances"]] == ["e-51", "e-50"]


async def test_unknown_names_and_ids_show_close_matches(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "order-17", "params": 1})

    workflow = await served.client.get("/studio/workflows/gret")
    instance = await served.client.get("/studio/instances/order-71")

    assert workflow.status_code == 404
    assert 'href="/studio/workflows/greet"' in workflow.text
    assert instance.status_code == 404
    assert 'href="/studio/instances/order-17"' in instance.text


async def test_studio_serves_under_a_mount_prefix(served: Served) -> None:
    outer = Starlette(routes=[Mount("/fw", app=create_app(served.env.app, token=""))])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        await client.post("/fw/api/workflows/echo/instances", json={"id": "e", "params": 1})
        page = (await client.get("/fw/studio")).text
        token = await csrf_of(client, "/fw/studio/workflows/echo")
        started = await client.post(
            "/fw/studio/workflows/echo/start", data={"csrf_token": token, "p.params": "2"}
        )
        instance = await client.get("/fw/studio/instances/e")
        static = await client.get("/fw/studio/static/live.js")

    assert 'href="/fw/studio/workflows/echo"' in page
    assert 'src="/fw/studio/static/live.js"' in page
    assert started.status_code == 303 and started.headers["location"].startswith("/fw/studio/")
    assert (
        'action="/fw/studio/instances/e/pause"' in instance.text
        or "/fw/studio/instances/e/" in instance.text
    )
    assert static.status_code == 200 and "fwLive" in static.text


async def test_errors_have_a_collapsible_traceback_and_large_outputs_are_cut(
    served: Served,
) -> None:
    await served.client.post("/api/workflows/boom/instances", json={"id": "b", "params": "nope"})
    await served.wait_status("b", "errored")
    big = [f"row {n:05}" for n in range(5000)]
    await served.client.post("/api/workflows/echo/instances", json={"id": "big", "params": big})
    await served.result("big", "echo")

    errored = (await served.client.get("/studio/instances/b")).text
    large = (await served.client.get("/studio/instances/big")).text

    assert '<span class="name">NonRetryableError</span> in step <code>explode</code>' in errored
    tb = '<details id="tb-step-1"><summary>Traceback</summary><pre class="traceback">Traceback'
    assert tb in errored
    shown = errored.split('id="tb-step-1"')[1].split("</pre>")[0]
    assert "NonRetryableError: nope" in shown
    assert "in explode" in shown and "framework/runtime" not in shown  # the user's frames only
    assert "Showing the first 20000 of" in large
    assert "row 04999" not in large.split('id="output"')[1].split("</pre>")[0]
    assert 'href="/studio/instances/big/output" download' in large
    download = await served.client.get("/studio/instances/big/output")
    assert download.headers["content-disposition"] == 'attachment; filename="big-output.json"'
    assert download.json() == (await served.client.get("/api/instances/big/output")).json()


async def test_the_instance_page_shows_runs_and_its_own_retention(served: Served) -> None:
    body = {"id": "kept", "params": {"name": "ada"}, "retention": "3 hours"}
    await served.client.post("/api/workflows/greet/instances", json=body)
    await served.result("kept", "greet")
    await served.client.post("/api/workflows/echo/instances", json={"id": "plain", "params": 1})
    await served.result("plain", "echo")

    kept = (await served.client.get("/studio/instances/kept")).text
    plain = (await served.client.get("/studio/instances/plain")).text

    assert '<dd id="instance-runs" title="times a worker started running it">2</dd>' in kept
    assert '<dd id="instance-retention">kept 3 h once ended</dd>' in kept
    assert '<dd id="instance-duration">' in kept
    assert '<dd id="instance-runs" title="times a worker started running it">1</dd>' in plain
    assert "instance-retention" not in plain
