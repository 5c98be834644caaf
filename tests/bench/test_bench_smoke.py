"""Every benchmark runs end to end at tiny sizes, so `make bench` cannot rot. No timing is asserted:
these figures mean nothing at these sizes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import BENCHMARKS

from ..conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def postgres_admin_url():
    url = os.getenv("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        service_missing("the benchmarks need PostgreSQL: set DATABASE_URL=postgres://...")
    return url.rsplit("/", 1)[0] + "/postgres"


def test_every_benchmark_runs_and_reports(postgres_admin_url, redis_url, tmp_path):
    # A Redis database of its own: the fan-out benchmark empties the one it is given.
    bench_redis = redis_url.rsplit("/", 1)[0] + "/14"
    output = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(output),
         "--admin-url", postgres_admin_url, "--redis-url", bench_redis],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PORTAL_VAR_DIR": str(tmp_path / "var")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["errors"] == {}
    assert {row["suite"] for row in report["results"]} == set(BENCHMARKS)
    assert all(row["value"] is not None for row in report["results"])
    assert "benchmark" in result.stdout  # the table was printed
