"""``run_codegen``: discover, parse (cached), check, render, reconcile fw.toml, write."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from framework.app_root import CONFIG_FILE, package_name
from framework.codegen.cache import CodegenCache, digest
from framework.codegen.discover import GENERATED_DIR, discover_workflow_files
from framework.codegen.model import FileScan, Problem, WorkflowSpec, sort_problems
from framework.codegen.settings import CodegenSettings, read_settings
from framework.codegen.write import FileChange, apply_changes, plan_directory, read_text


@dataclass
class AppScan:
    """The workflows of an app, as its files declare them, and the problems found."""

    root: Path
    settings: CodegenSettings | None
    workflows: list[WorkflowSpec] = field(default_factory=list[WorkflowSpec])
    problems: list[Problem] = field(default_factory=list[Problem])
    files: list[str] = field(default_factory=list[str])
    cache: CodegenCache | None = None
    parsed: int = 0

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)


@dataclass
class CodegenResult:
    """What one codegen run found and did (or, in check mode, would do)."""

    root: Path
    workflows: list[WorkflowSpec]
    problems: list[Problem]
    changes: list[FileChange]
    check: bool
    seconds: float
    files_scanned: int = 0
    files_parsed: int = 0

    @property
    def ok(self) -> bool:
        """No error-level problem (then output was written, or is up to date)."""
        return not any(p.is_error for p in self.problems)

    @property
    def up_to_date(self) -> bool:
        return self.ok and not self.changes


def scan_app(root: Path, *, use_cache: bool = True) -> AppScan:
    """Read the app's fw.toml and workflow files (through the cache) and cross-check them."""
    cache = CodegenCache.load(root, package_name(root)) if use_cache else None
    settings = read_settings(root, cache)
    if isinstance(settings, list):
        return AppScan(root, None, problems=settings, cache=cache)
    files = discover_workflow_files(root, settings.exclude)
    scan = AppScan(root, settings, files=files, cache=cache)
    for rel in files:
        found, parsed = _scan_file(root, settings.package, rel, cache)
        scan.parsed += parsed
        scan.problems += found.problems
        if found.workflow is not None:
            scan.workflows.append(found.workflow)
    if cache is not None:
        cache.keep_only(set(files))
    scan.problems += duplicate_problems(scan.workflows)
    scan.workflows.sort(key=lambda w: w.name)
    scan.problems = sort_problems(scan.problems)
    return scan


def run_codegen(root: Path, check: bool = False) -> CodegenResult:
    """Generate ``<root>/_generated/`` and reconcile ``<root>/fw.toml``.

    Nothing is written when any error-level problem is found, or in ``check`` mode (where
    ``changes`` lists what is stale).
    """
    started = time.perf_counter()
    root = root.resolve()
    scan = scan_app(root)
    result = CodegenResult(
        root, scan.workflows, scan.problems, [], check, 0.0, len(scan.files), scan.parsed
    )
    if scan.ok and scan.settings is not None:
        result.changes, manifest_problems = _plan(root, scan)
        result.problems = sort_problems([*result.problems, *manifest_problems])
        if result.ok and not check:
            apply_changes([c for c in result.changes if c.path.name != CONFIG_FILE])
            apply_changes([c for c in result.changes if c.path.name == CONFIG_FILE], durable=True)
            _remember_outputs(root, scan)
    if scan.cache is not None and not check:
        scan.cache.save()
    result.seconds = time.perf_counter() - started
    return result


def duplicate_problems(workflows: list[WorkflowSpec]) -> list[Problem]:
    """Two files declaring one name (or two names with one entrypoint class), at each file."""
    problems: list[Problem] = []
    for attribute, code in (("name", "duplicate_name"), ("class_name", "duplicate_class")):
        groups: dict[str, list[WorkflowSpec]] = defaultdict(list)
        for workflow in workflows:
            groups[getattr(workflow, attribute)].append(workflow)
        for value, declaring in groups.items():
            if len(declaring) < 2 or (code == "duplicate_class" and _one_name(declaring)):
                continue
            files = ", ".join(f"{w.file}:{w.line}" for w in declaring)
            what = "workflow name" if attribute == "name" else "entrypoint class name"
            message = (
                f"{what} {value!r} is declared by {len(declaring)} files ({files}); "
                "rename all but one"
            )
            problems += [Problem(w.file, w.line, None, message, code) for w in declaring]
    return problems


def _one_name(workflows: list[WorkflowSpec]) -> bool:
    return len({w.name for w in workflows}) == 1


def workflows_digest(workflows: list[WorkflowSpec]) -> str:
    """A fingerprint of the fw.toml keys codegen derives."""
    return digest(json.dumps([w.manifest_keys() for w in workflows]).encode())


def _scan_file(
    root: Path, package: str, rel: str, cache: CodegenCache | None
) -> tuple[FileScan, bool]:
    """The file's scan, from the cache when it is unchanged; and whether it was parsed."""
    path = root / rel
    try:
        stat = path.stat()
        cached = None if cache is None else cache.lookup(rel, path, stat)
        if cached is not None:
            return cached, False
        source = path.read_bytes()
    except OSError as exc:
        problem = Problem(rel, None, None, f"cannot read: {exc.strerror}", "unreadable")
        return FileScan(None, (problem,)), False
    from framework.codegen.parse import module_name_for, scan_workflow_file

    scan = scan_workflow_file(source, rel, module_name_for(package, rel))
    if cache is not None:
        cache.store(rel, stat, source, scan)
    return scan, True


def _plan(root: Path, scan: AppScan) -> tuple[list[FileChange], list[Problem]]:
    changes = _plan_generated(root, scan)
    manifest_change, problems = _plan_manifest(root, scan)
    if manifest_change is not None:
        changes.append(manifest_change)
    return changes, problems


def _plan_generated(root: Path, scan: AppScan) -> list[FileChange]:
    """The changes to ``_generated/``; none without rendering when the cache shows that its
    files are untouched since they were generated from the same inputs."""
    from framework.codegen.render import generated_inputs, render_generated

    assert scan.settings is not None
    folder = root / GENERATED_DIR
    inputs = generated_inputs(scan.settings.app_name, scan.workflows)
    if scan.cache is not None and scan.cache.generated_is(inputs, folder):
        return []
    return plan_directory(folder, render_generated(scan.settings.app_name, scan.workflows))


def _plan_manifest(root: Path, scan: AppScan) -> tuple[FileChange | None, list[Problem]]:
    assert scan.settings is not None
    raw = scan.settings.toml_bytes
    fingerprint = (digest(raw), workflows_digest(scan.workflows))
    if scan.cache is not None and scan.cache.manifest_is(*fingerprint):
        return None, []
    from framework.codegen.manifest import reconcile_manifest

    text = raw.decode("utf-8")
    new_text, problems = reconcile_manifest(text, scan.workflows)
    if problems or new_text == text:
        if not problems and scan.cache is not None:
            scan.cache.remember_manifest(*fingerprint)
        return None, problems
    return FileChange(root / CONFIG_FILE, read_text(root / CONFIG_FILE), new_text), []


def _remember_outputs(root: Path, scan: AppScan) -> None:
    if scan.cache is None or scan.settings is None:
        return
    from framework.codegen.render import generated_inputs

    inputs = generated_inputs(scan.settings.app_name, scan.workflows)
    scan.cache.remember_generated(inputs, root / GENERATED_DIR)
    try:
        raw = (root / CONFIG_FILE).read_bytes()
    except OSError:
        return
    scan.cache.remember_manifest(digest(raw), workflows_digest(scan.workflows))
