"""JSON in and out of the store, typed by annotations and validated by pydantic.

Every door that stores JSON (params at create, step results, workflow outputs, event payloads,
children's params, a reusable step's arguments) writes it with ``dump``, which refuses what
could not be read back the same: JSON nested deeper than the reader's limit
(``MAX_DEPTH`` levels), non-finite numbers (``NaN``, ``inf``), which JSON cannot hold
and pydantic would silently write as ``null``, and integers longer than the reader takes
(``MAX_INT_DIGITS`` digits). Reads of stored rows that cannot be parsed
(rows written before that check, or by older code) are reported by ``try_load`` rather than
raised, so one bad row never hides the rest of a page.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import math
import re
import typing
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, from_json, to_json

from framework.errors import PayloadTooLargeError, SerializationError

MAX_DEPTH = 200
"""The deepest nesting of arrays and objects fw stores: pydantic's JSON reader gives up
past 200 levels, so deeper JSON could be written but never read back."""

MAX_INT_DIGITS = 4300
"""The most digits of an integer fw stores: pydantic's JSON reader (like Python's ``int()``
of a string) refuses longer ones, which pydantic's writer writes all the same."""

_FLOAT_WRITERS = frozenset({"float", "any", "complex"})
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % (MAX_INT_DIGITS + 1))
_DEPTH_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


