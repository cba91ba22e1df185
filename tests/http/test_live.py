"""``workflow_status`` and live polling on users' own pages: the middleware adds the polling
script while a polled status is live, at the shortest interval, and stops when all are done."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jinja2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

import framework
from framework.errors import InstanceNotFoundError
from framework.http import LiveStatusMiddleware, register_jinja, workflow_status
from framework.http.live import LiveStatus, inject_script, poll_script
from framework.runtime.app import App
from framework.testing import workflow_test_env
from tests.http.conftest import Served, write_test_app

POLL = re.compile(r'<script data-fw-poll="(\d+)">')


def page(body: str) -> str:
    return f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>"


def user_app(app: App, templates_dir: Path | None = None) -> Starlette:
    """A user's own Starlette app with pages that poll statuses."""

    async def one(request: Request) -> Response:
        query = request.query_params
        until = query.get("until") or None
        status = await workflow_status(
            query["workflow"], request.path_params["id"], poll=query.get("poll"), until=until
        )
        return HTMLResponse(page(f'<p id="status">{status.status}</p>'))

    async def several(request: Request) -> Response:
        shown = []
        for spec in request.query_params.getlist("s"):
            workflow, instance_id, poll = spec.split(",")
            shown.append((await workflow_status(workflow, instance_id, poll=poll)).status)
        return HTMLResponse(page(" ".join(shown)))

    async def as_json(request: Request) -> Response:
        status = await workflow_status("approval", request.path_params["id"], poll="1s")
        return JSONResponse({"status": status.status})

    async def predicate(request: Request) -> Response:
        status = await workflow_status(
            "approval", request.path_params["id"], poll="1s", until=lambda s: s.status == "waiting"
        )
        return HTMLResponse(page(status.status))

    return Starlette(
        routes=[
            Route("/one/{id}", one),
            Route("/several", several),
            Route("/json/{id}", as_json),
            Route("/predicate/{id}", predicate),
        ],
        middleware=[Middleware(LiveStatusMiddleware, fw_app=app)],
    )


