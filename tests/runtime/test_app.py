"""The App: settings from fw.toml, workflow code loaded lazily and reloaded on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework import ConfigError
from framework.runtime.app import App
from tests.apps import write_app

ONE = """
from framework import workflow, WorkflowContext

@workflow
async def one(ctx: WorkflowContext[None]) -> int:
    return 1
"""


def test_reload_reads_code_and_settings_again(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE}, '[defaults.retries]\nlimit = 2\n')
    app = App(root)
    assert app.default_retries("one").limit == 2
    first = app.definition("one")

    (root / "fw.toml").write_text((root / "fw.toml").read_text().replace("limit = 2", "limit = 7"))
    app.reload()

    assert app.default_retries("one").limit == 7
    assert app.definition("one") is not first


def test_workflow_retries_in_fw_toml_override_the_defaults(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE}, '[defaults.retries]\nlimit = 2\ndelay = "3 s"\n')
    toml = root / "fw.toml"
    toml.write_text(toml.read_text().replace('name = "one"', 'name = "one"\nretries = { limit = 9 }'))

    policy = App(root).default_retries("one")

    assert (policy.limit, policy.delay) == (9, 3.0)


def test_bad_settings_name_the_file_and_key(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE}, '[runtime]\nlease = "soon"\n')

    with pytest.raises(ConfigError, match=r"fw.toml: runtime.lease: .*'soon' is not a duration"):
        App(root)


def test_unknown_keys_are_named_in_a_warning(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE}, '[runtime]\nleese = "1 s"\n[extras]\nx = 1\n')

    with pytest.warns(UserWarning, match=r"fw ignores these keys: \[extras\], runtime.leese"):
        App(root)


def test_an_app_without_generated_code_says_to_run_codegen(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE})
    for path in (root / "_generated").iterdir():
        path.unlink()
    (root / "_generated").rmdir()

    with pytest.raises(ConfigError, match="run `fw codegen"):
        App(root).handle("one")
