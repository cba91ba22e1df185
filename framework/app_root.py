"""Finding an app: the folder that holds ``fw.toml``."""

from __future__ import annotations

from pathlib import Path

from framework.errors import AppNotFoundError

CONFIG_FILE = "fw.toml"


SEARCH_DEPTH = 2
"""Levels below the working directory where the CLI looks for an app when none is above."""
SKIPPED_FOLDERS = {"node_modules", "site-packages", "__pycache__", "_generated"}


def find_app_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) with fw.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise AppNotFoundError(
        f"no {CONFIG_FILE} in {here} or above it; pass --app DIR or run `fw init DIR`"
    )


def apps_below(folder: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """The folders holding fw.toml up to ``depth`` levels below ``folder`` (hidden folders,
    virtualenvs and generated code skipped), sorted."""
    found: list[Path] = []
    if depth <= 0:
        return found
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return found
    for child in children:
        if child.name.startswith(".") or child.name in SKIPPED_FOLDERS:
            continue
        if (child / CONFIG_FILE).is_file():
            found.append(child)
        else:
            found.extend(apps_below(child, depth - 1))
    return found


def resolve_app_root(app: Path | None) -> Path:
    """``--app DIR`` when given (it must hold fw.toml; the error names the apps below it),
    else the nearest app upwards, else the only app below the working directory (``fw init
    shop`` then ``fw start ...`` works)."""
    if app is None:
        try:
            return find_app_root()
        except AppNotFoundError as missing:
            below = apps_below(Path.cwd().resolve())
            if len(below) == 1:
                return below[0]
            if below:
                names = ", ".join(str(p.relative_to(Path.cwd().resolve())) for p in below)
                raise AppNotFoundError(
                    f"no {CONFIG_FILE} here or above, and several apps below ({names}): "
                    "pass --app DIR"
                ) from None
            raise missing from None
    root = app.resolve()
    if not (root / CONFIG_FILE).is_file():
        suggested = [f"--app {app / found.relative_to(root)}" for found in apps_below(root)]
        hint = f"run `fw init {app}` to create one"
        if suggested:  # `--app /tmp/x` for the app /tmp/x/shop
            hint = f"did you mean {' or '.join(suggested)}?"
        raise AppNotFoundError(f"{root}: no {CONFIG_FILE} here; {hint}")
    return root


def package_name(root: Path) -> str:
    """The importable name of the app package: its folder's name."""
    return root.name
