"""pyproject.toml as `make install` builds it: pip prepares the package's metadata (in a copy, so
the checkout gets no egg-info) and the build says nothing about a deprecated licence table."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_metadata_builds_without_a_licence_warning(tmp_path):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    report = tmp_path / "report.json"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--dry-run", "--ignore-installed", "--verbose"]
        + ["--report", str(report), "--editable", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    output = build.stdout + build.stderr
    assert "deprecated" not in output.lower()
    assert "project.license" not in output
    metadata = json.loads(report.read_text())["install"][0]["metadata"]
    assert metadata["license_expression"] == "MIT"
