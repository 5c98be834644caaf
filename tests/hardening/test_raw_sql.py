"""Raw SQL lives in one module per app (`devices/sql.py`, `apps/sql.py`), and the status, event and
command-status values its statements compare with come from the model choices, never typed again.

The code of `portal/`, `devices/`, `apps/` and `claiming/` (not migrations) is read as Python: a
cursor opened or a statement run (`.cursor(`, `.execute(`, `.executemany(`, `.raw(`, `RawSQL(`,
`.extra(`) outside an app's `sql.py` fails, and so does a choice value written as an SQL string
literal (`'online'`, `'device.offline'`, `'pending'`…) inside one.
"""

import ast
from pathlib import Path

from django.db import models

import apps.models
import devices.models

from .test_access_module import SCANNED, _call_name

ROOT = Path(__file__).resolve().parents[2]
SQL_MODULE = "sql.py"
RAW_CALLS = {"cursor", "execute", "executemany", "raw", "RawSQL", "extra"}


def _sources():
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield path.relative_to(ROOT).as_posix(), path.read_text()


def raw_sql_calls(relative, source):
    """`file:line: call` of every raw-SQL call in `source`, unless it is an app's SQL module."""
    if relative.count("/") == 1 and relative.endswith("/" + SQL_MODULE):
        return []
    return [
        f"{relative}:{node.lineno}: {_call_name(node)}"
        for node in ast.walk(ast.parse(source, filename=relative))
        if isinstance(node, ast.Call) and _call_name(node) in RAW_CALLS
    ]


def choice_values():
    """Every value of every TextChoices of the devices and apps models."""
    values = set()
    for module in (devices.models, apps.models):
        for member in vars(module).values():
            if isinstance(member, type) and issubclass(member, models.TextChoices) and member is not models.TextChoices:
                values.update(member.values)
    return values


def typed_literals(relative, source, values):
    """`file:line: 'value'` of every choice value written as an SQL string literal in `source`
    (docstrings aside: they may quote a statement)."""
    tree = ast.parse(source, filename=relative)
    docs = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [f"{relative}:{node.lineno}: '{value}'" for value in values if f"'{value}'" in node.value]
    return sorted(set(found))


def test_raw_sql_is_only_in_each_apps_sql_module():
    calls = [call for relative, source in _sources() for call in raw_sql_calls(relative, source)]
    assert calls == [], "Raw SQL outside an app's sql.py; move it there:\n" + "\n".join(calls)


def test_the_sql_modules_take_status_and_event_values_from_the_choices():
    values = choice_values()
    modules = [(relative, source) for relative, source in _sources() if relative.endswith("/" + SQL_MODULE)]
    assert {relative for relative, _ in modules} >= {"devices/sql.py", "apps/sql.py"}
    typed = [hit for relative, source in modules for hit in typed_literals(relative, source, values)]
    assert typed == [], "A choice value typed into SQL; interpolate it from the choices (sql.literal):\n" + "\n".join(
        typed
    )


def test_the_scans_see_what_they_must_refuse():
    assert {"online", "offline", "device.offline", "pending", "delivered", "succeeded"} <= choice_values()
    source = (
        "def f(connection):\n"
        "    \"\"\"Sets status = 'offline'.\"\"\"\n"
        "    with connection.cursor() as cursor:\n"
        "        cursor.execute(f\"UPDATE {t} SET status = 'offline' WHERE type = 'device.offline'\")\n"
    )
    assert raw_sql_calls("devices/stale.py", source) == ["devices/stale.py:3: cursor", "devices/stale.py:4: execute"]
    assert raw_sql_calls("devices/sql.py", source) == []
    assert raw_sql_calls("devices/protocol/sql.py", source) != []  # one module per app, at its top
    assert typed_literals("devices/sql.py", source, choice_values()) == [
        "devices/sql.py:4: 'device.offline'",
        "devices/sql.py:4: 'offline'",
    ]
