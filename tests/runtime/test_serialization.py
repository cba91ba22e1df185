"""framework/runtime/serialization.py: JSON in and out of the store, typed by annotations;
what could not be read back is refused when written, and reported when read."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from framework.errors import PayloadTooLargeError, SerializationError
from framework.runtime import serialization
from framework.runtime.serialization import (
    MAX_DEPTH,
    dump,
    json_depth,
    load,
    may_write_floats,
    non_finite_path,
    recorded_type,
    return_type,
    same_json,
    try_load,
    type_name,
    validate_each,
)


class Money(BaseModel):
    amount: float
    currency: str = "EUR"


class Tagged(BaseModel):
    name: str
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Row(TypedDict):
    id: str
    count: int


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "annotation", "text"),
    [
        (None, Any, "null"),
        (3, int, "3"),
        ("hé", str, '"hé"'),
        ([1, 2], list[int], "[1,2]"),
        ({"a": [True, None]}, dict[str, Any], '{"a":[true,null]}'),
        (Money(amount=4.5), Money, '{"amount":4.5,"currency":"EUR"}'),
        ({"amount": 2, "currency": "USD"}, Money, '{"amount":2,"currency":"USD"}'),
        (Point(1, 2), Point, '{"x":1,"y":2}'),
        ({"id": "r", "count": 2}, Row, '{"id":"r","count":2}'),
        (datetime(2026, 1, 2, tzinfo=UTC), datetime, '"2026-01-02T00:00:00Z"'),
        (Money(amount=1), Any, '{"amount":1.0,"currency":"EUR"}'),
        (_nested(MAX_DEPTH - 1), Any, "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)),
    ],
)
def test_dump(value: Any, annotation: Any, text: str) -> None:
    assert dump(value, annotation, None, "the value") == text


@pytest.mark.parametrize(
    ("value", "annotation", "limit", "error", "message"),
    [
        (math.nan, float, None, SerializationError, "the value is a non-finite number"),
        ([1.0, math.inf], list[float], None, SerializationError, r"non-finite number .* at \[1\]"),
        ({"a": {"b": -math.inf}}, Any, None, SerializationError, r"non-finite number .* at a\.b"),
        (Money(amount=math.nan), Money, None, SerializationError, "at amount"),
        (_nested(MAX_DEPTH + 1), Any, None, SerializationError, "nested 201 levels deep"),
        (object(), Any, None, SerializationError, "the value cannot be stored as JSON"),
        ("x" * 20, str, 10, PayloadTooLargeError, "the value is 22 bytes of JSON, over the limit"),
    ],
)
def test_dump_refuses_what_could_not_be_read_back(
    value: Any, annotation: Any, limit: int | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        dump(value, annotation, limit, "the value")


@pytest.mark.parametrize("text", ["null", '"NaN"', "[1, null]", '{"Infinity": 1}'])
def test_text_that_looks_non_finite_but_is_not_is_stored(text: str) -> None:
    value = load(text, Any)

    assert same_json(dump(value, Any, None, "the value"), text)


@pytest.mark.parametrize(
    ("text", "annotation", "value"),
    [
        (None, int, None),
        ("3", int, 3),
        ('"3"', int, 3),
        ('{"amount": 1}', Money, Money(amount=1)),
        ('{"x": 1, "y": 2}', Point, Point(1, 2)),
        ("[1, 2]", tuple[int, int], (1, 2)),
        ('{"any": [1]}', Any, {"any": [1]}),
    ],
)
def test_load(text: str | None, annotation: Any, value: Any) -> None:
    assert load(text, annotation) == value


@pytest.mark.parametrize(
    ("text", "annotation", "error", "message"),
    [
        ("[" * 300 + "]" * 300, Any, SerializationError, "nested deeper than 200 levels"),
        ("{not json", Any, SerializationError, "the output cannot be read"),
        ('"abc"', int, ValidationError, "valid integer"),
        ('{"currency": "EUR"}', Money, ValidationError, "amount"),
    ],
)
def test_load_refuses(text: str, annotation: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        load(text, annotation, "the output")


@pytest.mark.parametrize(
    ("text", "annotation", "value", "reason"),
    [
        ("3", int, 3, None),
        (None, int, None, None),
        ('"abc"', int, None, r"the stored JSON does not fit its type \(value: Input should be"),
        ('{"tags": 1}', Tagged, None, r"does not fit its type \(name: Field required; tags: "),
        ("[" * 300 + "]" * 300, Any, None, "nested deeper than 200 levels"),
    ],
)
def test_try_load_reports_instead_of_raising(
    text: str | None, annotation: Any, value: Any, reason: str | None
) -> None:
    loaded, why = try_load(text, annotation)

    assert loaded == value
    if reason is None:
        assert why is None
    else:
        assert why is not None and re.search(reason, why), why


@pytest.mark.parametrize(
    ("data", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["[[[[", "]"]', 1),
        (b'{"k\\"[": [[]]}', 3),
        (b"[[],[[]],[]]", 3),
    ],
)
def test_json_depth(data: bytes, depth: int) -> None:
    assert json_depth(data) == depth


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (1.5, None),
        (math.nan, ""),
        ([1, 2, math.inf], "[2]"),
        ({"a": [0.0, {"b": math.nan}]}, "a[1].b"),
        ({"first": math.nan, "second": math.inf}, "first"),
        ((1.0, -math.inf), "[1]"),
        ({"s": "NaN", "n": None}, None),
    ],
)
def test_non_finite_path(value: Any, path: str | None) -> None:
    assert non_finite_path(value) == path


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ('{"a": 1, "b": 2}', '{"b":2,"a":1}', True),
        ("[1, 2]", "[2, 1]", False),
        ('{"a": 1}', '{"a": 1.5}', False),
        ("null", "null", True),
        ("{broken", "{broken", True),
        ("{broken", "{}", False),
    ],
)
def test_same_json(first: str, second: str, same: bool) -> None:
    assert same_json(first, second) is same


@pytest.mark.parametrize(
    ("annotation", "writes_floats"),
    [
        (int, False),
        (str, False),
        (list[int], False),
        (Tagged, False),
        (Point, False),
        (float, True),
        (Money, True),
        (Any, True),
        (dict[str, Any], True),
        (list[float | None], True),
    ],
)
def test_may_write_floats(annotation: Any, writes_floats: bool) -> None:
    assert may_write_floats(annotation) is writes_floats


def _sync() -> int:
    return 1


async def _async() -> Money:
    return Money(amount=1)


def _unannotated():  # type: ignore[no-untyped-def]
    return 1


class _Callable:
    def __call__(self) -> list[str]:
        return []


@pytest.mark.parametrize(
    ("fn", "annotation"),
    [
        (_sync, int),
        (_async, Money),
        (_unannotated, Any),
        (_Callable(), list[str]),
        (lambda: 1, Any),
    ],
)
def test_return_type(fn: Callable[..., Any], annotation: Any) -> None:
    assert return_type(fn) == annotation


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (Money(amount=1), f"{__name__}:Money"),
        (Point(1, 2), f"{__name__}:Point"),
        (Point, None),
        ({"x": 1}, None),
        (3, None),
    ],
)
def test_type_name_and_recorded_type(value: Any, name: str | None) -> None:
    assert type_name(value) == name
    assert recorded_type(name) is (type(value) if name else Any)


@pytest.mark.parametrize("name", ["", "no.such.module:Thing", f"{__name__}:Gone"])
def test_a_recorded_type_that_is_gone_reads_as_any(name: str) -> None:
    assert recorded_type(name) is Any


def test_validate_each_reports_every_invalid_value_by_index() -> None:
    assert validate_each([{"x": 1, "y": 2}], Point) == [Point(1, 2)]
    with pytest.raises(ValidationError) as raised:
        validate_each([{"x": 1, "y": 2}, {"x": "a"}, {}], Point)

    assert sorted({error["loc"][0] for error in raised.value.errors()}) == [1, 2]


def test_the_adapter_is_cached_per_type() -> None:
    assert serialization.adapter(list[int]) is serialization.adapter(list[int])
