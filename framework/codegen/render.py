"""Rendering text from the Jinja2 templates of ``templates/`` (a wheel: ``framework/templates``)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from framework.codegen.model import ANY, TypeImport, TypeRef, WorkflowSpec
from framework.resources import templates_dir

GENERATED_FILES = ("__init__.py", "_typing.py", "client.py", "entrypoints.py", "workflows.py")
HANDLES = "handles"
"""The subfolder of ``_generated/`` with one module per workflow (``handles/<binding>.py``)."""


@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of every generated text (strict: an unknown variable fails)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["py"] = python_string
    env.filters["pyrepr"] = lambda value: repr(" ".join(str(value).split()))
    return env


def render_template(template: str, /, **context: Any) -> str:
    """Render ``templates/<template>``."""
    return environment().get_template(template).render(**context)


def render_generated(app_name: str, workflows: Sequence[WorkflowSpec]) -> dict[str, str]:
    """The files of ``_generated/`` (relative path -> text) for ``workflows``, sorted by name:
    the package's modules, and ``handles/<binding>.py`` per workflow (its types alone)."""
    ordered = sorted(workflows, key=lambda w: w.name)
    imports = _imports([ref for w in ordered for ref in (w.params, w.output)])
    closed = [w for w in ordered if w.closed_events]
    context = {
        "app_name": app_name,
        "workflows": ordered,
        "imports": [i.statement for i in imports],
        "closed": closed,
    }
    files = {name: render_template(f"codegen/{name}.j2", **context) for name in GENERATED_FILES}
    files[f"{HANDLES}/__init__.py"] = render_template("codegen/handles.py.j2", **context)
    for w in ordered:
        refs = [w.params, w.output, *(e.payload for e in w.events if w.closed_events)]
        files[f"{HANDLES}/{w.handle_module}.py"] = render_template(
            "codegen/handle.py.j2",
            app_name=app_name,
            workflows=[w],
            w=w,
            imports=[i.statement for i in _imports(refs)],
            typing_names=_handle_typing_names(w),
            with_mapping=w.closed_events and any(e.payload != ANY for e in w.events),
        )
    return dict(sorted(files.items()))


def _imports(refs: list[TypeRef]) -> list[TypeImport]:
    """The imports of ``refs``, once each, sorted."""
    unique = {i.sort_key: i for ref in refs for i in ref.imports}
    return sorted(unique.values(), key=lambda i: i.sort_key)


def _handle_typing_names(w: WorkflowSpec) -> str:
    """What ``handles/<binding>.py`` imports from ``typing``: what its events protocols use,
    and ``Any`` when a params or output type is written with it (an unannotated one)."""
    names: set[str] = set()
    if w.closed_events:
        names |= {"Any", "Literal", "Protocol"}
        if len(w.events) > 1:
            names.add("overload")
    if any(re.search(r"\bAny\b", ref.expression) for ref in (w.params, w.output)):
        names.add("Any")
    return ", ".join(sorted(names))


def generated_inputs(app_name: str, workflows: Sequence[WorkflowSpec]) -> str:
    """A fingerprint of everything the generated files depend on (templates included)."""
    specs = [{**w.to_dict(), "line": None} for w in sorted(workflows, key=lambda w: w.name)]
    payload = json.dumps([app_name, specs, _templates_digest()], sort_keys=True)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


@functools.cache
def _templates_digest() -> str:
    """A hash of the codegen templates and of this module."""
    paths = [*sorted((templates_dir() / "codegen").glob("*.j2")), Path(__file__)]
    data = b"".join(path.read_bytes() for path in paths)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def python_string(value: object) -> str:
    """A Python string literal in double quotes (JSON's escapes are valid Python)."""
    return json.dumps(str(value), ensure_ascii=False)
