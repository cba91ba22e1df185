"""The runtime's view of ``fw.toml``: validated settings with their defaults."""

from __future__ import annotations

import os
import tomllib
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from framework.app_root import CONFIG_FILE
from framework.errors import ConfigError
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

    _parse_delay = field_validator("delay", "max_delay", mode="before")(_optional_seconds)


class DefaultsSection(_Section):
    timeout: float = 600.0
    retries: RetriesSection = RetriesSection()

    _parse_timeout = field_validator("timeout", mode="before")(_seconds)


class RuntimeSection(_Section):
    database: str | None = None
    lease: float = 30.0
    poll_interval: float = 1.0
    concurrency: int = Field(default=100, ge=1)
    payload_limit: int = Field(default=1024 * 1024, ge=1)
    crash_loop_limit: int = Field(default=5, ge=1)
    on_nondeterminism: Literal["error", "block"] = "error"
    success_retention: float | None = None
    error_retention: float | None = None
    retention: float | None = None
    prune_interval: float = 3600.0

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


class WorkflowSection(_Section):
    name: str
    binding: str | None = None
    class_name: str | None = None
    module: str | None = None
    file: str | None = None


class AppConfig(_Section):
    """Everything ``fw.toml`` says, with defaults filled in."""

    app: AppSection = AppSection()
    runtime: RuntimeSection = RuntimeSection()
    defaults: DefaultsSection = DefaultsSection()
    codegen: CodegenSection = CodegenSection()
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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `fw init` to create an app") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    _warn_unknown_keys(path, config)
    return config


def _warn_unknown_keys(path: Path, config: AppConfig) -> None:
    unknown = [f"[{key}]" for key in (config.model_extra or {})]
    for section in ("app", "runtime", "defaults", "codegen"):
        model: BaseModel = getattr(config, section)
        unknown += [f"{section}.{key}" for key in (model.model_extra or {})]
    if unknown:
        warnings.warn(
            f"{path}: fw ignores these keys: {', '.join(unknown)}", UserWarning, stacklevel=3
        )


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
