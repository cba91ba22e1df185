"""Finding an app: the folder that holds ``fw.toml``."""

from __future__ import annotations

from pathlib import Path

from framework.errors import AppNotFoundError

CONFIG_FILE = "fw.toml"


def find_app_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) with fw.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise AppNotFoundError(
        f"no {CONFIG_FILE} in {here} or above it; pass --app DIR or run `fw init DIR`"
    )


def resolve_app_root(app: Path | None) -> Path:
    """``--app DIR`` when given (it must hold fw.toml), else the nearest app upwards."""
    if app is None:
        return find_app_root()
    root = app.resolve()
    if not (root / CONFIG_FILE).is_file():
        raise AppNotFoundError(f"{root}: no {CONFIG_FILE} here; run `fw init {app}` to create one")
    return root


def package_name(root: Path) -> str:
    """The importable name of the app package: its folder's name."""
    return root.name
