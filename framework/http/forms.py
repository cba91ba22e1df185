"""Studio's start form, built from a workflow's params JSON schema.

An object schema gives one field per property: text for strings, number inputs for numbers
and integers, a checkbox for booleans, a select for enums, and a JSON textarea for nested
objects, arrays and anything else. Any other schema (a list, a string, any JSON) gives one
field holding the whole params. A blank field is left out, so the params' default applies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from pydantic import ValidationError

from framework.http.inputs import UnreadableJsonError, parse_json

Widget = Literal["text", "integer", "number", "checkbox", "select", "json"]
PARAM_PREFIX = "p."
WHOLE = "params"


@dataclass(frozen=True)
class FormField:
    """One input of the start form."""

    key: str
    """The property it fills (``params`` for a field holding the whole params)."""
    label: str
    widget: Widget
    required: bool
    description: str | None = None
    value: str = ""
    """The text shown: the default, or what the user submitted."""
    choices: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    """A select's options, as (JSON value, label)."""
    placeholder: str = ""

    @property
    def input_name(self) -> str:
        """The name of the HTML input (prefixed, so no property clashes with ``id``)."""
        return PARAM_PREFIX + self.key

    @property
    def checked(self) -> bool:
        """A checkbox's state."""
        return self.value == "true"


@dataclass(frozen=True)
class StartForm:
    """The fields of a workflow's start form; ``whole``: one field holds all the params."""

    fields: list[FormField]
    whole: bool

    @property
    def input_names(self) -> list[str]:
        """The names of its HTML inputs."""
        return [f.input_name for f in self.fields]

    def filled(self, data: Mapping[str, str]) -> StartForm:
        """The form showing what the user submitted."""
        fields = [
            _with_value(f, data.get(f.input_name, "false" if f.widget == "checkbox" else ""))
            for f in self.fields
        ]
        return StartForm(fields, self.whole)


