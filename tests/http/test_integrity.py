"""The API's answers say what happened: concurrent starts of one id answer exactly one 201,
and an id of another workflow is refused. On both stores."""

from __future__ import annotations

import asyncio

from tests.http.conftest import Served


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
