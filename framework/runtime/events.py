"""The event types a workflow waits for, as codegen read them, and the check of an event sent
to one of its instances: an unknown type (when every wait names a literal type) or a payload
that fails the wait's ``model`` is refused before anything is stored."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from framework.errors import InvalidEventPayloadError, UnknownEventTypeError
from framework.runtime import serialization

if TYPE_CHECKING:
    from framework.runtime.entrypoint import Entrypoint


@dataclass(frozen=True)
class DeclaredEvents:
    """A workflow's event types and their payload models (``Any`` without a model).

    ``open``: some wait computes its type at run time, so any type is accepted.
    """

    workflow: str
    models: dict[str, Any]
    open: bool

    def validate(self, event_type: str, payload: Any) -> tuple[Any, Any]:
        """The payload validated into its model, and that model.

        Raises:
            UnknownEventTypeError: the workflow never waits for ``event_type``.
            InvalidEventPayloadError: the payload does not fit the model.
        """
        if event_type not in self.models and not self.open:
            raise UnknownEventTypeError(self.workflow, event_type, self.models)
        model = self.models.get(event_type, Any)
        if model is Any:
            return payload, Any
        try:
            return serialization.validate(payload, model), model
        except ValidationError as exc:
            errors: list[dict[str, Any]] = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
            ]
            raise InvalidEventPayloadError(self.workflow, event_type, errors) from None


_declared: dict[type[Entrypoint], DeclaredEvents] = {}


def declared_events(entrypoint: type[Entrypoint]) -> DeclaredEvents:
    """The events of the workflow behind ``entrypoint`` (importing its module for models)."""
    found = _declared.get(entrypoint)
    if found is None:
        found = _declared[entrypoint] = _read(entrypoint)
    return found


def _read(entrypoint: type[Entrypoint]) -> DeclaredEvents:
    models: dict[str, Any] = {}
    module: Any = None
    for event_type, model in sorted(entrypoint.events.items()):
        if model is not None and module is None:
            module = importlib.import_module(entrypoint.module)
        models[event_type] = Any if model is None else _resolve(module, model)
    return DeclaredEvents(entrypoint.name, models, entrypoint.open_events)


def _resolve(module: Any, dotted: str) -> Any:
    """``dotted`` looked up in the workflow's module; ``Any`` when it is not there (a model
    defined inside a function), so the payload is then checked by the wait alone."""
    value: Any = module
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return Any
    return value
