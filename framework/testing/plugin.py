"""The pytest plugin of fw (registered automatically when fw is installed).

Fixture ``fw_env``: the app's workflows on a temporary store with an in-process worker and a
skipping clock. The app is the ``fw_app`` ini option (a folder, relative to the rootdir), or
the nearest folder holding ``fw.toml`` at or above the test file. Needs pytest-asyncio, and
no ``asyncio_mode`` setting: an ``async def`` test that uses ``fw_env`` is marked
``pytest.mark.asyncio`` here (``strict``, pytest-asyncio's default, runs only marked ones).
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import cast

import pluggy
import pytest

from framework.app_root import find_app_root
from framework.errors import AppNotFoundError


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("fw_app", "the fw app folder the fw_env fixture runs (default: nearest fw.toml)")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, pluggy.Result[object], None]:
    """Mark each ``async def`` test that uses ``fw_env`` to run under pytest-asyncio, whatever
    its ``asyncio_mode`` (innermost wrapper: it runs before pytest-asyncio sorts the items)."""
    outcome = yield
    collected = outcome.get_result()
    items = cast("list[object]", collected) if isinstance(collected, list) else [collected]
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and "fw_env" in item.fixturenames
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker(pytest.mark.asyncio)


def _app_dir(request: pytest.FixtureRequest) -> Path:
    configured = str(request.config.getini("fw_app") or "")
    if configured:
        return Path(request.config.rootpath) / configured
    try:
        return find_app_root(Path(request.node.path).parent)
    except AppNotFoundError as exc:
        pytest.fail(f"fw_env: {exc}; or set `fw_app` in the pytest ini options", pytrace=False)


async def _fw_env(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    from framework.testing.env import workflow_test_env

    async with workflow_test_env(_app_dir(request)) as env:
        yield env


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    fw_env = pytest_asyncio.fixture(_fw_env, name="fw_env")
else:  # pragma: no cover - depends on the user's environment

    @pytest.fixture(name="fw_env")
    def _missing_pytest_asyncio() -> None:
        pytest.fail("the fw_env fixture needs pytest-asyncio: pip install pytest-asyncio")
