"""Concurrency limits: at most N instances of a workflow running at once, in all or per key.

A workflow declares its limit in code (``@workflow(concurrency=2, concurrency_key="customer_id")``
or the class attributes of the same names, read by codegen into its entrypoint) or in its
``[[workflows]]`` table of ``fw.toml`` (``concurrency = 2``, ``concurrency_key = "..."``).
Each key ``fw.toml`` sets wins over the code's, so a deployment can change a limit without
touching the code. ``concurrency_key`` alone means one running instance per key.

The key is a dotted path into the params (``customer.id``; a number indexes a list). Its
value is read when the instance is created and stored with it (a string as it is, any other
value as compact JSON), so a claim can count by it; params without a value there are refused.

An instance holds a slot while a worker holds its lease (``running``, or ``paused`` by a
request its run has not reached yet); a waiting instance (a timer, an event, a retry delay,
children) holds none, and queues again for a slot when it wakes. The store enforces the limit
in the claim itself (``Store.claim``), atomically across every worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from framework.errors import ConcurrencyKeyError
from framework.store.base import ConcurrencyLimit

if TYPE_CHECKING:

    from framework.runtime.config import AppConfig
    from framework.runtime.entrypoint import Entrypoint


@dataclass(frozen=True)
class Concurrency:
    """The effective limit of one workflow."""

    workflow: str
    limit: int
    key: str | None = None
    """The key path (None: the limit counts every instance of the workflow)."""

    def usage(self, counts: Mapping[str, int]) -> dict[str, object]:
        """The limit and how many of the workflow's instances run and wait in the queue
        (``counts``: the workflow's instances by status), for the API and the CLI."""
        return {
            "limit": self.limit,
            "key": self.key,
            "running": counts.get("running", 0),
            "queued": counts.get("queued", 0),
        }

    def summary(self, counts: Mapping[str, int]) -> str:
        """``2 running / limit 2, 5 queued``; with a key, ``3 running, limit 1 per customer.id,
        5 queued``."""
        running, queued = counts.get("running", 0), counts.get("queued", 0)
        if self.key is None:
            return f"{running} running / limit {self.limit}, {queued} queued"
        return f"{running} running, limit {self.limit} per {self.key}, {queued} queued"

    @property
    def store_limit(self) -> ConcurrencyLimit:
        return ConcurrencyLimit(self.workflow, self.limit, keyed=self.key is not None)

    def key_of(self, params: str) -> str | None:
        """The key an instance with ``params`` (its stored JSON) counts under.

        Raises:
            ConcurrencyKeyError: the params hold no value at the key path.
        """
        if self.key is None:
            return None
        value: object = json.loads(params)
        walked: list[str] = []
        for part in self.key.split("."):
            found, value = _step_into(value, part)
            walked.append(part)
            if not found:
                raise ConcurrencyKeyError(
                    f"workflow {self.workflow!r} counts its concurrency by "
                    f"{self.key!r}, but the params have no {'.'.join(walked)!r}: pass a "
                    "value there (or change its concurrency_key); nothing was stored"
                )
        if isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _step_into(value: object, part: str) -> tuple[bool, object]:
    if isinstance(value, dict):
        mapping = cast("dict[str, object]", value)
        return (part in mapping), mapping.get(part)
    if isinstance(value, list):
        items = cast("list[object]", value)
        if part.isdigit() and int(part) < len(items):
            return True, items[int(part)]
    return False, None


def resolve(
    workflow: str, entrypoint: type[Entrypoint] | None, settings: AppConfig
) -> Concurrency | None:
    """The limit of ``workflow``: each key of its ``[[workflows]]`` table in fw.toml over the
    one its code declares (codegen writes those into its ``entrypoint``); None: unlimited."""
    limit: int | None = getattr(entrypoint, "concurrency", None)
    key: str | None = getattr(entrypoint, "concurrency_key", None)
    table = settings.workflow_settings(workflow)
    if table is not None:
        limit = table.concurrency if table.concurrency is not None else limit
        key = table.concurrency_key if table.concurrency_key is not None else key
    if limit is None and key is None:
        return None
    return Concurrency(workflow, 1 if limit is None else limit, key)


def limits_of(
    entrypoints: Mapping[str, type[Entrypoint]], settings: AppConfig
) -> dict[str, Concurrency]:
    """Every limited workflow of an app, by name."""
    found = {name: resolve(name, entrypoints[name], settings) for name in sorted(entrypoints)}
    return {name: limit for name, limit in found.items() if limit is not None}
