"""The OpenAPI document: valid OpenAPI 3.1, with every workflow's params schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.http.conftest import Served


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref``s inside the document."""
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


async def test_the_document_is_valid_openapi_3_1(served: Served) -> None:
    response = await served.client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert {"/api/workflows", "/api/instances/{id}", "/api/instances/{id}/events"} <= set(
        document["paths"]
    )
    assert "security" not in document


async def test_each_workflow_has_its_params_schema_on_its_own_path(served: Served) -> None:
    document = (await served.client.get("/openapi.json")).json()
    workflows = (await served.client.get("/api/workflows")).json()["workflows"]

    assert len(workflows) == 5
    for workflow in workflows:
        operation = document["paths"][f"/api/workflows/{workflow['name']}/instances"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        params = resolve(document, body["properties"]["params"])
        assert params == as_component(workflow["params_schema"]), workflow["name"]


async def test_the_params_schemas_validate_real_params(served: Served) -> None:
    document = (await served.client.get("/openapi.json")).json()
    greet = {
        **resolve(document, {"$ref": "#/components/schemas/GreetParams"}),
        "components": document["components"],
    }

    jsonschema.validate({"name": "ada", "times": 2, "mood": "grumpy"}, greet)
    with pytest.raises(jsonschema.ValidationError, match="'name' is a required property"):
        jsonschema.validate({"times": 2}, greet)
    with pytest.raises(jsonschema.ValidationError, match="'meh' is not one of"):
        jsonschema.validate({"name": "x", "mood": "meh"}, greet)


def as_component(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema of ``GET /api/workflows`` with its refs pointing into the components."""
    moved = json.loads(json.dumps(schema).replace("#/$defs/", "#/components/schemas/"))
    moved.pop("$defs", None)
    return moved


async def test_a_token_adds_bearer_security(make_served: Any) -> None:
    served = await make_served(token="s3cret")

    document = (
        await served.client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"})
    ).json()

    validate(document)
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
