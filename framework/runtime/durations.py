"""Durations as users write them: ``"500 ms"``, ``"2s"``, ``"1 minute"``, ``7``, ``timedelta``."""

from __future__ import annotations

import math
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
MAX_DURATION_TEXT = "1000 years"
MAX_DURATION = 1000 * 365.25 * 86400
"""The longest duration fw takes (a sleep, a timeout, a retry delay, a retention): a wake
time past it would be past what a timestamp can show (year 9999), or infinite."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)?\s*$")


def _duration_pattern() -> str:
    """The JSON Schema ``pattern`` of a duration string at most ``MAX_DURATION`` long: per
    unit, as many whole digits as keep every number written with them within it (a pattern
    cannot compare values, so a few durations under the bound need a larger unit)."""
    by_size: dict[float, list[str]] = {}
    for unit, seconds in _UNIT_SECONDS.items():
        by_size.setdefault(seconds, []).append(unit)
    forms: list[str] = []
    for seconds, units in by_size.items():
        digits = math.floor(math.log10(MAX_DURATION / seconds))
        spelled = "|".join("".join(f"[{c.lower()}{c.upper()}]" for c in u) for u in units)
        optional = "?" if seconds == 1.0 else ""  # a bare number is seconds
        forms.append(f"[0-9]{{1,{digits}}}(\\.[0-9]+)?[ \\t]*({spelled}){optional}")
    return r"^[ \t]*(" + "|".join(f"({form})" for form in forms) + r")[ \t]*$"


DURATION_PATTERN = _duration_pattern()
"""A duration string, as the HTTP API accepts one, as a JSON Schema ``pattern``: a number
and a unit, the number short enough to stay within ``MAX_DURATION`` (up to 99,999 days)."""


def parse_duration(value: Duration) -> float:
    """Return ``value`` in seconds.

    Raises:
        ValueError: the value is negative, NaN, longer than ``MAX_DURATION`` or not a
            duration, with the accepted forms.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        seconds = _parse_text(value)
    if math.isnan(seconds):
        raise ValueError(f"duration {value!r} is not a number")
    if seconds < 0:
        raise ValueError(f"duration {value!r} is negative")
    if seconds > MAX_DURATION:
        raise ValueError(
            f"duration {value!r} is longer than the longest fw takes, "
            f"{MAX_DURATION_TEXT} ({MAX_DURATION:,.0f} seconds)"
        )
    return seconds


def parse_retention(retention: Duration | None) -> float | None:
    """``create``'s ``retention`` in seconds (None: none of its own).

    Raises:
        ValueError: not a duration, naming ``retention``.
    """
    if retention is None:
        return None
    try:
        seconds = parse_duration(retention)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"retention: {exc}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"retention: {retention!r} is too long to be a duration")
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
    """A length of time as people read it, the one form fw shows everywhere (Studio, the
    CLI, messages): ``250 ms``, ``4.2 s``, ``45 s``, ``3 min 5 s``, ``2 h 10 min``,
    ``7 d 3 h``; at most two units, rounded to the smaller one."""
    seconds = max(seconds, 0.0)
    if round(seconds * 1000) < 1000:
        return f"{round(seconds * 1000)} ms"
    if round(seconds, 1) < 10:
        return f"{round(seconds, 1):g} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return _two_units(whole // 60, "min", whole % 60, "s")
    minutes = round(seconds / 60)
    if minutes < 1440:
        return _two_units(minutes // 60, "h", minutes % 60, "min")
    hours = round(seconds / 3600)
    return _two_units(hours // 24, "d", hours % 24, "h")


def format_relative(delta: float) -> str:
    """A moment ``delta`` seconds from now, in its largest unit: ``3 min ago``, ``in 2 h``,
    ``now`` (Studio shows the exact time beside it)."""
    span = abs(delta)
    if span < 1:
        return "now"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if span >= size:
            text = f"{int(span // size)} {unit}"
            return f"in {text}" if delta > 0 else f"{text} ago"
    raise AssertionError("unreachable: the last unit is one second")


def _two_units(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big} {big_unit}" + (f" {small} {small_unit}" if small else "")
