"""Writing generated output: atomically, only when the content changes, and removing stale files
only inside ``_generated/``. In check mode nothing is written and the changes become diffs."""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ChangeAction = Literal["write", "delete"]


@dataclass(frozen=True)
class FileChange:
    """One file codegen would write (``new`` set) or delete (``new`` None)."""

    path: Path
    old: str | None
    new: str | None

    @property
    def action(self) -> ChangeAction:
        return "delete" if self.new is None else "write"

    def diff(self, label: str) -> str:
        """A unified diff from the file as it is to the file codegen wants."""
        old = [] if self.old is None else self.old.splitlines(keepends=True)
        new = [] if self.new is None else self.new.splitlines(keepends=True)
        lines = difflib.unified_diff(old, new, f"a/{label}", f"b/{label}")
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def plan_file(path: Path, text: str) -> FileChange | None:
    """The change that makes ``path`` hold ``text``, or None when it already does."""
    old = read_text(path)
    return None if old == text else FileChange(path, old, text)


def plan_directory(folder: Path, files: Mapping[str, str]) -> list[FileChange]:
    """The changes that make ``folder`` hold exactly ``files`` (relative path -> text).

    Other regular files directly inside ``folder``, or inside a subfolder that ``files`` writes
    to (``handles/``), are stale and deleted; hidden files and other subfolders
    (``__pycache__``) are left alone.
    """
    changes = [c for name, text in sorted(files.items()) if (c := plan_file(folder / name, text))]
    subfolders = sorted({name.split("/")[0] for name in files if "/" in name})
    for prefix in ["", *(f"{sub}/" for sub in subfolders)]:
        for stale in _stale_files(folder / prefix, files, prefix):
            changes.append(FileChange(stale, read_text(stale), None))
    return changes


def apply_changes(changes: Iterable[FileChange], durable: bool = False) -> None:
    """Write or delete each file; writes are atomic (a temporary file, then ``os.replace``)."""
    for change in changes:
        if change.new is None:
            change.path.unlink(missing_ok=True)
        else:
            write_atomic(change.path, change.new, durable=durable)


def write_atomic(path: Path, text: str, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` in one step: readers see the old file or the new one.

    ``durable`` also flushes the data to disk first (for fw.toml, which the user owns).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _stale_files(folder: Path, keep: Mapping[str, str], prefix: str = "") -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        Path(entry.path)
        for entry in entries
        if entry.is_file(follow_symlinks=False)
        and prefix + entry.name not in keep
        and not entry.name.startswith(".")
    ]
