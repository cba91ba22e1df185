"""The runtime's view of ``fw.toml``: validated settings with their defaults."""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from framework.app_root import CONFIG_FILE
from framework.errors import ConfigError
from framework.naming import concurrency_key_problem, concurrency_problem
from framework.runtime.durations import parse_duration

DATABASE_ENV = "FW_DATABASE_URL"
Backoff = Literal["constant", "linear", "exponential"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


def _seconds(value: Any) -> float:
    return parse_duration(value)


def _optional_seconds(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


class AppSection(_Section):
    name: str | None = None


class RetriesSection(_Section):
    limit: int = Field(default=5, ge=0)
    delay: float = 10.0
    backoff: Backoff = "exponential"
    max_delay: float | None = None
    factor: float = Field(default=2.0, ge=1)
    jitter: float = Field(default=0.0, ge=0, le=1)

    _parse_delay = field_validator("delay", "max_delay", mode="before")(_optional_seconds)


class DefaultsSection(_Section):
    timeout: float = 600.0
    """The limit of one attempt of a step (not of an instance: that is ``deadline``)."""
    deadline: float | None = None
    """The longest an instance may run, from its creation (or restart) to its end."""
    retries: RetriesSection = RetriesSection()

    _parse_timeout = field_validator("timeout", mode="before")(_seconds)
    _parse_deadline = field_validator("deadline", mode="before")(_optional_seconds)


class RuntimeSection(_Section):
    database: str | None = None
    lease: float = Field(default=30.0, gt=0)
    """0 would have every worker heartbeat in a loop and take every other's instances."""
    poll_interval: float = Field(default=1.0, gt=0)
    concurrency: int = Field(default=100, ge=1)
    payload_limit: int = Field(default=1024 * 1024, ge=1)
    crash_loop_limit: int = Field(default=5, ge=1)
    on_nondeterminism: Literal["error", "block"] = "error"
    success_retention: float | None = None
    error_retention: float | None = None
    retention: float | None = None
    prune_interval: float = Field(default=3600.0, gt=0)
    """Like ``poll_interval``: 0 would be a loop that never waits."""

    _parse_durations = field_validator(
        "lease",
        "poll_interval",
        "success_retention",
        "error_retention",
        "retention",
        "prune_interval",
        mode="before",
    )(_optional_seconds)


class CodegenSection(_Section):
    exclude: list[str] = []


class WorkflowRetries(_Section):
    """A workflow's ``retries``: the keys it sets override ``[defaults.retries]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int | None = Field(default=None, ge=0)
    delay: float | None = None
    backoff: Backoff | None = None
    max_delay: float | None = None
    factor: float | None = Field(default=None, ge=1)
    jitter: float | None = Field(default=None, ge=0, le=1)

    _parse_delay = field_validator("delay", "max_delay", mode="before")(_optional_seconds)

    def over(self, defaults: RetriesSection) -> RetriesSection:
        """``defaults`` with the keys this table sets replaced."""
        return defaults.model_copy(update=self.model_dump(exclude_unset=True))


class WorkflowSection(_Section):
    """A ``[[workflows]]`` table: the keys codegen derives, and the settings of one workflow
    that override the app's (each None when the table does not set it)."""

    name: str
    binding: str | None = None
    class_name: str | None = None
    module: str | None = None
    file: str | None = None
    external: bool = False
    """Started from outside the code ``fw check`` reads (silences ``workflow_unused``)."""
    retries: WorkflowRetries | None = None
    timeout: float | None = None
    """The limit of one attempt of each of its steps (as ``[defaults] timeout``)."""
    deadline: float | None = None
    """The longest one of its instances may run (as ``@workflow(timeout=...)``)."""
    retention: float | None = None
    success_retention: float | None = None
    error_retention: float | None = None

    concurrency: int | None = None
    """At most this many instances running at once (over the code's; ``runtime/concurrency``)."""
    concurrency_key: str | None = None
    """The params path the limit counts by (over the code's)."""

    _parse_durations = field_validator(
        "timeout", "deadline", "retention", "success_retention", "error_retention", mode="before"
    )(_optional_seconds)

    @field_validator("concurrency", mode="before")
    @classmethod
    def _check_concurrency(cls, value: Any) -> Any:
        problem = concurrency_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("concurrency_key", mode="before")
    @classmethod
    def _check_concurrency_key(cls, value: Any) -> Any:
        problem = concurrency_key_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class CheckSection(_Section):
    """``[check]``: read (and checked) by ``fw check`` only; known here so it is no unknown
    table."""

    paths: Any = None


class AppConfig(_Section):
    """Everything ``fw.toml`` says, with defaults filled in."""

    app: AppSection = AppSection()
    runtime: RuntimeSection = RuntimeSection()
    defaults: DefaultsSection = DefaultsSection()
    codegen: CodegenSection = CodegenSection()
    check: CheckSection = CheckSection()
    workflows: list[WorkflowSection] = []

    def workflow_settings(self, name: str) -> WorkflowSection | None:
        """The ``[[workflows]]`` table of one workflow, if fw.toml has it."""
        return next((w for w in self.workflows if w.name == name), None)


def load_config(root: Path) -> AppConfig:
    """Read and validate ``root/fw.toml``.

    Raises:
        ConfigError: the file is missing, not TOML (with its line) or has an invalid value
            (with its key).
    """
    path = root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `fw init` to create an app") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where(path, text, err['loc'])}: {key_name(data, err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(problems) from None
    _warn_unknown_keys(path, text, data)
    return config


@dataclass(frozen=True)
class UnknownKey:
    """A key of fw.toml that fw does not know, so ignores (a typo, most often)."""

    name: str
    """As a user reads it: ``runtime.concurency``, ``workflows[order].colour``, ``extras``."""
    line: int | None
    """Its line in fw.toml (1-based), when found."""
    table: bool
    """A whole table (``[extras]``) rather than a key."""
    close: tuple[str, ...]
    """The keys its table accepts that look like it, closest first."""

    @property
    def label(self) -> str:
        """``runtime.concurency``, or ``[extras]`` for a table."""
        return f"[{self.name}]" if self.table else self.name

    @property
    def message(self) -> str:
        """``unknown key runtime.concurency; did you mean 'concurrency'?``."""
        return f"unknown {'table' if self.table else 'key'} {self.label}{self.suggestion}"

    @property
    def suggestion(self) -> str:
        """``; did you mean 'concurrency'?``, or nothing when no accepted key looks like it."""
        if not self.close:
            return ""
        return f"; did you mean {' or '.join(repr(c) for c in self.close)}?"


def unknown_keys(text: str, data: dict[str, Any]) -> list[UnknownKey]:
    """The keys of fw.toml (its ``text``, parsed as ``data``) that fw ignores, by line.

    What each table accepts is read from the models above (``AppConfig`` down), so a key they
    gain is known here at once. A key of a table that forbids unknown keys (a workflow's
    ``retries``) is an error of ``load_config``, not listed here.
    """
    found: list[UnknownKey] = []
    for loc, accepted in _unknown_locations(AppConfig, data, ()):
        key = str(loc[-1])
        close = tuple(difflib.get_close_matches(key, accepted, n=3, cutoff=0.6))
        table = len(loc) == 1 and isinstance(data[key], dict)
        found.append(UnknownKey(key_name(data, loc), key_line(text, loc), table, close))
    return sorted(found, key=lambda k: (k.line is None, k.line or 0, k.name))


def find_unknown_keys(root: Path) -> list[UnknownKey]:
    """``unknown_keys`` of ``root/fw.toml``; none when it cannot be read or is not TOML (which
    codegen and ``load_config`` report)."""
    try:
        text = (root / CONFIG_FILE).read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    return unknown_keys(text, data)


def _unknown_locations(
    model: type[BaseModel], table: dict[str, Any], loc: tuple[int | str, ...]
) -> Iterator[tuple[tuple[int | str, ...], list[str]]]:
    """Each unknown key under ``table`` (read as ``model``), with the keys its table accepts."""
    fields = model.model_fields
    for key, value in table.items():
        field = fields.get(key)
        if field is None:
            if model.model_config.get("extra") == "allow":
                yield (*loc, key), list(fields)
            continue
        nested, many = _table_model(field.annotation)
        if nested is None:
            continue
        if not many and isinstance(value, dict):
            yield from _unknown_locations(nested, cast(dict[str, Any], value), (*loc, key))
        elif many and isinstance(value, list):
            items: list[Any] = cast(Any, value)
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    entry = cast(dict[str, Any], item)
                    yield from _unknown_locations(nested, entry, (*loc, key, index))


def _table_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model of a field that is a table (``RetriesSection``, ``WorkflowRetries | None``)
    or an array of tables (``list[WorkflowSection]``: True), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        model, _ = _table_model(item)
        return model, True
    for arg in get_args(annotation):  # X | None
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, False
    return None, False


IGNORED_KEYS = "fw ignores these keys"
"""What the warning of unknown keys says after the path of fw.toml (for ``-W`` filters)."""


def _warn_unknown_keys(path: Path, text: str, data: dict[str, Any]) -> None:
    keys = unknown_keys(text, data)
    if not keys:
        return
    named = ", ".join(
        f"{k.label} ({path}{'' if k.line is None else f':{k.line}'}{k.suggestion})" for k in keys
    )
    warnings.warn(f"{path}: {IGNORED_KEYS}: {named}", stacklevel=_first_frame_outside_fw())


def unknown_keys_warned(message: Warning) -> tuple[Path, list[UnknownKey]] | None:
    """The fw.toml and the unknown keys of it that ``message`` warned of, when it is the
    warning ``load_config`` gives (``fw`` commands print those keys their own way)."""
    path, said, _ = str(message).partition(f": {IGNORED_KEYS}: ")
    if not said or type(message) is not UserWarning or Path(path).name != CONFIG_FILE:
        return None
    return Path(path), find_unknown_keys(Path(path).parent)


_THIS_FILE = (Path(__file__), Path(__file__).resolve())
_FW_DIRS = tuple({f"{file.parents[1]}{os.sep}" for file in _THIS_FILE})
"""fw's package folder, as its frames name it (its path as imported, and resolved)."""


def _first_frame_outside_fw() -> int:
    """The ``stacklevel`` that names the first caller outside fw (the user's ``App(...)``,
    ``Worker(...)`` or test), rather than a line of fw's own code."""
    frame: FrameType | None = sys._getframe(1)  # the function that warns: stacklevel 1
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_FW_DIRS):
        frame = frame.f_back
        level += 1
    return level if frame is not None else 1


def key_name(data: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """A key of fw.toml as a user reads it: ``runtime.lease``, ``workflows[order].retries``."""
    parts: list[str] = []
    for index, part in enumerate(loc):
        if isinstance(part, int) and index == 1 and loc[0] == "workflows":
            parts[-1] += f"[{_table_name(data, part)}]"
        else:
            parts.append(str(part))
    return ".".join(parts)


def _table_name(data: dict[str, Any], index: int) -> str:
    tables = cast(list[Any], data.get("workflows") or [])
    table = tables[index] if index < len(tables) else None
    name = cast(dict[str, Any], table).get("name") if isinstance(table, dict) else None
    return name if isinstance(name, str) else str(index)


def where(path: Path, text: str, loc: tuple[int | str, ...]) -> str:
    """``path:line`` of the key at ``loc`` (its table's line, or the bare path when not found)."""
    line = key_line(text, loc)
    return f"{path}:{line}" if line is not None else str(path)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")


def key_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line of fw.toml that sets the key at ``loc`` (a pydantic error location, like
    ``("workflows", 2, "retries", "limit")``): the deepest key or table header on the way to
    it, so a key inside an inline table names the line of that table."""
    wanted = tuple(str(part) for part in loc)
    table: tuple[str, ...] = ()
    counts: dict[str, int] = {}
    best: tuple[int, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header is not None:
            names = _dotted(header.group(2))
            if header.group(1) == "[[":
                counts[".".join(names)] = counts.get(".".join(names), -1) + 1
                table = (*names, str(counts[".".join(names)]))
            elif names[:1] and ".".join(names[:1]) in counts:
                table = (names[0], str(counts[names[0]]), *names[1:])
            else:
                table = names
            path = table
        else:
            key = _KEY.match(line)
            if key is None:
                continue
            path = (*table, *_dotted(key.group(1)))
        depth = len(path)
        if wanted[:depth] == path and (best is None or depth > best[0]):
            best = (depth, number)
    return None if best is None else best[1]


def _dotted(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def database_url(root: Path, config: AppConfig) -> str:
    """The store's URL: ``FW_DATABASE_URL``, else ``[runtime] database``, else SQLite under .fw/.

    A relative SQLite path is resolved against the app root.
    """
    url = os.environ.get(DATABASE_ENV) or config.runtime.database
    if not url:
        return f"sqlite:///{root / '.fw' / 'fw.db'}"
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = root / path
        return f"sqlite:///{path}"
    return url
