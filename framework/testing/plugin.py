"""The pytest plugin of fw (registered automatically when fw is installed).

Fixture ``fw_env``: the app's workflows on a temporary store with an in-process worker and a
skipping clock. The app is the ``fw_app`` ini option (a folder, relative to the rootdir), or
the nearest folder holding ``fw.toml`` at or above the test file. Needs pytest-asyncio.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from framework.app_root import find_app_root
from framework.errors import AppNotFoundError


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("fw_app", "the fw app folder the fw_env fixture runs (default: nearest fw.toml)")


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