@pytest.fixture
async def pages(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=user_app(served.env.app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def start_waiting(served: Served, instance_id: str) -> None:
    await served.client.post(
        "/api/workflows/approval/instances", json={"id": instance_id, "params": {}}
    )
    await served.wait_status(instance_id, "waiting")


async def start_complete(served: Served, instance_id: str) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": instance_id, "params": 5})
    await served.result(instance_id, "echo")


async def test_the_value_reads_like_an_async_value(served: Served) -> None:
    await start_complete(served, "c")  # first: awaiting it skips time, which times waits out
    await start_waiting(served, "w")

    waiting = await workflow_status("approval", "w", app=served.env.app)
    complete = await workflow_status("echo", "c", app=served.env.app)

    assert isinstance(waiting, LiveStatus)
    assert (waiting.status, waiting.pending, waiting.success, waiting.done) == (
        "waiting",
        True,
        False,
        False,
    )
    assert waiting.output is None and waiting.error is None
    assert (complete.status, complete.pending, complete.success, complete.value) == (
        "complete",
        False,
        True,
        5,
    )
    assert framework.workflow_status is workflow_status


async def test_an_unknown_instance_or_workflow_is_not_found(served: Served) -> None:
    await start_complete(served, "c")

    with pytest.raises(InstanceNotFoundError):
        await workflow_status("echo", "nope", app=served.env.app)
    with pytest.raises(InstanceNotFoundError):
        await workflow_status("approval", "c", app=served.env.app)


async def test_a_live_status_adds_the_polling_script(
    served: Served, pages: httpx.AsyncClient
) -> None:
    await start_waiting(served, "w")

    response = await pages.get("/one/w?workflow=approval&poll=2s")

    assert POLL.findall(response.text) == ["2000"]
    assert response.text.index("data-fw-poll") < response.text.index("</body>")
    assert int(response.headers["content-length"]) == len(response.content)
    assert '<p id="status">waiting</p>' in response.text


async def test_no_script_once_terminal_without_poll_or_for_json(
    served: Served, pages: httpx.AsyncClient
) -> None:
    await start_complete(served, "c")  # first: awaiting it skips time, which times waits out
    await start_waiting(served, "w")

    terminal = await pages.get("/one/c?workflow=echo&poll=1s")
    no_poll = await pages.get("/one/w?workflow=approval")
    as_json = await pages.get("/json/w")

    assert "data-fw-poll" not in terminal.text
    assert "data-fw-poll" not in no_poll.text
    assert as_json.json() == {"status": "waiting"}


async def test_several_polls_use_the_shortest_live_interval(
    served: Served, pages: httpx.AsyncClient
) -> None:
    await start_complete(served, "c")
    await start_waiting(served, "w1")
    await start_waiting(served, "w2")

    both_live = await pages.get("/several?s=approval,w1,5s&s=approval,w2,1500ms")
    one_done = await pages.get("/several?s=approval,w1,3s&s=echo,c,500ms")
    all_done = await pages.get("/several?s=echo,c,1s")

    assert POLL.findall(both_live.text) == ["1500"]
    assert POLL.findall(one_done.text) == ["3000"]
    assert "data-fw-poll" not in all_done.text


async def test_polling_stops_when_until_holds(served: Served, pages: httpx.AsyncClient) -> None:
    await start_waiting(served, "w")

    by_status = await pages.get("/one/w?workflow=approval&poll=1s&until=waiting")
    by_predicate = await pages.get("/predicate/w")
    not_yet = await pages.get("/one/w?workflow=approval&poll=1s&until=paused")

    assert "data-fw-poll" not in by_status.text
    assert "data-fw-poll" not in by_predicate.text
    assert POLL.findall(not_yet.text) == ["1000"]


async def test_the_page_stops_polling_when_the_instance_ends(
    served: Served, pages: httpx.AsyncClient
) -> None:
    await start_waiting(served, "w")
    before = await pages.get("/one/w?workflow=approval&poll=1s")

    await served.client.post("/api/instances/w/events", json={"type": "approval", "payload": 1})
    await served.result("w", "approval")
    after = await pages.get("/one/w?workflow=approval&poll=1s")

    assert "data-fw-poll" in before.text
    assert "data-fw-poll" not in after.text
    assert '<p id="status">complete</p>' in after.text


async def test_the_jinja_global_in_an_async_environment(served: Served) -> None:
    await start_waiting(served, "w")
    env = jinja2.Environment(enable_async=True, autoescape=True)
    register_jinja(env, app=served.env.app)
    template = env.from_string(
        '{% set s = workflow_status("approval", id, poll="1s") %}<html><body>{{ s.status }}'
        "</body></html>"
    )

    async def render(request: Request) -> Response:
        return HTMLResponse(await template.render_async(id="w"))

    app = Starlette(routes=[Route("/", render)], middleware=[Middleware(LiveStatusMiddleware)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.get("/")

    assert '<body>waiting<script data-fw-poll="1000">' in response.text


async def test_the_jinja_global_with_starlette_templates(tmp_path: Path, sqlite_url: str) -> None:
    root = write_test_app(tmp_path)
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / "order.html").write_text(
        '{% set s = workflow_status("approval", id, poll="2s") %}'
        "<html><body><p>{{ s.status }}</p></body></html>"
    )
    templates = Jinja2Templates(directory=tmp_path / "views")
    register_jinja(templates.env, app=root)

    async def order(request: Request) -> Response:
        return templates.TemplateResponse(request, "order.html", {"id": request.path_params["id"]})

    app = Starlette(
        routes=[Route("/orders/{id}", order)], middleware=[Middleware(LiveStatusMiddleware)]
    )
    async with workflow_test_env(root, database=sqlite_url) as env:
        waiting = await env.start("approval", {}, id="w")
        await env.wait_for(waiting, "waiting")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/orders/w")

    assert "<p>waiting</p>" in response.text
    assert POLL.findall(response.text) == ["2000"]


def test_the_script_goes_before_the_last_closing_body_tag() -> None:
    script = poll_script(1.5).encode()

    assert inject_script(b"<p>x</p>", 1.5) == b"<p>x</p>" + script
    assert inject_script(b"<BODY>a</BODY >\n", 1.5) == b"<BODY>a" + script + b"</BODY >\n"
    assert inject_script(b"<body>'</body>'</body>", 1.5).endswith(script + b"</body>")
    assert "</script" not in poll_script(1).removesuffix("</script>")
