"""The per-file codegen cache, ``<app>/.fw/codegen-cache.json``.

A workflow file whose path, ``mtime_ns`` and size match its entry is not parsed again. An entry
written less than two seconds after the file's mtime is "racy" (a later edit within the
filesystem's timestamp granularity could keep the same mtime), so it is trusted only after its
content hash matches. The cache also remembers the settings of the fw.toml it last read, the
fw.toml it last reconciled (an unchanged fw.toml with unchanged workflows skips tomlkit
entirely), and the generated files it last wrote (unchanged inputs and untouched files skip
rendering).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from framework.codegen.model import FileScan
from framework.codegen.write import write_atomic

CACHE_DIR = ".fw"
CACHE_NAME = "codegen-cache.json"
CACHE_VERSION = 2
RACY_NS = 2_000_000_000
PARSER_MODULES = ("annotations.py", "concurrency.py", "model.py", "parse.py", "scope.py")


def digest(data: bytes) -> str:
    """A short content hash."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@functools.cache
def source_digest(modules: tuple[str, ...]) -> str:
    """A hash of codegen's own modules: a new fw version never reuses stale results."""
    folder = Path(__file__).parent
    return digest(b"".join((folder / module).read_bytes() for module in modules))


@dataclass
class CodegenCache:
    """Parsed workflow files by path, and the fingerprint of the last reconciled fw.toml."""

    path: Path
    key: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    manifest: dict[str, str] = field(default_factory=dict[str, str])
    settings: dict[str, Any] = field(default_factory=dict[str, Any])
    generated: dict[str, Any] = field(default_factory=dict[str, Any])
    dirty: bool = False

    @classmethod
    def load(cls, root: Path, package: str) -> CodegenCache:
        """The app's cache, or an empty one when it is missing, unreadable or stale."""
        path = root / CACHE_DIR / CACHE_NAME
        key = f"{CACHE_VERSION}:{package}:{source_digest(PARSER_MODULES)}"
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return cls(path, key, dirty=True)
        if not isinstance(data, dict):
            return cls(path, key, dirty=True)
        stored = cast(dict[str, Any], data)
        if stored.get("key") != key:
            return cls(path, key, dirty=True)
        return cls(
            path,
            key,
            dict(stored.get("files", {})),
            dict(stored.get("manifest", {})),
            dict(stored.get("settings", {})),
            dict(stored.get("generated", {})),
        )

    def lookup(self, rel: str, file: Path, stat: os.stat_result) -> FileScan | None:
        """The cached scan of ``rel`` when the file is unchanged since it was cached."""
        entry = self.files.get(rel)
        if entry is None or entry["mtime_ns"] != stat.st_mtime_ns or entry["size"] != stat.st_size:
            return None
        if entry["cached_at_ns"] - stat.st_mtime_ns < RACY_NS:
            try:
                if digest(file.read_bytes()) != entry["digest"]:
                    return None
            except OSError:
                return None
            entry["cached_at_ns"] = time.time_ns()
            self.dirty = True
        return FileScan.from_dict(entry["scan"])

    def store(self, rel: str, stat: os.stat_result, source: bytes, scan: FileScan) -> None:
        """Remember the scan of ``rel`` as of ``stat``."""
        self.files[rel] = {
            "mtime_ns": stat.st_mtime_ns,
            "size": stat.st_size,
            "digest": digest(source),
            "cached_at_ns": time.time_ns(),
            "scan": scan.to_dict(),
        }
        self.dirty = True

    def keep_only(self, paths: set[str]) -> None:
        """Forget files that are gone."""
        for rel in [rel for rel in self.files if rel not in paths]:
            del self.files[rel]
            self.dirty = True

    def manifest_is(self, toml_digest: str, workflows_digest: str) -> bool:
        """Whether fw.toml was last reconciled as exactly this text for exactly these workflows."""
        return self.manifest == {"toml": toml_digest, "workflows": workflows_digest}

    def remember_manifest(self, toml_digest: str, workflows_digest: str) -> None:
        if not self.manifest_is(toml_digest, workflows_digest):
            self.manifest = {"toml": toml_digest, "workflows": workflows_digest}
            self.dirty = True

    def cached_settings(self, toml_digest: str) -> dict[str, Any] | None:
        """What codegen read from fw.toml when its content had this digest."""
        return self.settings if self.settings.get("digest") == toml_digest else None

    def remember_settings(self, toml_digest: str, values: dict[str, Any]) -> None:
        self.settings = {"digest": toml_digest, **values}
        self.dirty = True

    def generated_is(self, inputs: str, folder: Path) -> bool:
        """Whether ``folder`` still holds exactly what was generated from ``inputs`` (same
        files, sizes and mtimes, none written within the racy window)."""
        if self.generated.get("inputs") != inputs:
            return False
        stats = directory_stats(folder)
        if not stats or stats != self.generated.get("files"):
            return False
        newest = max(mtime for mtime, _ in stats.values())
        return bool(self.generated["cached_at_ns"] - newest >= RACY_NS)

    def remember_generated(self, inputs: str, folder: Path) -> None:
        if self.generated_is(inputs, folder):
            return
        self.generated = {
            "inputs": inputs,
            "files": directory_stats(folder),
            "cached_at_ns": time.time_ns(),
        }
        self.dirty = True

    def save(self) -> None:
        """Write the cache if it changed; a cache that cannot be written is skipped silently."""
        if not self.dirty:
            return
        data = {
            "key": self.key,
            "files": self.files,
            "manifest": self.manifest,
            "settings": self.settings,
            "generated": self.generated,
        }
        try:
            ignore = self.path.parent / ".gitignore"
            if not ignore.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                ignore.write_text("# fw's local state (database, caches)\n*\n")
            write_atomic(self.path, json.dumps(data, separators=(",", ":"), sort_keys=True))
        except OSError:
            return
        self.dirty = False


def directory_stats(folder: Path, prefix: str = "") -> dict[str, list[int]]:
    """``name -> [mtime_ns, size]`` of the regular, non-hidden files in ``folder`` and in its
    subfolders one level down (``handles/x.py``; ``__pycache__`` skipped)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return {}
    stats: dict[str, list[int]] = {}
    for entry in entries:
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if not prefix and entry.is_dir(follow_symlinks=False):
            stats.update(directory_stats(Path(entry.path), f"{entry.name}/"))
        elif entry.is_file(follow_symlinks=False):
            stat = entry.stat(follow_symlinks=False)
            stats[prefix + entry.name] = [stat.st_mtime_ns, stat.st_size]
    return stats
