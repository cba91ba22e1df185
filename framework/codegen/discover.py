"""Finding an app's files: ``*_workflow.py`` for codegen, every ``.py`` for ``fw check``.

The walk skips ``_generated``, hidden folders, ``__pycache__``, virtual environments (any
folder holding ``pyvenv.cfg``, and ``venv`` / ``node_modules``), nested apps (a folder with its
own ``fw.toml``) and the ``[codegen] exclude`` globs of fw.toml.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from framework.app_root import CONFIG_FILE
from framework.naming import is_workflow_file

GENERATED_DIR = "_generated"
SKIPPED_DIRS = frozenset({GENERATED_DIR, "__pycache__", "venv", "node_modules", "site-packages"})


def discover_workflow_files(root: Path, exclude: Iterable[str] = ()) -> list[str]:
    """The app's workflow files, relative to ``root`` with ``/`` separators, sorted."""
    return walk_app(root, exclude, is_workflow_file)


def discover_python_files(root: Path, exclude: Iterable[str] = ()) -> list[str]:
    """Every ``.py`` file of the app outside the skipped folders, sorted."""
    return walk_app(root, exclude, lambda name: name.endswith(".py"))


def walk_app(root: Path, exclude: Iterable[str], keep: Callable[[str], bool]) -> list[str]:
    """Files under ``root`` whose name passes ``keep``, skipping what discovery skips."""
    excluded = compile_globs(exclude)
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(
            d for d in dirs if not _skip_dir(Path(folder, d), d, prefix + d, excluded)
        )
        found += [
            prefix + name
            for name in files
            if keep(name) and not _matches(excluded, prefix + name)
        ]
    return sorted(found)


def is_skipped_dir_name(name: str) -> bool:
    """Whether a folder of this name is never part of an app's code."""
    return name.startswith(".") or name in SKIPPED_DIRS


def compile_globs(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """Exclude globs as regexes over ``/``-separated paths relative to the app root.

    ``*`` matches within one path segment, ``**`` across segments, ``?`` one character; a
    pattern without ``/`` matches a file or folder name at any depth (like .gitignore).
    """
    return [re.compile(_glob_regex(pattern)) for pattern in patterns]


def _glob_regex(pattern: str) -> str:
    pattern = pattern.strip().strip("/")
    anchored = "/" in pattern
    out = "" if anchored else "(?:.*/)?"
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("/**", index) and index + 3 == len(pattern):
            out += "(?:/.*)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return out + r"\Z"


def _matches(excluded: list[re.Pattern[str]], rel: str) -> bool:
    return any(regex.match(rel) for regex in excluded)


def _skip_dir(path: Path, name: str, rel: str, excluded: list[re.Pattern[str]]) -> bool:
    if is_skipped_dir_name(name) or _matches(excluded, rel):
        return True
    return (path / "pyvenv.cfg").exists() or (path / CONFIG_FILE).exists()
