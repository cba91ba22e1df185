"""Durable state: the Store protocol and its SQLite and PostgreSQL implementations."""

from __future__ import annotations

from framework.errors import ConfigError
from framework.store.base import Store


def open_store(url: str) -> Store:
    """A store for ``url`` (``sqlite:///path`` or ``postgresql://...``); call ``open()`` next."""
    if url.startswith("sqlite:///"):
        from framework.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from framework.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        return PostgresStore(url)  # type: ignore[no-any-return,unused-ignore]
    raise ConfigError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db or postgresql://..."
    )
