"""The App: settings from fw.toml, workflow code loaded lazily and reloaded on demand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from framework import ConfigError
from framework.runtime.app import App
from framework.runtime.config import find_unknown_keys
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

    with pytest.raises(ConfigError, match=r"fw.toml:4: runtime.lease: .*'soon' is not a duration"):
        App(root)


@pytest.mark.parametrize("key", ["lease", "poll_interval", "prune_interval"])
def test_intervals_of_zero_are_refused_not_a_busy_loop(tmp_path: Path, key: str) -> None:
    """Before, 0 made the worker heartbeat, poll or prune in a loop that never waited (a
    second of CPU per second), and a lease of 0 let every worker take every other's
    instances."""
    root = write_app(tmp_path, {"one_workflow.py": ONE}, f'[runtime]\n{key} = "0 s"\n')

    with pytest.raises(ConfigError, match=rf"fw.toml:4: runtime.{key}: Input should be greater"):
        App(root)


def with_workflow_keys(root: Path, keys: str) -> Path:
    """Add ``keys`` to the [[workflows]] table of workflow ``one`` in fw.toml."""
    toml = root / "fw.toml"
    toml.write_text(toml.read_text().replace('name = "one"', f'name = "one"\n{keys}'))
    return root


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        ('retries = { limit = "many" }', r"workflows\[one\].retries.limit: .*valid integer"),
        ('retries = { limt = 3 }', r"workflows\[one\].retries.limt: Extra inputs"),
        ('retries = { delay = "soon" }', r"workflows\[one\].retries.delay: .*not a duration"),
        ("retries = 3", r"workflows\[one\].retries: .*valid dictionary"),
        ('retention = "soon"', r"workflows\[one\].retention: .*not a duration"),
        ('error_retention = "-1 s"', r"workflows\[one\].error_retention: "),
    ],
)
def test_a_bad_workflow_setting_is_refused_at_load_naming_its_line_and_key(
    tmp_path: Path, keys: str, error: str
) -> None:
    root = with_workflow_keys(write_app(tmp_path, {"one_workflow.py": ONE}), keys)
    line = next(
        n for n, text in enumerate((root / "fw.toml").read_text().splitlines(), 1) if text == keys
    )

    with pytest.raises(ConfigError, match=rf"fw.toml:{line}: {error}"):
        App(root)


def test_unknown_workflow_keys_are_named_with_their_line_in_a_warning(tmp_path: Path) -> None:
    root = with_workflow_keys(write_app(tmp_path, {"one_workflow.py": ONE}), "colour = 'red'")

    with pytest.warns(UserWarning, match=r"fw ignores these keys: workflows\[one\].colour \(.*fw.toml:\d+\)"):
        App(root)


def test_unknown_keys_are_named_with_close_matches_in_a_warning_at_the_callers_line(
    tmp_path: Path,
) -> None:
    """Before, the warning pointed into fw (``runtime/app.py:50``) and suggested nothing."""
    settings = '[runtime]\nconcurency = 5\n[extras]\nx = 1\n[defaults.retries]\nlimt = 2\n[check]\npaths = ["../web"]\n'
    root = write_app(tmp_path, {"one_workflow.py": ONE}, settings)
    toml = root / "fw.toml"

    with pytest.warns(UserWarning) as caught:
        App(root)

    (warning,) = caught
    assert warning.filename == __file__, "the line that made the App, not one of fw's"
    assert str(warning.message) == (
        f"{toml}: fw ignores these keys: runtime.concurency ({toml}:4; did you mean "
        f"'concurrency'?), [extras] ({toml}:5), defaults.retries.limt ({toml}:8; did you mean "
        "'limit'?)"
    )
    assert [k.message for k in find_unknown_keys(root)] == [
        "unknown key runtime.concurency; did you mean 'concurrency'?",
        "unknown table [extras]",
        "unknown key defaults.retries.limt; did you mean 'limit'?",
    ]


def test_an_app_without_generated_code_says_to_run_codegen(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE})
    shutil.rmtree(root / "_generated")

    with pytest.raises(ConfigError, match="run `fw codegen"):
        App(root).handle("one")


def test_the_code_version_follows_the_file_after_reload_or_the_recheck_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_app(tmp_path, {"one_workflow.py": ONE})
    app = App(root)
    first = app.version_of("one")
    assert app.version_of("one") == first and len(first) == 12

    source = root / "workflows" / "one_workflow.py"
    source.write_text(ONE.replace("return 1", "return 2"))
    app.reload()
    second = app.version_of("one")
    assert second != first

    monkeypatch.setattr("framework.runtime.app.VERSION_RECHECK", 0.0)
    source.write_text(ONE.replace("return 1", "return 3"))
    assert app.version_of("one") not in (first, second)
