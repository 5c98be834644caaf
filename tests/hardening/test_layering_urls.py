"""A lower app never names a higher app's URLs (DESIGN.md, "Layering": `portal` ← `devices` ← `apps` ←
`claiming`): were `devices` to reverse `claiming:…`, it could not render without the app above it.

Its Python, templates and emails are read as text; a quoted URL name of a higher app's namespace
(`"claiming:claim"`, `'apps:detail'`) fails. A higher app adds to a lower app's page through that
page's panels (`devices/panels.py`) or a context processor, never by being named from below.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "devices": ("devices", "templates/devices", "templates/admin/devices"),
    "apps": ("apps", "templates/apps", "templates/admin/apps"),
}
HIGHER = {"devices": ("apps", "claiming"), "apps": ("claiming",)}
SUFFIXES = {".py", ".html", ".txt"}


def _files(app):
    for top in SOURCES[app]:
        folder = ROOT / top
        if folder.is_dir():
            yield from sorted(path for path in folder.rglob("*") if path.suffix in SUFFIXES and path.is_file())


@pytest.mark.parametrize("app", sorted(SOURCES))
def test_no_url_name_of_a_higher_app(app):
    # A namespace and its API and device-page siblings: `claiming:`, `claiming-api:`, `apps-device:`.
    name = re.compile(r"""["'](?:""" + "|".join(HIGHER[app]) + r""")(?:-[\w-]+)?:[\w-]+""")
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files(app)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if name.search(line)
    ]
    assert hits == [], "\n".join(hits)


def test_the_scan_reads_the_templates_and_the_code():
    scanned = {path.relative_to(ROOT).as_posix() for app in SOURCES for path in _files(app)}
    assert {"devices/device_page.py", "templates/devices/list.html", "templates/apps/detail.html",
            "apps/device_views.py"} <= scanned