@lru_cache(maxsize=4096)
def _adapter_for_hashable(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def adapter(annotation: Any) -> TypeAdapter[Any]:
    """A (cached) pydantic TypeAdapter for a type annotation."""
    try:
        return _adapter_for_hashable(annotation)
    except TypeError:  # an unhashable annotation
        return TypeAdapter(annotation)


def dump(value: Any, annotation: Any, limit: int | None, what: str) -> str:
    """Serialize ``value`` as its annotated type to JSON text no longer than ``limit`` bytes
    (None: no limit) that reads back as written.

    Raises:
        SerializationError: the value cannot be stored as JSON, is nested deeper than
            ``MAX_DEPTH`` levels, or holds a non-finite number (``what`` names it, and the
            message says where).
        PayloadTooLargeError: the JSON is over ``limit`` bytes.
    """
    try:
        data = adapter(annotation).dump_json(value, warnings=False)
    except (PydanticSerializationError, ValueError, TypeError) as exc:
        raise SerializationError(
            f"{what} cannot be stored as JSON: {exc}; return pydantic models, dataclasses, "
            "TypedDicts or JSON builtins"
        ) from None
    if limit is not None and len(data) > limit:
        raise PayloadTooLargeError(
            f"{what} is {len(data):,} bytes of JSON, over the limit of {limit:,} bytes "
            "(raise [runtime] payload_limit in fw.toml, or store large data elsewhere and "
            "pass a reference)"
        )
    def python_form() -> Any:
        return adapter(annotation).dump_python(value, warnings=False)

    check_readable(data, what, python_form if may_write_floats(annotation) else None)
    _check_int_lengths(data, what, python_form)
    return data.decode()


def check_readable(data: bytes, what: str, python_form: Callable[[], Any] | None) -> None:
    """Refuse JSON ``data`` that would not read back as written: a non-finite number
    (pydantic writes ``NaN`` and infinities as ``null``, or as a model's config asks), or
    nesting deeper than ``MAX_DEPTH`` levels. ``python_form`` gives the value before encoding,
    to find where a non-finite number is (None: its type writes no floats).

    Cheap for ordinary JSON: the exact checks run only when a quick scan of ``data`` says
    they might fail; the exact depth check is pydantic's own reader.

    Raises:
        SerializationError: the message names ``what``, and the place or the limit.
    """
    if python_form is not None and (b"null" in data or b"NaN" in data or b"Infinity" in data):
        plain = python_form()
        if _may_hold_non_finite(plain) and (where := non_finite_path(plain)) is not None:
            raise _non_finite(what, where)
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        try:
            from_json(data, cache_strings=False)
        except ValueError as exc:
            depth = json_depth(data)
            if depth <= MAX_DEPTH:
                raise SerializationError(f"{what} cannot be read back as JSON: {exc}") from None
            raise SerializationError(
                f"{what} is JSON nested {depth} levels deep, over the limit of {MAX_DEPTH} "
                "levels of arrays and objects that fw can read back; flatten it, or store it "
                "elsewhere and pass a reference"
            ) from None


def _check_int_lengths(data: bytes, what: str, python_form: Callable[[], Any]) -> None:
    """Refuse JSON ``data`` holding an integer of more than ``MAX_INT_DIGITS`` digits, which
    could be written but never read back. Cheap: the exact check runs only when ``data`` holds
    such a run of digits (in a number or in a string)."""
    if len(data) <= MAX_INT_DIGITS or _LONG_DIGITS.search(data) is None:
        return
    where = long_int_path(python_form())
    if where is None:  # digits in a string, or a number a custom serializer wrote
        try:
            from_json(data, cache_strings=False)
        except ValueError as exc:
            raise SerializationError(f"{what} cannot be read back as JSON: {exc}") from None
        return
    place = f"holds an integer of more than {MAX_INT_DIGITS:,} digits at {where}" if where else (
        f"is an integer of more than {MAX_INT_DIGITS:,} digits"
    )
    raise SerializationError(
        f"{what} {place}: JSON readers cannot read such a number back; store it as a string"
    )


def long_int_path(value: Any) -> str | None:
    """Where the first integer of more than ``MAX_INT_DIGITS`` digits in plain data is, as
    ``items[2].count`` (``""`` for the value itself), or None when there is none."""
    bound = 10**MAX_INT_DIGITS
    return _first_path(value, lambda item: type(item) is int and abs(item) >= bound)


def may_write_floats(annotation: Any) -> bool:
    """Whether serializing ``annotation`` may write a float (so a NaN or an infinity): its
    schema holds a float, an ``Any``, extra fields or a custom serializer. Cached per type."""
    try:
        return _may_write_floats_hashable(annotation)
    except TypeError:  # an unhashable annotation
        return _schema_writes_floats(adapter(annotation).core_schema)


@lru_cache(maxsize=4096)
def _may_write_floats_hashable(annotation: Any) -> bool:
    return _schema_writes_floats(adapter(annotation).core_schema)


def _schema_writes_floats(schema: object) -> bool:
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            entries = typing.cast(dict[object, object], node)
            kind = entries.get("type")
            if isinstance(kind, str) and (kind in _FLOAT_WRITERS or kind.startswith("function")):
                return True
            if "allow" in (entries.get("extra_behavior"), entries.get("extra_fields_behavior")):
                return True
            stack.extend(entries.values())
        elif isinstance(node, list | tuple):
            stack.extend(typing.cast(typing.Iterable[object], node))
    return False


def _may_hold_non_finite(plain: Any) -> bool:
    """A quick look (in Rust) for a non-finite float in plain data, before walking it."""
    try:
        probe = to_json(plain, inf_nan_mode="constants", serialize_unknown=True)
    except (PydanticSerializationError, ValueError):
        return True
    return b"NaN" in probe or b"Infinity" in probe


def _non_finite(what: str, where: str) -> SerializationError:
    place = f"holds a non-finite number (NaN or infinity) at {where}" if where else (
        "is a non-finite number (NaN or infinity)"
    )
    return SerializationError(
        f"{what} {place}: JSON has no such numbers, so it could not be read back as it is; "
        "use None, a string or a finite number"
    )


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in JSON ``data`` (0 for a scalar)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def non_finite_path(value: Any) -> str | None:
    """Where the first non-finite float in plain data is, as ``items[2].price`` (``""``
    for the value itself), or None when there is none."""
    return _first_path(value, lambda item: isinstance(item, float) and not math.isfinite(item))


def _first_path(value: Any, matches: Callable[[object], bool]) -> str | None:
    """The path (``items[2].price``, ``""`` for the value itself) of the first scalar in
    plain data that ``matches``, or None."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if matches(item):
            return path
        if isinstance(item, dict):
            entries = list(typing.cast(dict[object, object], item).items())
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in reversed(entries))
        elif isinstance(item, list | tuple | set | frozenset):
            members = list(typing.cast(typing.Iterable[object], item))
            stack.extend((v, f"{path}[{n}]") for n, v in reversed(list(enumerate(members))))
    return None


def load(text: str | None, annotation: Any, what: str = "the stored JSON") -> Any:
    """Read JSON text back as the annotated type (``None`` stays ``None``).

    Raises:
        SerializationError: the text is not JSON fw can read (nested too deeply, say);
            the message names ``what``.
        pydantic.ValidationError: the JSON does not fit the type (the type changed since).
    """
    if text is None:
        return None
    try:
        return adapter(annotation).validate_json(text)
    except ValidationError as exc:
        unreadable = [e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
        if unreadable:
            raise SerializationError(_json_problem(what, unreadable[0]["msg"])) from None
        raise


def try_load(text: str | None, annotation: Any) -> tuple[Any, str | None]:
    """``load``, or ``(None, why)`` when the stored text cannot be read as ``annotation``:
    for showing stored rows, where one unreadable value must not hide the rest."""
    try:
        return load(text, annotation), None
    except SerializationError as exc:
        return None, str(exc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:3]
        )
        return None, f"the stored JSON does not fit its type ({problems})"


def _json_problem(what: str, message: str) -> str:
    if "recursion limit" in message:
        return f"{what} is nested deeper than {MAX_DEPTH} levels, more than fw can read ({message})"
    return f"{what} cannot be read ({message})"


def validate(value: Any, annotation: Any) -> Any:
    """Validate plain data (or an instance) into the annotated type.

    Raises:
        pydantic.ValidationError: the value does not fit the type.
    """
    return adapter(annotation).validate_python(value)


def validate_each(values: Sequence[Any], annotation: Any) -> list[Any]:
    """Validate several values into the annotated type at once.

    Raises:
        pydantic.ValidationError: every invalid value, each error's ``loc`` starting with
            its index.
    """
    return list(adapter(list[annotation]).validate_python(list(values)))


def same_json(first: str, second: str) -> bool:
    """Whether two JSON texts hold equal values (key order and spacing aside)."""
    if first == second:
        return True
    try:
        return bool(from_json(first) == from_json(second))
    except ValueError:
        return False


@lru_cache(maxsize=4096)
def _return_type_of_code(fn: Callable[..., Any]) -> Any:
    return _return_type(fn)


def return_type(fn: Callable[..., Any]) -> Any:
    """The declared return type of a step function, unwrapping ``async``; ``Any`` if none."""
    try:
        return _return_type_of_code(fn)
    except TypeError:
        return _return_type(fn)


def _return_type(fn: Callable[..., Any]) -> Any:
    plain = inspect.isfunction(fn) or inspect.ismethod(fn)
    target = fn if plain else type(fn).__call__
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        return Any
    return hints.get("return", Any)


def type_name(value: Any) -> str | None:
    """``module:qualname`` of a model or dataclass value whose class is importable by name,
    so a step without a return annotation still gets its value back typed on replay."""
    if not isinstance(value, BaseModel) and (
        isinstance(value, type) or not dataclasses.is_dataclass(value)
    ):
        return None
    module: str = getattr(type(value), "__module__", "")
    qualname: str = getattr(type(value), "__qualname__", "")
    if "<locals>" in qualname or module == "__main__":
        return None
    return f"{module}:{qualname}"


def recorded_type(name: str | None) -> Any:
    """The class ``type_name`` recorded, or ``Any`` if there is none or it is gone."""
    if not name:
        return Any
    module_name, _, qualname = name.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return Any
    return target


__all__ = [
    "MAX_DEPTH",
    "ValidationError",
    "adapter",
    "check_readable",
    "dump",
    "load",
    "return_type",
    "same_json",
    "try_load",
    "validate",
    "validate_each",
]
