"""Studio's forms post, then redirect to a page (post-redirect-get): a rejected form's input
and errors come back on the page its address names (a signed, short-lived cookie), so a reload
shows them again, a later visit shows a fresh form, and no page polls a form's address."""

from __future__ import annotations

import secrets
import zlib
from pathlib import Path

import httpx
import pytest

from framework.http import flash
from framework.http.state import HttpSettings, HttpState
from tests.http.conftest import Served
from tests.http.test_studio import csrf_of, field_block, rejected_page


async def reject_start(served: Served, **fields: str) -> httpx.Response:
    token = await csrf_of(served.client, "/studio/workflows/greet")
    data = {"csrf_token": token, "id": "bad", "p.name": "", "p.times": "many", **fields}
    return await served.client.post("/studio/workflows/greet/start", data=data)


async def test_a_rejected_start_form_shows_again_on_reload_and_not_on_a_later_visit(
    served: Served,
) -> None:
    response = await reject_start(served)

    first = await rejected_page(served.client, response, "/studio/workflows/greet")
    again = await rejected_page(served.client, response, "/studio/workflows/greet")  # F5
    later = (await served.client.get("/studio/workflows/greet")).text

    assert response.headers["location"].endswith("#start")
    for page in (first, again):
        assert "Field required" in field_block(page, "name")
        assert 'value="many"' in field_block(page, "times")
        assert 'name="id" value="bad"' in page
        assert "csrf_token" not in page.split('name="id"')[1].split("</form>")[0]
    assert "Field required" not in later and 'value="many"' not in later
    assert (await served.client.get("/api/instances/bad")).status_code == 404


async def test_a_forged_expired_or_foreign_flash_shows_a_fresh_form(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await reject_start(served)
    location = response.headers["location"].partition("#")[0]
    cookie = served.client.cookies[flash.FLASH_COOKIE]

    served.client.cookies.set(flash.FLASH_COOKIE, "x" + cookie)
    forged = (await served.client.get(location)).text
    served.client.cookies.set(flash.FLASH_COOKIE, cookie)
    other_workflow = (await served.client.get(location.replace("greet", "echo"))).text
    other_nonce = (await served.client.get(location[:-4] + "0000")).text
    monkeypatch.setattr(flash.time, "time", lambda: 4_000_000_000.0)
    expired = (await served.client.get(location)).text

    for page in (forged, other_workflow, other_nonce, expired):
        assert "Field required" not in page and 'value="many"' not in page


async def test_an_input_too_large_for_the_cookie_is_dropped_saying_so(served: Served) -> None:
    import secrets

    noise = secrets.token_hex(4000)  # 8,000 characters that do not compress
    response = await reject_start(served, **{"p.tags": noise})

    page = await rejected_page(served.client, response, "/studio/workflows/greet")

    assert len(served.client.cookies[flash.FLASH_COOKIE]) <= flash.COOKIE_BUDGET
    assert noise not in page
    assert "(8,000 characters) was too large to keep" in field_block(page, "tags")
    assert 'value="many"' in field_block(page, "times")  # the rest is kept


def compressed_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every text the flash compresses from now on."""
    sizes: list[int] = []
    compress = zlib.compress

    def measured(data: bytes, /, level: int = -1) -> bytes:
        sizes.append(len(data))
        return compress(data, level)

    monkeypatch.setattr(zlib, "compress", measured)
    return sizes


def test_the_flash_of_many_large_inputs_is_encoded_in_bounded_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = HttpState(Path.cwd(), HttpSettings())
    fields = {f"p.f{n}": secrets.token_urlsafe(2850)[: 100 + 18 * n] for n in range(199)}
    sizes = compressed_sizes(monkeypatch)

    value = flash._encode(state, flash.Flash("start", "many", dict(fields)))

    kept = flash._decode(state, value)
    assert kept is not None and len(value) <= flash.COOKIE_BUDGET
    # A few compressions of at most KEEP_BUDGET characters, not one of 756,000 per input.
    assert len(sizes) <= 12 and max(sizes) <= 2 * flash.KEEP_BUDGET, sizes
    typed = [name for name, text in kept.fields.items() if text]
    assert typed and typed == list(fields)[: len(typed)]  # the smallest, as many as fit
    assert kept.fields[typed[-1]] == fields[typed[-1]]
    assert "(3,664 characters) was too large to keep" in kept.errors["f198"][0]


async def test_a_form_post_of_inputs_the_form_does_not_have_keeps_none_of_them(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    noise = {f"x{n}": secrets.token_urlsafe(2850) for n in range(196)}  # 200 fields in all
    sizes = compressed_sizes(monkeypatch)

    response = await reject_start(served, **noise)

    assert sum(map(len, noise.values())) > 700_000
    page = await rejected_page(served.client, response, "/studio/workflows/greet")
    assert sum(sizes) < 2_000, sizes  # only the form's own inputs were kept
    assert 'value="many"' in field_block(page, "times")
    assert noise["x0"] not in page


async def test_a_rejected_event_keeps_its_input_and_the_page_refreshes_itself(
    served: Served,
) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")
    token = await csrf_of(served.client, "/studio/instances/ap")

    response = await served.client.post(
        "/studio/instances/ap/event",
        data={"csrf_token": token, "type": "approval", "payload": '{"ok": tru'},
    )
    page = await rejected_page(served.client, response, "/studio/instances/ap")

    assert response.headers["location"].endswith("#instance-event")
    event_form = page.split('id="instance-event"')[1].split("</form>")[0]
    assert "the payload is not valid JSON" in event_form
    assert "{&#34;ok&#34;: tru</textarea>" in event_form
    assert 'data-fw-poll="1000"' in page  # live, at its own (GET) address
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "waiting"


async def test_a_page_rendered_for_a_post_never_asks_to_be_polled(served: Served) -> None:
    await served.client.post("/api/workflows/approval/instances", json={"id": "ap", "params": {}})
    await served.wait_status("ap", "waiting")
    token = await csrf_of(served.client, "/studio/instances/ap")

    for path, data in (
        ("/studio/instances/ap/pause", {}),
        ("/studio/instances/ap/event", {"type": "", "payload": ""}),
        ("/studio/workflows/greet/start", {"p.name": ""}),
        ("/studio/instances/nope/pause", {}),
    ):
        response = await served.client.post(path, data={"csrf_token": token, **data})
        assert response.status_code in (303, 404), (path, response.status_code)
        assert "data-fw-poll" not in response.text, path
