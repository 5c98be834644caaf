"""`make bench`: every benchmark of the portal in one run, a table on stdout and bench/results.json.

    .venv/bin/python -m bench.run [--quick] [--only NAME ...]

Needs PostgreSQL (BENCH_ADMIN_DATABASE_URL, default the local server), Redis (BENCH_REDIS_URL) and
Debian's mosquitto (the MQTT benchmark);
`make bench` starts both if they are down and installs wrk. Each HTTP figure is a ratio against the
bare view served by the same gunicorn in the same run. --quick shrinks every size (the test suite
runs it that way so the benchmark code cannot rot; its figures mean nothing).
"""

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import print_rows  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.json"

# name → (module, full-size arguments, quick arguments)
BENCHMARKS = {
    "device": ("bench.bench_device", {"seconds": 10, "devices": 2000}, {"seconds": 1, "devices": 20}),
    "pages": ("bench.bench_pages", {"seconds": 10, "devices": 10000}, {"seconds": 1, "devices": 60}),
    "device_list": ("bench.bench_device_list", {"seconds": 10, "devices": 10000}, {"seconds": 1, "devices": 60}),
    "charts": ("bench.bench_charts", {"seconds": 10, "minutes": 43_200}, {"seconds": 1, "minutes": 120}),
    "sweep": ("bench.bench_sweep", {"sizes": (10_000, 100_000, 1_000_000)}, {"sizes": (2_000,)}),
    "fanout": ("bench.bench_fanout", {"events": 2000}, {"events": 20}),
    "registration": ("bench.bench_registration", {"rows": 100_000}, {"rows": 200}),
    "claims": ("bench.bench_claims", {"owners": 200}, {"owners": 8}),
    "mqtt": (
        "bench.bench_mqtt",
        {"messages": 20000, "devices": 2000, "seconds": 10, "commands": 50},
        {"messages": 200, "devices": 20, "seconds": 1, "commands": 3},
    ),
    "live": ("bench.bench_live", {"seconds": 10}, {"seconds": 1}),
}


def run(names, *, quick=False, admin_url, redis_url):
    rows, errors = [], {}
    for name in names:
        module_name, full, small = BENCHMARKS[name]
        kwargs = dict(small if quick else full)
        module = importlib.import_module(module_name)
        accepts = inspect.signature(module.run).parameters
        if "admin_url" in accepts:
            kwargs["admin_url"] = admin_url
        if "redis_url" in accepts:
            kwargs["redis_url"] = redis_url
        started = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            result = module.run(**kwargs)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            errors[name] = repr(exc)
            print(f"   {name} failed: {exc!r}", file=sys.stderr)
            continue
        for row in result:
            row.setdefault("suite", name)
        rows.extend(result)
        print(f"   {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code runs, figures mean nothing")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL",
                                                         "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows, errors = run(args.only, quick=args.quick, admin_url=args.admin_url, redis_url=args.redis_url)
    print_rows(rows)
    args.output.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "quick": args.quick,
        "results": rows,
        "errors": errors,
    }, indent=2, default=str))
    if errors:
        print(f"failed: {', '.join(errors)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
