"""Reconciling the ``[[workflows]]`` tables of ``fw.toml`` with the declared workflows (tomlkit).

One table per workflow, sorted by name when added. Codegen owns the derived keys (``name``,
``binding``, ``class_name``, ``module``, ``file``) and updates them in place; every other key
and every comment is kept. A table whose workflow vanished is removed; one whose file matches a
renamed workflow is renamed in place, keeping its keys. Comments directly above a
``[[workflows]]`` header stay above the table that follows them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from typing import Any, cast

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import ParseError
from tomlkit.items import AoT, Comment, Item, Table, Whitespace

from framework.app_root import CONFIG_FILE
from framework.codegen.model import Problem, WorkflowSpec

WORKFLOWS_KEY = "workflows"
_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*workflows[ \t]*\]\]", re.MULTILINE)


def reconcile_manifest(text: str, workflows: Sequence[WorkflowSpec]) -> tuple[str, list[Problem]]:
    """fw.toml's text with its ``[[workflows]]`` tables matching ``workflows``.

    Returns the new text (equal to ``text`` when nothing changes) and the problems that
    prevent reconciling (then the text is returned unchanged).
    """
    try:
        doc = tomlkit.parse(text)
    except ParseError as exc:
        problem = Problem(CONFIG_FILE, exc.line, exc.col, f"not valid TOML: {exc}", "invalid_toml")
        return text, [problem]
    tables = _get(doc, WORKFLOWS_KEY)
    if tables is not None and not isinstance(tables, AoT):
        message = "`workflows` must be written as [[workflows]] tables (fw codegen manages them)"
        return text, [Problem(CONFIG_FILE, _key_line(text), None, message, "invalid_manifest")]
    wanted = {w.name: w.manifest_keys() for w in sorted(workflows, key=lambda w: w.name)}
    if tables is None:
        if wanted:
            doc.append(WORKFLOWS_KEY, _new_array(doc, list(wanted.values())))
        return doc.as_string(), []
    plain: list[dict[str, Any]] = tomllib.loads(text)[WORKFLOWS_KEY]
    problems = _table_problems(text, plain)
    if problems:
        return text, problems
    _reconcile_tables(doc, tables, plain, wanted)
    return doc.as_string(), []


def _reconcile_tables(
    doc: tomlkit.TOMLDocument,
    tables: AoT,
    plain: list[dict[str, Any]],
    wanted: dict[str, dict[str, str]],
) -> None:
    """Edit ``tables`` in place; ``plain`` holds their values (read with the faster tomllib,
    so tables that already match are never touched through tomlkit)."""
    names = [str(table["name"]) for table in plain]
    unmatched = [name for name in wanted if name not in names]
    by_file = {str(t.get("file")): i for i, t in enumerate(plain) if str(t["name"]) not in wanted}
    for name in list(unmatched):
        index = by_file.get(wanted[name]["file"])
        if index is not None:
            names[index] = name
            unmatched.remove(name)
    for index in reversed(range(len(tables))):
        if names[index] not in wanted:
            _remove_table(doc, tables, index)
            del names[index], plain[index]
    for table, values, name in zip(_tables(tables), plain, names, strict=True):
        if any(values.get(key) != value for key, value in wanted[name].items()):
            _update_keys(table, wanted[name])
    for name in unmatched:
        position = next((i for i, existing in enumerate(names) if existing > name), len(names))
        _insert_table(tables, position, wanted[name])
        names.insert(position, name)
    if not names:
        doc.remove(WORKFLOWS_KEY)


def _table_problems(text: str, tables: list[dict[str, Any]]) -> list[Problem]:
    lines = [text.count("\n", 0, m.start()) + 1 for m in _HEADER.finditer(text)]
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        line = lines[index] if index < len(lines) else None
        name = table.get("name")
        if not isinstance(name, str):
            message = "this [[workflows]] table has no string `name`; add one or delete the table"
            problems.append(Problem(CONFIG_FILE, line, None, message, "invalid_manifest"))
        elif name in seen:
            message = f"a second [[workflows]] table for {name!r}; merge it into the first"
            problems.append(Problem(CONFIG_FILE, line, None, message, "invalid_manifest"))
        else:
            seen.add(str(name))
    return problems


def _update_keys(table: Table, keys: dict[str, str]) -> None:
    missing = {key for key in keys if key not in table}
    for key, value in keys.items():
        if key in table and table[key] != value:
            table[key] = value
    previous: str | None = None
    for key, value in keys.items():
        if key in missing:
            _add_key(table, previous, key, value)
        previous = key


def _add_key(table: Table, after: str | None, key: str, value: str) -> None:
    """Add a derived key after the derived key before it, else after the last key."""
    if after is not None and after in table:
        table.value._insert_after(after, key, value)
        return
    trailing = _pop_trailing_trivia(table.value)
    table.append(key, value)
    table.value.body.extend((None, item) for item in trailing)


def _insert_table(tables: AoT, position: int, keys: dict[str, str]) -> None:
    table = _new_table(keys)
    if position > 0:
        previous = _tables(tables)[position - 1].value
        table.value.body.extend((None, item) for item in _pop_trailing_trivia(previous))
        table.trivia.indent = "\n"
    elif len(tables):
        first = _tables(tables)[0]
        table.trivia.indent = first.trivia.indent
        if "\n" not in first.trivia.indent:
            first.trivia.indent = "\n"
    tables.insert(position, table)


def _remove_table(doc: tomlkit.TOMLDocument, tables: AoT, index: int) -> None:
    """Remove a table, keeping the comments below its keys (they head the next table)."""
    trailing = _tidy(_pop_trailing_trivia(_tables(tables)[index].value))
    del tables[index]
    if not any(isinstance(item, Comment) for item in trailing):
        return
    if index > 0:
        previous = _tables(tables)[index - 1].value
        kept = _tidy([*_pop_trailing_trivia(previous), *trailing])
        previous.body.extend((None, item) for item in kept)
    elif len(tables):
        _tables(tables)[0].trivia.indent = "".join(item.as_string() for item in trailing)
    else:
        doc.body.extend((None, item) for item in trailing)


def _new_array(doc: tomlkit.TOMLDocument, rows: list[dict[str, str]]) -> AoT:
    tables = tomlkit.aot()
    for row in rows:
        table = _new_table(row)
        table.trivia.indent = "\n"
        tables.append(table)  # pyright: ignore[reportUnknownMemberType]
    text = doc.as_string()
    if not text.strip() or text.endswith("\n\n"):
        _tables(tables)[0].trivia.indent = ""
    return tables


def _get(container: Any, key: str) -> Any:
    """``container.get(key)`` (tomlkit's containers are not typed precisely)."""
    return container.get(key)


def _tables(tables: AoT) -> list[Table]:
    return cast(list[Table], list(tables))


def _new_table(keys: dict[str, str]) -> Table:
    table = tomlkit.table()
    for key, value in keys.items():
        table.append(key, value)
    return table


def _pop_trailing_trivia(container: Container) -> list[Item]:
    """Take the blank lines and comments after a table's last key out of it."""
    trailing: list[Item] = []
    body = container.body
    while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace | Comment):
        trailing.insert(0, body.pop()[1])
    return trailing


def _tidy(items: list[Item]) -> list[Item]:
    """Moved trivia with each run of blank lines collapsed into one."""
    tidy: list[Item] = []
    for item in items:
        if isinstance(item, Whitespace):
            if not tidy or not isinstance(tidy[-1], Whitespace):
                tidy.append(tomlkit.ws("\n"))
        else:
            tidy.append(item)
    return tidy


def _key_line(text: str) -> int | None:
    match = re.search(r"^[ \t]*(\[[ \t]*workflows[ \t]*\]|workflows[ \t]*=)", text, re.MULTILINE)
    return None if match is None else text.count("\n", 0, match.start()) + 1
