"""The OpenAPI document tells the truth about the server.

Schemathesis runs all its checks (status codes, schemas, headers, positive data accepted,
negative data refused, methods and ``Allow`` headers, stateful sequences) against a live
``fw serve --worker`` of the example app, on each store, with a fixed seed and a fixed number
of examples per operation. The document's paths are derived from the API's route table; the
tests below also check that they are the app's routes, and that every path answers a method it
does not serve with 405 and an ``Allow`` header.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from framework.http import create_app
from framework.http.api import API_ROUTES
from framework.http.openapi import OPERATIONS
from framework.http.routing import SegmentRoute
from tests.http.conftest import MakeServed, Served
from tests.http.servers import run_fw

EXAMPLE_APP = Path(__file__).resolve().parents[2] / "example_app"
SCHEMATHESIS = [
    sys.executable,
    "-m",
    "schemathesis.cli",
    "run",
    "--checks",
    "all",
    "--max-examples",
    "10",
    "--seed",
    "1",
    "--generation-database",
    "none",
    "--request-timeout",
    "20",
    "--no-color",
]
METHODS = {"get", "post", "put", "patch", "delete"}
SCHEMATHESIS_TOML = """
# The events a body may carry depend on the workflow of the instance the path names (the
# components <Workflow>Events): a type that workflow never waits for is refused with 422.
[[operations]]
include-operation-id = "send_event"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"
]
"""


def test_schemathesis_finds_no_difference_between_the_document_and_the_server(
    tmp_path: Path, database_url: str
) -> None:
    env = {"FW_DATABASE_URL": database_url}
    (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_TOML)
    with run_fw(["serve", "--worker"], EXAMPLE_APP, tmp_path / "serve.log", env) as served:
        done = subprocess.run(
            [*SCHEMATHESIS, f"{served.url}/openapi.json"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert served.stop() == 0, served.log.read_text()[-3000:]

    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "Tested: 28" in done.stdout, report  # every operation of the example app
    assert "failures" not in done.stdout.split("SUMMARY")[-1].lower(), report
    assert "Internal Server Error" not in served.log.read_text()


async def test_the_documents_paths_are_the_apis_routes(served: Served) -> None:
    document = (await served.client.get("/openapi.json")).json()
    workflows = [w["name"] for w in (await served.client.get("/api/workflows")).json()["workflows"]]
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }

    expected: set[tuple[str, str]] = set()
    for route in API_ROUTES:
        if OPERATIONS[route.operation_id].per_workflow:
            expected |= {(route.method, route.path.replace("{name}", w)) for w in workflows}
        else:
            expected.add((route.method, route.path))
    assert documented == expected
    assert set(OPERATIONS) == {route.operation_id for route in API_ROUTES}

    asgi = create_app(served.env.app, token="")
    served_routes = {
        (method, route.path)
        for route in asgi.routes
        if isinstance(route, SegmentRoute)
        and (route.path.startswith("/api") or route.path == "/metrics")
        for method in route.handlers
        if method != "HEAD"
    }
    assert served_routes == {(route.method, route.path) for route in API_ROUTES}


async def test_every_path_answers_an_unserved_method_with_405_and_allow(served: Served) -> None:
    document = (await served.client.get("/openapi.json")).json()
    paths = {
        path.replace("{id}", "some-id").replace("{name}", "greet"): item
        for path, item in document["paths"].items()
    }

    for path, item in paths.items():
        allowed = {method.upper() for method in item if method in METHODS}
        if "GET" in allowed:
            allowed.add("HEAD")
        for method in ("TRACE", "PUT", "DELETE", "PATCH", "OPTIONS"):
            response = await served.client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert set(response.headers["allow"].split(", ")) == allowed, (method, path)
            assert response.json()["error"] == "method_not_allowed"
    studio = await served.client.request("PUT", "/studio/login")
    assert studio.status_code == 405 and studio.headers["allow"] == "GET, HEAD, POST"


async def test_query_parameters_are_refused_as_the_document_says(served: Served) -> None:
    for query, error in (
        ("limit=", "invalid_limit"),
        ("status=", "invalid_status"),
        ("workflow=", "invalid_workflow"),
        ("cursor=1.5", "invalid_cursor"),
    ):
        response = await served.client.get(f"/api/instances?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"] == error
    first_page = await served.client.get("/api/instances?cursor=&search=")
    assert first_page.status_code == 200


async def test_bodies_are_refused_as_the_document_says(served: Served) -> None:
    await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g", "params": {"name": "x"}}
    )
    await served.result("g", "greet")

    null_id = await served.client.post(
        "/api/workflows/echo/instances", json={"id": None, "params": 1}
    )
    no_params = await served.client.post("/api/workflows/greet/instances", json={"id": "g2"})
    null_restart = await served.client.post(
        "/api/instances/g/restart", content=b"null", headers={"Content-Type": "application/json"}
    )
    string_number = await served.client.post(
        "/api/workflows/greet/instances", json={"params": {"name": "x", "times": "2"}}
    )
    bool_number = await served.client.post(
        "/api/workflows/greet/instances", json={"params": {"name": "x", "times": True}}
    )
    integral_float = await served.client.post(
        "/api/workflows/greet/instances", json={"id": "g3", "params": {"name": "x", "times": 2.0}}
    )
    string_bool = await served.client.post(
        "/api/instances/g/terminate", json={"compensate": "true"}
    )
    string_occurrence = await served.client.post(
        "/api/instances/g/restart", json={"from_step": "say", "occurrence": "1"}
    )
    float_occurrence = await served.client.post(
        "/api/instances/g/restart", json={"from_step": "say", "occurrence": 1.0}
    )

    assert null_id.status_code == 201  # the document says null: a random id
    assert no_params.status_code == 422 and no_params.json()["error"] == "invalid_params"
    assert null_restart.status_code == 422 and null_restart.json()["error"] == "invalid_body"
    for response in (string_number, bool_number):
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["params", "times"]
    assert integral_float.status_code == 201
    assert (await served.client.get("/api/instances/g3")).json()["params"]["times"] == 2
    assert string_bool.status_code == 422 and string_bool.json()["error"] == "invalid_body"
    assert string_occurrence.status_code == 422
    assert float_occurrence.status_code == 200


def operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return document["paths"][path][method]  # type: ignore[no-any-return]


async def test_the_document_says_which_params_are_required(served: Served) -> None:
    document = (await served.client.get("/openapi.json")).json()

    def body(workflow: str) -> dict[str, Any]:
        start = operation(document, f"/api/workflows/{workflow}/instances", "post")
        return start["requestBody"]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]

    assert body("greet")["required"] == ["params"]
    assert "required" not in body("echo")  # Any: params may be left out (null)
    assert body("greet")["properties"]["id"]["anyOf"][1] == {"type": "null"}
    query = {p["name"]: p for p in operation(document, "/api/instances", "get")["parameters"]}
    assert query["cursor"]["schema"] == {"type": "string", "pattern": "^[0-9]{0,18}$"}
    assert query["limit"]["schema"]["type"] == "integer"
    for path, method, status in (
        ("/api/instances/{id}/restart", "post", "400"),
        ("/api/instances/{id}/restart", "post", "409"),
        ("/api/instances/{id}/restart", "post", "422"),
        ("/api/instances/{id}/terminate", "post", "422"),
        ("/api/instances/{id}/terminate", "post", "415"),
        ("/api/workflows/greet/instances", "post", "400"),
        ("/api/instances/{id}/events", "post", "400"),
    ):
        assert status in operation(document, path, method)["responses"], (path, status)


async def test_the_secured_document_is_valid_and_says_401_and_429(make_served: MakeServed) -> None:
    token = "t" * 40
    served = await make_served(token=token)
    document = (
        await served.client.get("/openapi.json", headers={"Authorization": f"Bearer {token}"})
    ).json()

    validate(document)
    responses = operation(document, "/api/instances/{id}", "get")["responses"]
    assert {"401", "429"} <= set(responses)
