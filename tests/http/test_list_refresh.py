"""The instances list refreshes while it is open, even when every row shown has ended, and
cheaply: its live refresh sends the page's ETag, and an unchanged list answers a bodiless 304."""

from __future__ import annotations

from tests.http.conftest import Served


async def test_the_list_asks_to_be_polled_and_answers_304_until_it_changes(
    served: Served,
) -> None:
    await served.client.post("/api/workflows/echo/instances", json={"id": "e-1", "params": 1})
    await served.result("e-1", "echo")

    first = await served.client.get("/studio/instances")
    etag = first.headers["etag"]
    same = await served.client.get("/studio/instances", headers={"If-None-Match": etag})
    await served.client.post("/api/workflows/echo/instances", json={"id": "e-2", "params": 2})
    await served.result("e-2", "echo")
    changed = await served.client.get("/studio/instances", headers={"If-None-Match": etag})

    assert 'data-fw-poll="1000"' in first.text  # every row has ended, and it still polls
    assert f'data-fw-etag="{etag.replace(chr(34), "&#34;")}"' in first.text
    assert etag.startswith('W/"')
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    assert same.headers["cache-control"] == "no-store"
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert 'data-instance="e-2"' in changed.text


async def test_filters_and_pages_have_their_own_etags_and_older_pages_of_ended_rows_rest(
    served: Served,
) -> None:
    for n in range(52):
        await served.client.post(
            "/api/workflows/echo/instances", json={"id": f"e-{n:02}", "params": n}
        )
    for n in range(52):
        await served.result(f"e-{n:02}", "echo")

    newest = await served.client.get("/studio/instances")
    filtered = await served.client.get("/studio/instances?q=e-0")
    cursor = newest.text.split("cursor=")[1].split('"')[0]
    older = await served.client.get(f"/studio/instances?cursor={cursor}")

    assert newest.headers["etag"] != filtered.headers["etag"]
    assert "data-fw-poll" not in older.text  # nothing new ever lands on an older page


async def test_the_workflow_page_refreshes_its_latest_instances(served: Served) -> None:
    first = await served.client.get("/studio/workflows/echo")
    etag = first.headers["etag"]
    same = await served.client.get("/studio/workflows/echo", headers={"If-None-Match": etag})
    await served.client.post("/api/workflows/echo/instances", json={"id": "w-1", "params": 1})
    changed = await served.client.get("/studio/workflows/echo", headers={"If-None-Match": etag})

    assert 'data-fw-poll="1000"' in first.text and "No instances yet." in first.text
    assert same.status_code == 304
    assert changed.status_code == 200 and "w-1" in changed.text
