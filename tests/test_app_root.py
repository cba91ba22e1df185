"""Finding the app: upwards from the working directory, else the only one below it."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.app_root import apps_below, resolve_app_root
from framework.errors import AppNotFoundError


def make_app(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "fw.toml").write_text("[app]\n")
    return folder


def test_the_only_app_below_is_found_and_several_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AppNotFoundError, match=r"no fw\.toml in"):
        resolve_app_root(None)

    shop = make_app(tmp_path / "shop")
    make_app(tmp_path / ".venv" / "lib")  # hidden folders are not searched
    make_app(tmp_path / "a" / "b" / "too-deep")
    assert resolve_app_root(None) == shop.resolve()

    other = make_app(tmp_path / "services" / "billing")
    assert apps_below(tmp_path) == [other, shop]
    with pytest.raises(AppNotFoundError, match=r"several apps below \(services/billing, shop\)"):
        resolve_app_root(None)

    monkeypatch.chdir(shop / "..")
    assert resolve_app_root(Path("shop")) == shop.resolve()
    monkeypatch.chdir(shop)
    assert resolve_app_root(None) == shop.resolve()  # upwards first
