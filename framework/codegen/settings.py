"""Codegen's view of ``fw.toml``: the app's name and ``[codegen] exclude``, read with tomllib."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from framework.app_root import CONFIG_FILE, package_name
from framework.codegen.cache import CodegenCache, digest
from framework.codegen.model import Problem

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


@dataclass(frozen=True)
class CodegenSettings:
    """What codegen reads from fw.toml, and the raw bytes it read (for the manifest)."""

    app_name: str
    package: str
    exclude: tuple[str, ...]
    toml_bytes: bytes


def read_settings(
    root: Path, cache: CodegenCache | None = None
) -> CodegenSettings | list[Problem]:
    """Read ``root/fw.toml``; the problems when it is unreadable, not TOML or has bad values.

    With a ``cache``, a fw.toml whose content was read before is not parsed again.
    """
    problems = package_problems(root)
    package = package_name(root)
    try:
        raw = (root / CONFIG_FILE).read_bytes()
    except OSError as exc:
        return [*problems, Problem(CONFIG_FILE, None, None, f"cannot read: {exc}", "invalid_toml")]
    toml_digest = digest(raw)
    known = None if cache is None or problems else cache.cached_settings(toml_digest)
    if known is not None:
        return CodegenSettings(known["app_name"], package, tuple(known["exclude"]), raw)
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return [*problems, Problem(CONFIG_FILE, None, None, f"not UTF-8: {exc}", "invalid_toml")]
    except tomllib.TOMLDecodeError as exc:
        return [*problems, toml_problem(exc)]
    exclude, exclude_problems = _exclude_globs(data)
    problems += exclude_problems
    if problems:
        return problems
    app = data.get("app")
    app_name = cast(dict[str, Any], app).get("name") if isinstance(app, dict) else None
    name = app_name if isinstance(app_name, str) and app_name else package
    if cache is not None:
        cache.remember_settings(toml_digest, {"app_name": name, "exclude": list(exclude)})
    return CodegenSettings(name, package, exclude, raw)


def package_problems(root: Path) -> list[Problem]:
    """The app folder must be importable: its name must be a Python identifier."""
    name = package_name(root)
    if name.isidentifier():
        return []
    message = (
        f"the app folder's name {name!r} is not a Python package name, so its workflows "
        "cannot be imported; rename the folder (letters, digits and underscores)"
    )
    return [Problem("", None, None, message, "invalid_app_name")]


def toml_problem(exc: tomllib.TOMLDecodeError) -> Problem:
    """``fw.toml:line:col: not valid TOML: ...`` from tomllib's error."""
    message = str(exc)
    match = _TOML_POSITION.search(message)
    if match is None:
        return Problem(CONFIG_FILE, None, None, f"not valid TOML: {message}", "invalid_toml")
    text = message[: match.start()]
    line, col = int(match.group(1)), int(match.group(2))
    return Problem(CONFIG_FILE, line, col, f"not valid TOML: {text}", "invalid_toml")


def _exclude_globs(data: dict[str, Any]) -> tuple[tuple[str, ...], list[Problem]]:
    section = data.get("codegen", {})
    if not isinstance(section, dict):
        section = {"exclude": None}
    exclude = cast(dict[str, Any], section).get("exclude", [])
    if isinstance(exclude, list):
        items: list[Any] = cast(Any, exclude)
        globs = [glob for glob in items if isinstance(glob, str)]
        if len(globs) == len(items):
            return tuple(globs), []
    message = '[codegen] exclude must be a list of glob strings, like ["scripts/**"]'
    return (), [Problem(CONFIG_FILE, None, None, message, "invalid_toml")]
