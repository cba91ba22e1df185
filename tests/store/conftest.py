"""Stores under test: each test runs on SQLite and on PostgreSQL (``database_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from framework.store import open_store
from framework.store.base import Store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """An open store on a fresh database."""
    opened = open_store(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def other_store(store: Store, database_url: str) -> AsyncIterator[Store]:
    """A second store object on the same database, as another process would have."""
    opened = open_store(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
