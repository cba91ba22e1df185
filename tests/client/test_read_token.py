"""The remote client against a real ``fw serve`` holding both tokens, on both stores: with
the read-only token it reads everything and every change is a ``RemoteAuthError`` (403
``read_only``) that leaves the instance as it was; with the full token it starts an instance
with its own retention and reads its runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.client import connect
from framework.errors import RemoteAuthError
from tests.client.apps import TOKEN, RemoteApp, serve, write_remote_app

READ_TOKEN = "remote-read-only-token-0123456789abcdef"

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[RemoteApp]:
    root = write_remote_app(tmp_path)
    with serve(root, database_url, tmp_path / "serve.log", FW_API_READ_TOKEN=READ_TOKEN) as remote:
        yield remote


async def test_a_read_token_client_reads_and_is_refused_every_change(served: RemoteApp) -> None:
    async with connect(served.url, token=TOKEN) as writer:
        approve = writer.workflows.get_dynamic("approve")
        waiting = await approve.create(None, id="ap-1", retention="2 days")
        greeted = await writer.workflows.get_dynamic("greet").create({"name": "ada"}, id="g-1")
        await greeted.result(timeout=30)
        while (await waiting.status()).status != "waiting":
            await asyncio.sleep(0.05)

    async with connect(served.url, token=READ_TOKEN) as reader:
        handle = reader.workflows.get_dynamic("approve")
        status = await (await handle.get("ap-1")).status()
        done = await (await reader.instance("g-1")).status()
        listed = await handle.list()
        steps = await (await handle.get("ap-1")).steps()
        changes = {
            "create": handle.create(None, id="ap-2"),
            "pause": (await handle.get("ap-1")).pause(),
            "terminate": (await handle.get("ap-1")).terminate(),
            "restart": (await handle.get("ap-1")).restart(),
            "event": (await handle.get("ap-1")).send_event("approval", {"by": "eve"}),
        }
        refusals: dict[str, RemoteAuthError] = {}
        for name, change in changes.items():
            with pytest.raises(RemoteAuthError) as caught:
                await change
            refusals[name] = caught.value
        after = await (await handle.get("ap-1")).status()

    assert (status.status, status.retention, status.runs) == ("waiting", 172800.0, 1)
    assert (done.status, done.runs, done.retention) == ("complete", 1, None)
    assert done.ended_at is not None and done.duration is not None
    assert [i.id for i in listed.instances] == ["ap-1"]
    assert [s.name for s in steps] == ["prepare", "approval"]
    for name, error in refusals.items():
        assert (error.status, error.kind) == (403, "read_only"), name
        assert "can read but not change anything" in str(error), name
        assert "FW_API_TOKEN" in str(error), name
    assert (after.status, after.updated_at) == (status.status, status.updated_at)
