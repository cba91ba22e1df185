"""Versioned schema migrations: ``schema/<dialect>/NNNN_name.sql``, applied in order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCHEMA_DIR = Path(__file__).parent / "schema"


@dataclass(frozen=True)
class Migration:
    """One schema step: from ``version - 1`` to ``version``."""

    version: int
    name: str
    sql: str

    @property
    def requires(self) -> str | None:
        """What the database must support for this step (a ``-- requires: NAME`` line), or
        None. A store lacking it skips the step, and applies it once it has it."""
        for line in self.sql.splitlines():
            if line.startswith("-- requires:"):
                return line.removeprefix("-- requires:").strip()
        return None


def migrations(dialect: str) -> list[Migration]:
    """The migrations of ``dialect`` (``sqlite`` or ``postgres``), oldest first."""
    found: list[Migration] = []
    for path in sorted((SCHEMA_DIR / dialect).glob("*.sql")):
        number, _, name = path.stem.partition("_")
        found.append(Migration(int(number), name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"schema/{dialect}: migrations must be numbered 1..n, got {versions}")
    return found


def latest_version(dialect: str) -> int:
    """The schema version this release of fw writes."""
    return len(migrations(dialect))
