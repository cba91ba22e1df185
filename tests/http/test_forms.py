"""Studio's start form from params JSON schemas: widgets, defaults, reading, errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from framework.http.forms import StartForm, build_form, read_form, validation_errors


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    city: str


class Order(BaseModel):
    order_id: str = Field(description="The shop's order id.")
    amount: int = Field(gt=0)
    ratio: float = 0.5
    express: bool = False
    gift: bool | None = None
    size: Literal["s", "m", "l"] = "m"
    color: Color = Color.BLUE
    note: str | None = None
    address: Address | None = None
    items: list[str] = ["book"]


def form_of(annotation: Any) -> StartForm:
    return build_form(TypeAdapter(annotation).json_schema())


def widgets(form: StartForm) -> dict[str, str]:
    return {f.key: f.widget for f in form.fields}


def test_a_model_gives_one_field_per_property() -> None:
    form = form_of(Order)

    assert not form.whole
    assert widgets(form) == {
        "order_id": "text",
        "amount": "integer",
        "ratio": "number",
        "express": "checkbox",
        "gift": "select",
        "size": "select",
        "color": "select",
        "note": "text",
        "address": "json",
        "items": "json",
    }
    fields = {f.key: f for f in form.fields}
    assert fields["order_id"].required and fields["order_id"].description == "The shop's order id."
    assert not fields["ratio"].required and fields["ratio"].value == "0.5"
    assert fields["size"].choices == [("", ""), ('"s"', "s"), ('"m"', "m"), ('"l"', "l")]
    assert fields["size"].value == '"m"'
    assert fields["color"].choices[1:] == [('"red"', "red"), ('"blue"', "blue")]
    assert fields["items"].value == '[\n  "book"\n]'
    assert fields["express"].input_name == "p.express"


def test_a_filled_form_reads_into_params_that_validate() -> None:
    form = form_of(Order)
    data = {
        "p.order_id": "o-1",
        "p.amount": "42",
        "p.ratio": "",
        "p.express": "true",
        "p.gift": "false",
        "p.size": '"l"',
        "p.color": '"red"',
        "p.note": "",
        "p.address": '{"street": "1 Main", "city": "Oslo"}',
        "p.items": '["a", "b"]',
    }

    params, errors = read_form(form, data)

    assert not errors
    assert params == {
        "order_id": "o-1",
        "amount": 42,
        "express": True,
        "gift": False,
        "size": "l",
        "color": "red",
        "address": {"street": "1 Main", "city": "Oslo"},
        "items": ["a", "b"],
    }
    order = Order.model_validate(params)
    assert order.ratio == 0.5 and order.color is Color.RED


def test_badly_formed_json_is_an_error_of_its_field() -> None:
    form = form_of(Order)

    _, errors = read_form(form, {"p.order_id": "o", "p.amount": "1", "p.items": "[1,"})

    assert list(errors.fields) == ["items"]
    assert errors.fields["items"][0].startswith("not valid JSON:")


def test_validation_errors_land_next_to_their_fields() -> None:
    form = form_of(Order)
    params, errors = read_form(
        form, {"p.amount": "abc", "p.address": '{"street": "x"}', "p.express": ""}
    )
    try:
        Order.model_validate(params)
    except ValidationError as exc:
        validation_errors(form, exc, errors)

    assert errors.fields["order_id"] == ["Field required"]
    assert errors.fields["amount"] == [
        "Input should be a valid integer, unable to parse string as an integer"
    ]
    assert errors.fields["address"] == ["city: Field required"]
    assert errors.general == []


def test_a_form_shows_what_was_submitted() -> None:
    form = form_of(Order).filled({"p.order_id": "<x>", "p.amount": "7"})

    values = {f.key: f.value for f in form.fields}
    assert values["order_id"] == "<x>" and values["amount"] == "7"
    assert values["express"] == "false"


def test_params_that_are_not_an_object_fill_one_field() -> None:
    as_list = form_of(list[str])
    as_text = form_of(str)
    as_any = form_of(Any)

    assert as_list.whole and widgets(as_list) == {"params": "json"}
    assert widgets(as_text) == {"params": "text"}
    assert widgets(as_any) == {"params": "json"} and not as_any.fields[0].required
    assert read_form(as_list, {"p.params": '["a"]'})[0] == ["a"]
    assert read_form(as_any, {"p.params": ""})[0] is None


def test_errors_of_whole_params_name_their_place() -> None:
    form = form_of(list[int])
    params, errors = read_form(form, {"p.params": '[1, "x"]'})
    try:
        TypeAdapter(list[int]).validate_python(params)
    except ValidationError as exc:
        validation_errors(form, exc, errors)

    assert errors.fields["params"] == [
        "1: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_typed_dicts_and_dataclasses_are_objects_too() -> None:
    class Refund(TypedDict):
        receipt_id: str
        amount: int

    @dataclass
    class Batch:
        source_id: str
        batches: int = 3

    refund = form_of(Refund)
    batch = form_of(Batch)

    assert widgets(refund) == {"receipt_id": "text", "amount": "integer"}
    assert all(f.required for f in refund.fields)
    assert widgets(batch) == {"source_id": "text", "batches": "integer"}
    assert [f.value for f in batch.fields] == ["", "3"]
