"""A step's attempts and arguments through the API and Studio's page, on both stores."""

from __future__ import annotations

from tests.http.conftest import Served


async def test_attempts_and_arguments_in_the_api_and_studio(served: Served) -> None:
    served.env.fail_step("say", times=2, error=ConnectionError("bank down"))
    body = {"id": "g", "params": {"name": "ada", "times": 2}}
    await served.client.post("/api/workflows/greet/instances", json=body)
    await served.result("g", "greet")

    say = (await served.client.get("/api/instances/g")).json()["steps"][0]
    page = (await served.client.get("/studio/instances/g")).text

    assert say["attempts"] == 3
    history = say["attempt_history"]
    assert [a["number"] for a in history] == [1, 2, 3]
    assert [a["error"]["message"] if a["error"] else None for a in history] == [
        "bank down",
        "bank down",
        None,
    ]
    assert all(a["started_at"] and a["duration"] is not None for a in history)
    assert say["input"] == {"args": ["ada", 2, False], "kwargs": {}}
    for number in (1, 2, 3):
        assert f'data-attempt="{number}"' in page
    assert page.count('data-status="errored" ') + page.count('data-status="errored">') == 2
    assert "ConnectionError: bank down" in page
    assert "&#34;ada&#34;" in page or "&quot;ada&quot;" in page  # the input folds out


async def test_a_step_that_succeeded_at_once_has_no_attempt_rows(served: Served) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "e", "params": [1]})
    await served.result("e", "echo")

    [echo] = (await served.client.get("/api/instances/e")).json()["steps"]
    page = (await served.client.get("/studio/instances/e")).text

    assert echo["attempts"] == 1 and len(echo["attempt_history"]) == 1
    assert echo["attempt_history"][0]["error"] is None
    assert "data-attempt=" not in page
