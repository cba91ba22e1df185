"""Studio's event forms: the event types an instance's workflow waits for, each with a form
built from its payload model's schema (as the start form is from the params), or a JSON payload
for a type without a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from framework.http.catalog import json_schema
from framework.http.forms import FormErrors, StartForm, build_form, read_form, validation_errors
from framework.runtime import serialization
from framework.runtime.events import declared_events
from framework.runtime.failures import raised_by_user

if TYPE_CHECKING:
    from framework.runtime.app import App

PAYLOAD_FORM = "payload_form"
"""The field a model's event form sends, naming its type: the payload is in its fields."""


@dataclass(frozen=True)
class EventChoice:
    """One event type, its payload model and, for a model, the form of its payload."""

    type: str
    model: Any
    form: StartForm | None


@dataclass(frozen=True)
class EventForms:
    """The event types of a workflow; ``open``: any type may be sent (a wait computes it)."""

    choices: list[EventChoice]
    open: bool

    @property
    def model_types(self) -> list[str]:
        """The types whose payload has a form (those with a model)."""
        return [c.type for c in self.choices if c.form is not None]

    def choice(self, event_type: str) -> EventChoice | None:
        """The choice of ``event_type``, if the workflow declares it."""
        return next((c for c in self.choices if c.type == event_type), None)


def event_forms(app: App, workflow: str) -> EventForms:
    """The event forms of ``workflow``; any type, as JSON, when its module fails to import."""
    entrypoint = app.entrypoints.get(workflow)
    if entrypoint is None:
        return EventForms([], True)
    try:
        events = declared_events(entrypoint)
    except BaseException as exc:  # a user's module that fails to import: the page still shows
        if not raised_by_user(exc):
            raise
        return EventForms([], True)
    choices = [
        EventChoice(t, model, None if model is Any else build_form(json_schema(model)))
        for t, model in sorted(events.models.items())
    ]
    return EventForms(choices, events.open)


def read_event_form(choice: EventChoice, data: Mapping[str, str]) -> tuple[Any, FormErrors]:
    """The payload a model's event form holds, validated; errors next to their fields."""
    assert choice.form is not None
    payload, errors = read_form(choice.form, data)
    try:
        payload = serialization.validate(payload, choice.model)
    except ValidationError as exc:
        validation_errors(choice.form, exc, errors)
    return payload, errors
