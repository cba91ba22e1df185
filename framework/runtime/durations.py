"""Durations as users write them: ``"500 ms"``, ``"2s"``, ``"1 minute"``, ``7``, ``timedelta``."""

from __future__ import annotations

import re
from datetime import timedelta

Duration = str | int | float | timedelta
"""A length of time: a string like ``"10 seconds"``, a number of seconds, or a ``timedelta``."""

_UNIT_SECONDS = {
    "ms": 0.001,
    "msec": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)?\s*$")


def parse_duration(value: Duration) -> float:
    """Return ``value`` in seconds.

    Raises:
        ValueError: the value is negative or not a duration, with the accepted forms.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        seconds = _parse_text(value)
    if seconds < 0:
        raise ValueError(f"duration {value!r} is negative")
    return seconds


def _parse_text(text: str) -> float:
    match = _DURATION.match(text)
    unit = (match.group(2) or "s").lower() if match else None
    if match is None or unit not in _UNIT_SECONDS:
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit, like "
            "'500 ms', '2s', '10 seconds', '1 minute', '24 hours' or '7 days'"
        )
    return float(match.group(1)) * _UNIT_SECONDS[unit]


def format_duration(seconds: float) -> str:
    """A short human form: ``0.25`` -> ``"250 ms"``, ``90`` -> ``"1.5 minutes"``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} seconds"
