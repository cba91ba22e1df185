"""Hostile input never makes the server answer 500: bodies nested past what a parser can
read, integers past Python's digit limit, cursors past a 64-bit integer, digits that are not
ASCII, malformed headers and cookies, and the same inputs in Studio's forms. Each is a 4xx
that says what is wrong."""

from __future__ import annotations

import httpx
import pytest

from tests.http.conftest import MakeServed, Served
from tests.http.test_studio import csrf_of, rejected_page

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "9" * 5_000
HUGE_CURSOR = "99999999999999999999999"
TOKEN = "x" * 40


async def start_waiting(served: Served, instance_id: str = "ap") -> None:
    await served.client.post(
        "/api/workflows/approval/instances", json={"id": instance_id, "params": {}}
    )
    await served.wait_status(instance_id, "waiting")


def json_post(client: httpx.AsyncClient, path: str, body: str) -> object:
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"params": ' + DEEP + "}", "nested"),
        ('{"params": ' + HUGE_INT + "}", "digits"),
    ],
    ids=["nested-100000", "int-5000-digits"],
)
async def test_unreadable_json_bodies_are_400_on_every_endpoint(
    served: Served, body: str, says: str
) -> None:
    await start_waiting(served)

    for path in (
        "/api/workflows/echo/instances",
        "/api/instances/ap/events",
        "/api/instances/ap/restart",
        "/api/instances/ap/terminate",
    ):
        response = await served.client.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (path, response.text[:300])
        assert response.json()["error"] == "invalid_json"
        assert says in response.json()["message"], response.json()
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "waiting"


async def test_cursors_past_a_64_bit_integer_are_400_in_the_api_and_studio(served: Served) -> None:
    api = await served.client.get(f"/api/instances?cursor={HUGE_CURSOR}")
    per_workflow = await served.client.get(f"/api/workflows/echo/instances?cursor={HUGE_CURSOR}")
    studio = await served.client.get(f"/studio/instances?cursor={HUGE_CURSOR}")

    for response in (api, per_workflow):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_cursor"
        assert "next_cursor" in response.json()["message"]
    assert studio.status_code == 400
    assert "next_cursor" in studio.text or "cursor" in studio.text


