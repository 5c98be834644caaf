"""docs/where-things-live.md maps concerns to modules: every path it names must exist, so the map
cannot rot when a module moves."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "docs" / "where-things-live.md"
# A backticked path: has a slash or a known extension (`portal/ratelimit.py`, `.ci/run`, `Makefile`).
PATH = re.compile(r"`([\w.-]+(?:/[\w.-]+)+|[\w.-]+\.(?:py|md|toml)|Makefile)`")


def _table_rows():
    return [line for line in MAP.read_text().splitlines() if line.startswith("| ") and not line.startswith("| Concern")]


def test_every_module_the_map_names_exists():
    named = {path for row in _table_rows() for path in PATH.findall(row.rsplit("|", 2)[1])}
    assert len(named) > 40
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_every_row_names_a_module():
    assert 25 <= len(_table_rows()) <= 40
    assert [row for row in _table_rows() if not PATH.search(row.rsplit("|", 2)[1])] == []


def test_the_readme_links_the_map():
    assert "(docs/where-things-live.md)" in (ROOT / "README.md").read_text()
