"""Rendering text from the Jinja2 templates of ``templates/`` (a wheel: ``framework/templates``)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from framework.codegen.model import WorkflowSpec
from framework.resources import templates_dir

GENERATED_FILES = ("__init__.py", "entrypoints.py", "workflows.py")


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
    """The files of ``_generated/`` (name -> text) for ``workflows``, sorted by name."""
    ordered = sorted(workflows, key=lambda w: w.name)
    imports = sorted(
        {i.sort_key: i for w in ordered for i in (*w.params.imports, *w.output.imports)}.values(),
        key=lambda i: i.sort_key,
    )
    context = {
        "app_name": app_name,
        "workflows": ordered,
        "imports": [i.statement for i in imports],
    }
    return {name: render_template(f"codegen/{name}.j2", **context) for name in GENERATED_FILES}


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