@pytest.mark.parametrize("cursor", ["\u0663", "+5", " 5", "1_000", "-1", "5.0", "\u00b2"])
async def test_cursors_are_ascii_digits_only(served: Served, cursor: str) -> None:
    response = await served.client.get("/api/instances", params={"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "1" * 5000, "+5", " 5"])
async def test_limits_are_ascii_digits_only(served: Served, limit: str) -> None:
    response = await served.client.get("/api/instances", params={"limit": limit})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_limit"


async def test_a_content_length_that_is_not_a_number_is_400(served: Served) -> None:
    for length in ("\u00b2", "-1", "1e3", "abc"):
        request = served.client.build_request(
            "POST", "/api/instances/ap/pause", headers={"Content-Length": length.encode()}
        )
        response = await served.client.send(request)
        assert response.status_code == 400, length
        assert response.json()["error"] == "invalid_content_length"


async def test_a_malformed_origin_is_a_cross_site_refusal_not_a_crash(served: Served) -> None:
    await start_waiting(served)

    for origin in ("http://[", "http://[::1", "http://a:b:c"):
        response = await served.client.post("/api/instances/ap/pause", headers={"Origin": origin})
        assert response.status_code == 403, origin
        assert response.json()["error"] == "cross_site"
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "waiting"


async def test_a_non_ascii_session_cookie_is_not_a_login(make_served: MakeServed) -> None:
    served = await make_served(token=TOKEN)
    cookie = {"Cookie": "fw_session=caf\u00e9".encode()}

    studio = await served.client.get("/studio", headers=cookie)
    api = await served.client.get("/api/workflows", headers=cookie)
    bearer = await served.client.get(
        "/api/workflows", headers={"Authorization": "Bearer caf\u00e9".encode()}
    )

    assert studio.status_code == 303 and "/studio/login" in studio.headers["location"]
    assert api.status_code == 401 and api.json()["error"] == "unauthorized"
    assert bearer.status_code == 401


async def test_a_login_next_that_is_not_a_url_goes_home(make_served: MakeServed) -> None:
    served = await make_served(token=TOKEN)
    token = await csrf_of(served.client, "/studio/login")

    page = await served.client.get("/studio/login", params={"next": "/studio/[x"})
    for target in ("http://[", "/studio/\u0000", "//[::1"):
        response = await served.client.post(
            "/studio/login", data={"csrf_token": token, "token": TOKEN, "next": target}
        )
        assert response.status_code == 303, target
        assert response.headers["location"] in ("/studio", target), target
    assert page.status_code == 200


@pytest.mark.parametrize(
    ("payload", "says"),
    [(DEEP, "nested"), (HUGE_INT, "digits")],
    ids=["nested-100000", "int-5000-digits"],
)
async def test_studio_event_form_refuses_unreadable_payloads_inline(
    served: Served, payload: str, says: str
) -> None:
    await start_waiting(served)
    token = await csrf_of(served.client, "/studio/instances/ap")

    response = await served.client.post(
        "/studio/instances/ap/event",
        data={"csrf_token": token, "type": "approval", "payload": payload},
    )

    shown = await rejected_page(served.client, response, "/studio/instances/ap")
    assert "the payload is not valid JSON" in shown and says in shown
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "waiting"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("p.tags", DEEP, "nested"),
        ("p.tags", HUGE_INT, "digits"),
        ("p.times", HUGE_INT, "times"),
        ("p.mood", "{not json", "not one of the choices"),
        ("p.mood", DEEP, "not one of the choices"),
    ],
    ids=["json-nested", "json-int", "integer-field-int", "select-garbage", "select-nested"],
)
async def test_studio_start_form_refuses_unreadable_fields_inline(
    served: Served, field: str, value: str, says: str
) -> None:
    token = await csrf_of(served.client, "/studio/workflows/greet")

    response = await served.client.post(
        "/studio/workflows/greet/start",
        data={"csrf_token": token, "p.name": "ada", field: value},
    )

    assert says in await rejected_page(served.client, response, "/studio/workflows/greet")
    listed = await served.client.get("/api/workflows/greet/instances")
    assert listed.json()["instances"] == []


async def test_studio_whole_params_field_refuses_unreadable_json_inline(served: Served) -> None:
    token = await csrf_of(served.client, "/studio/workflows/echo")

    for value, says in ((DEEP, "nested"), (HUGE_INT, "digits")):
        response = await served.client.post(
            "/studio/workflows/echo/start", data={"csrf_token": token, "p.params": value}
        )
        assert says in await rejected_page(served.client, response, "/studio/workflows/echo")


async def test_studio_restart_form_with_odd_steps_is_a_clear_answer(served: Served) -> None:
    await start_waiting(served)
    token = await csrf_of(served.client, "/studio/instances/ap")

    for choice in ("\u00b2:prepare", f"{HUGE_INT}:prepare", "99999999999999999999999:prepare"):
        response = await served.client.post(
            "/studio/instances/ap/restart", data={"csrf_token": token, "from_step": choice}
        )
        shown = await rejected_page(served.client, response, "/studio/instances/ap")
        assert "no step" in shown or "occurrence" in shown, choice


async def test_huge_restart_occurrences_are_422_not_an_overflow(served: Served) -> None:
    await start_waiting(served)

    response = await served.client.post(
        "/api/instances/ap/restart", json={"from_step": "prepare", "occurrence": 10**30}
    )

    assert response.status_code == 422
    assert response.json()["error"] in ("invalid_body", "unknown_step")


HOSTILE = [
    "",
    " ",
    "\x00",
    "\u00e9",
    "\u00b2",
    "\u0663",
    "9" * 30,
    "-1",
    "1e400",
    "NaN",
    "[" * 3000,
    "%",
    "%zz",
    "../..",
    "~",
    "~~",
    ".",
    "..",
    "x" * 5000,
    "<script>",
    "1:",
    ":x",
    "\u00b2:say",
    "null",
    '{"a": 1}',
]


