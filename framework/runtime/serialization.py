"""JSON in and out of the store, typed by annotations and validated by pydantic."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, from_json

from framework.errors import PayloadTooLargeError, SerializationError


@lru_cache(maxsize=4096)
def _adapter_for_hashable(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def adapter(annotation: Any) -> TypeAdapter[Any]:
    """A (cached) pydantic TypeAdapter for a type annotation."""
    try:
        return _adapter_for_hashable(annotation)
    except TypeError:  # an unhashable annotation
        return TypeAdapter(annotation)


def dump(value: Any, annotation: Any, limit: int, what: str) -> str:
    """Serialize ``value`` as its annotated type to JSON text no longer than ``limit`` bytes.

    Raises:
        SerializationError: the value cannot be stored as JSON (``what`` names it).
        PayloadTooLargeError: the JSON is over ``limit`` bytes.
    """
    try:
        data = adapter(annotation).dump_json(value, warnings=False)
    except (PydanticSerializationError, ValueError, TypeError) as exc:
        raise SerializationError(
            f"{what} cannot be stored as JSON: {exc}; return pydantic models, dataclasses, "
            "TypedDicts or JSON builtins"
        ) from None
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"{what} is {len(data):,} bytes of JSON, over the limit of {limit:,} bytes "
            "(raise [runtime] payload_limit in fw.toml, or store large data elsewhere and "
            "pass a reference)"
        )
    return data.decode()


def load(text: str | None, annotation: Any) -> Any:
    """Read JSON text back as the annotated type (``None`` stays ``None``)."""
    if text is None:
        return None
    return adapter(annotation).validate_json(text)


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
    "ValidationError",
    "adapter",
    "dump",
    "load",
    "return_type",
    "same_json",
    "validate",
    "validate_each",
]
