"""Bulk registration: `manage.py register_devices` with a generated CSV on PostgreSQL.

    .venv/bin/python bench/bench_registration.py [--rows 100000]

Half the rows bring their own factory key, claim code and PIN (an OEM's existing labels); the
other half have keys and codes generated. Goal: 100,000 rows in under 60 s.
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, bench_env, create_database, prepare, print_rows  # noqa: E402


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["serial", "factory_key", "claim_code", "pin", "claimable"])
        for i in range(rows):
            if i % 2:
                writer.writerow([f"REG-{i:08d}", "", "", "", ""])
            else:
                writer.writerow([f"REG-{i:08d}", f"key-{i:08d}-{'k' * 24}", f"LBL{i:08d}", f"{i % 10000:04d}", "true"])


def run(*, rows=100000, admin_url):
    database_url = create_database(admin_url, "bench_registration")
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(database_url, PORTAL_VAR_DIR=var_dir)
        prepare(env)
        source, result = Path(var_dir, "devices.csv"), Path(var_dir, "result.csv")
        write_csv(source, rows)
        started = time.perf_counter()
        subprocess.run(
            [PYTHON, "manage.py", "register_devices", str(source), "--product", "bench", "--output", str(result)],
            cwd=ROOT, env=env, check=True, stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        written = len(result.read_text().splitlines()) - 1
    return [
        {"benchmark": f"bulk registration, {rows:,} rows", "measure": "seconds", "value": round(seconds, 1),
         "rows_per_s": round(rows / seconds), "output_rows": written, "goal": "< 60 s",
         "met": seconds < 60 and written == rows},
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100000)
    parser.add_argument("--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL",
                                                         "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    print_rows(run(rows=args.rows, admin_url=args.admin_url))


if __name__ == "__main__":
    main()