async def test_no_query_parameter_makes_studio_or_the_api_answer_500(served: Served) -> None:
    await start_waiting(served)
    pages = {
        "/studio/instances": ("workflow", "status", "q", "cursor"),
        "/studio/instances/ap": ("done",),
        "/studio/login": ("next",),
        "/api/instances": ("workflow", "status", "search", "cursor", "limit"),
        "/api/workflows/echo/instances": ("status", "search", "cursor", "limit"),
    }

    for path, names in pages.items():
        for name in names:
            for value in HOSTILE:
                response = await served.client.get(path, params={name: value})
                assert response.status_code < 500, (path, name, value)


async def test_no_path_segment_makes_studio_or_the_api_answer_500(served: Served) -> None:
    from urllib.parse import quote

    await start_waiting(served)
    templates = [
        "/api/workflows/{}",
        "/api/workflows/{}/instances",
        "/api/instances/{}",
        "/api/instances/{}/output",
        "/studio/workflows/{}",
        "/studio/instances/{}",
        "/studio/instances/{}/output",
        "/studio/static/{}",
    ]

    for template in templates:
        for value in HOSTILE:
            if not value:
                continue
            response = await served.client.get(template.format(quote(value, safe="")))
            assert response.status_code < 500, (template, value)
    for value in HOSTILE[1:]:
        posted = await served.client.post(f"/api/instances/{quote(value, safe='')}/pause")
        assert posted.status_code < 500, value


async def test_no_form_field_makes_studio_answer_500(served: Served) -> None:
    await start_waiting(served)
    token = await csrf_of(served.client, "/studio/instances/ap")
    forms = {
        "/studio/workflows/greet/start": ("id", "p.name", "p.times", "p.mood", "p.loud", "p.tags"),
        "/studio/workflows/echo/start": ("id", "p.params"),
        "/studio/instances/ap/event": ("type", "payload"),
        "/studio/instances/ap/restart": ("from_step",),
        "/studio/instances/ap/terminate": ("compensate",),
    }

    for path, names in forms.items():
        for name in names:
            for value in HOSTILE:
                if path.endswith("terminate") and value not in ("", "x" * 5000, "\x00"):
                    continue  # a terminate that works ends the instance: keep a few
                response = await served.client.post(
                    path, data={"csrf_token": token, name: value, "p.name": "ada"}
                )
                assert response.status_code < 500, (path, name, value)


async def test_no_header_makes_studio_or_the_api_answer_500(make_served: MakeServed) -> None:
    served = await make_served(token=TOKEN)
    values = [v.encode() for v in HOSTILE] + [b"\xff\xfe", b"a\x80b"]
    targets = [("GET", "/studio"), ("GET", "/api/workflows"), ("POST", "/api/instances/x/pause")]

    for header in (
        "Cookie",
        "Authorization",
        "Origin",
        "Host",
        "X-Forwarded-Host",
        "Content-Type",
        "Sec-Fetch-Site",
        "Content-Length",
    ):
        for value in values:
            if header == "Cookie":
                value = b"fw_session=" + value + b"; fw_csrf=" + value
            if header == "Authorization":
                value = b"Bearer " + value
            for method, path in targets:
                request = served.client.build_request(method, path, headers={header: value})
                response = await served.client.send(request)
                assert response.status_code < 500, (header, value, method, path)


async def test_malformed_form_bodies_are_4xx(served: Served) -> None:
    await start_waiting(served)
    token = await csrf_of(served.client, "/studio/instances/ap")

    for content_type, body in (
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=x", b"garbage"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n"),
        ("application/x-www-form-urlencoded", b"%zz=%zz&" * 10),
        ("application/x-www-form-urlencoded", b"a=" + "\u00e9".encode("latin-1")),
        ("text/plain", f"csrf_token={token}".encode()),
    ):
        response = await served.client.post(
            "/studio/instances/ap/pause", content=body, headers={"Content-Type": content_type}
        )
        assert 400 <= response.status_code < 500, (content_type, body)
    assert (await served.client.get("/api/instances/ap")).json()["status"] == "waiting"
