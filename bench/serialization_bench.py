"""What refusing unreadable JSON costs: ``serialization.dump`` (pydantic's ``dump_json`` plus
the check that the JSON reads back: nesting depth, non-finite numbers) beside ``dump_json``
alone, on payloads of the shapes steps return.

    .venv/bin/python -m bench.serialization_bench

Prints microseconds per dump (median of several rounds) for each payload and the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel

from framework.runtime.serialization import adapter, dump


class Order(BaseModel):
    order_id: str
    amount: int
    note: str | None = None


def rows(count: int, note: str | None) -> list[dict[str, Any]]:
    return [
        {"id": n, "name": f"item {n}", "tags": ["a", "b"], "price": n * 1.5, "note": note}
        for n in range(count)
    ]


PAYLOADS: dict[str, tuple[Any, Any]] = {
    "a model (no null)": (Order(order_id="o-1", amount=4200, note="x"), Order),
    "a model with a null": (Order(order_id="o-1", amount=4200), Order),
    "a string": ("receipt-123", str),
    "100 rows, no null (9 KB)": (rows(100, "n"), Any),
    "100 rows with nulls (9 KB)": (rows(100, None), Any),
    "10,000 rows, no null (0.9 MB)": (rows(10_000, "n"), Any),
    "10,000 rows with nulls (0.9 MB)": (rows(10_000, None), Any),
}


def per_call(fn: Callable[[], object], budget: float = 0.3) -> float:
    """Median microseconds of one call of ``fn`` over several timed rounds."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start > budget / 10:
            break
        calls *= 2
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


def main() -> None:
    print(f"{'payload':34} {'dump_json µs':>13} {'fw dump µs':>11} {'ratio':>6}")
    for name, (value, annotation) in PAYLOADS.items():
        plain = per_call(partial(adapter(annotation).dump_json, value, warnings=False))
        checked = per_call(partial(dump, value, annotation, None, "bench"))
        print(f"{name:34} {plain:13.1f} {checked:11.1f} {checked / plain:6.2f}")


if __name__ == "__main__":
    main()