@dataclass
class FormErrors:
    """Errors of a submitted form: by field key, and those of no field."""

    fields: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    general: list[str] = field(default_factory=list[str])

    def add(self, key: str | None, message: str) -> None:
        """Record ``message`` against field ``key`` (None: the form as a whole)."""
        if key is None:
            self.general.append(message)
        else:
            self.fields.setdefault(key, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


def build_form(schema: Mapping[str, Any]) -> StartForm:
    """The start form of a params JSON schema."""
    root = _resolve(schema, schema)
    properties: Any = root.get("properties")
    if root.get("type") == "object" and isinstance(properties, dict) and properties:
        required = set(root.get("required", []))
        props = cast(dict[str, Mapping[str, Any]], properties)
        fields = [
            _field(key, _resolve(schema, prop), key in required, schema)
            for key, prop in props.items()
        ]
        return StartForm(fields, whole=False)
    return StartForm(
        [_field(WHOLE, root, _whole_required(root), schema, label="params")], whole=True
    )


def read_form(form: StartForm, data: Mapping[str, str]) -> tuple[Any, FormErrors]:
    """The params a submitted form holds, and the fields that are not even well formed."""
    errors = FormErrors()
    params: dict[str, Any] = {}
    for item in form.fields:
        raw = data.get(item.input_name)
        try:
            present, value = _read_value(item, raw)
        except ValueError as exc:
            errors.add(item.key, str(exc))
            continue
        if present:
            params[item.key] = value
    if form.whole:
        return params.get(WHOLE), errors
    return params, errors


def validation_errors(form: StartForm, exc: ValidationError, errors: FormErrors) -> FormErrors:
    """pydantic's errors placed next to the fields they concern (a field that is already
    in error, because it was not well formed, keeps that error only)."""
    keys = {item.key for item in form.fields}
    malformed = set(errors.fields)
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        key, path = _place(form.whole, keys, loc)
        if key is None or key not in malformed:
            where = ".".join(path)
            errors.add(key, f"{where}: {error['msg']}" if where else error["msg"])
    return errors


def _place(whole: bool, keys: set[str], loc: list[str]) -> tuple[str | None, list[str]]:
    """The field an error at ``loc`` belongs to (None: the form), and its path inside it."""
    if whole:
        return WHOLE, loc
    if loc and loc[0] in keys:
        return loc[0], loc[1:]
    return None, loc


def _field(
    key: str,
    prop: Mapping[str, Any],
    required: bool,
    root: Mapping[str, Any],
    label: str | None = None,
) -> FormField:
    inner, nullable = _unwrap_optional(root, prop)
    description = prop.get("description") or inner.get("description")
    has_default = "default" in prop
    default = prop.get("default")
    common: dict[str, Any] = {
        "key": key,
        "label": label or key,
        "required": required,
        "description": description,
    }
    choices = _choices(inner)
    if choices is not None:
        options = ([("", "")] if nullable or not required else []) + [
            (json.dumps(c), str(c)) for c in choices
        ]
        value = json.dumps(default) if has_default and default is not None else ""
        return FormField(widget="select", choices=options, value=value, **common)
    kind = inner.get("type")
    if kind == "boolean" and not nullable:
        return FormField(widget="checkbox", value="true" if default is True else "false", **common)
    if kind == "boolean":
        options = [("", ""), ("true", "true"), ("false", "false")]
        value = json.dumps(default) if has_default and default is not None else ""
        return FormField(widget="select", choices=options, value=value, **common)
    if kind in ("string", "integer", "number"):
        widget: Widget = "text" if kind == "string" else kind
        value = "" if not has_default or default is None else str(default)
        placeholder = str(inner.get("format", "")) if kind == "string" else ""
        return FormField(widget=widget, value=value, placeholder=placeholder, **common)
    value = json.dumps(default, indent=2) if has_default else ""
    return FormField(widget="json", value=value, placeholder=_json_placeholder(inner), **common)


def _read_value(item: FormField, raw: str | None) -> tuple[bool, Any]:
    """(whether the field was filled, its value); ValueError when it is not well formed."""
    if item.widget == "checkbox":
        return True, raw == "true"
    text = (raw or "").strip() if item.widget != "text" else (raw or "")
    if text == "":
        return False, None
    if item.widget == "select":
        if text not in {value for value, _label in item.choices}:
            raise ValueError("not one of the choices")
        return True, json.loads(text)
    if item.widget == "integer":
        return True, _number(text, int)
    if item.widget == "number":
        return True, _number(text, float)
    if item.widget == "json":
        try:
            return True, parse_json(text)
        except UnreadableJsonError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    return True, text


def _number(text: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(text)
    except ValueError:
        return text  # pydantic says what is wrong with it
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _with_value(item: FormField, value: str) -> FormField:
    return replace(item, value=value)


def _resolve(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with a local ``$ref`` followed (keeping its own description and default)."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return schema
    target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
    return {**_resolve(root, target), **{k: v for k, v in schema.items() if k != "$ref"}}


def _unwrap_optional(
    root: Mapping[str, Any], prop: Mapping[str, Any]
) -> tuple[Mapping[str, Any], bool]:
    """``X | None`` as (X, True); anything else as (itself, False)."""
    found: Any = prop.get("anyOf")
    if isinstance(found, list):
        options = cast(list[Mapping[str, Any]], found)
        others = [o for o in options if o.get("type") != "null"]
        if len(others) == 1 and len(others) < len(options):
            return _resolve(root, others[0]), True
    return prop, False


def _choices(schema: Mapping[str, Any]) -> list[Any] | None:
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    return None


def _whole_required(schema: Mapping[str, Any]) -> bool:
    return bool(schema) and "default" not in schema


def _json_placeholder(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "array":
        return '["...", "..."]'
    if kind == "object":
        return '{"key": "value"}'
    return "any JSON"
