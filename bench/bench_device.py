"""Device protocol throughput against the bare baselines, in one run.

    .venv/bin/python bench/bench_device.py [--seconds 10] [--devices 2000]

gunicorn (2 sync workers) on PostgreSQL with Redis as the cache (rate limits and the relay
debounce are on, as in production). Measures, in this order: the bare constant view, one ORM
UPDATE, a check-in (values of two sensors) and an unclaimed provisioning poll, each device taking
its turn so the per-device limits never bind. Goals: check-in ≥ 0.25× and poll ≥ 0.4× the bare
view's requests per second.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, Gunicorn, bench_env, create_database, manage, wrk  # noqa: E402

SEED = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.contrib.auth import get_user_model
from devices.models import Device, Product
from devices.services import factory_key_digest, token_digest

count = int(sys.argv[1])
product = Product.objects.create(name="Bench", slug="bench", checkin_interval=60)
owner = get_user_model().objects.create(username="bench", email="bench@example.com")
key_digest = factory_key_digest("bench-factory-key")
Device.objects.bulk_create(
    [Device(serial=f"BENCH-{i:08d}", product=product, factory_key_digest=key_digest) for i in range(count)]
    + [
        Device(serial=f"OWNED-{i:08d}", product=product, factory_key_digest=key_digest, owner=owner,
               token_digest=token_digest(f"bench-token-{i}"))
        for i in range(count)
    ]
)
json.dump({"polls": [f"BENCH-{i:08d}" for i in range(count)], "tokens": [f"bench-token-{i}" for i in range(count)]},
          sys.stdout)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()

    database_url = create_database(args.admin_url, "bench_device")
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(
            database_url,
            REDIS_URL=args.redis_url,
            PORTAL_VAR_DIR=var_dir,
            # Limits stay on (their cost is part of the figure) but high enough not to bind.
            DEVICE_RATE_LIMIT_PER_DEVICE="1000000",
            DEVICE_RATE_LIMIT_PER_IP="100000000",
        )
        manage(env, "migrate", "-v0")
        seeded = json.loads(
            subprocess.run(
                [PYTHON, "-c", SEED, str(args.devices)], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True
            ).stdout
        )
        bearer = [f"Bearer {token}" for token in seeded["tokens"]]
        basic = [
            "Basic " + base64.b64encode(f"{serial}:bench-factory-key".encode()).decode() for serial in seeded["polls"]
        ]
        common = {"seconds": args.seconds, "connections": args.connections}
        with Gunicorn(env) as server:
            wrk(server, "/bench/constant", seconds=2)  # warm-up: imports, connections
            results = {
                "bare": wrk(server, "/bench/constant", **common),
                "orm_update": wrk(server, "/bench/update", **common),
                "checkin": wrk(
                    server,
                    "/device/v1/checkin",
                    method="POST",
                    auth_lines=bearer,
                    body=json.dumps({"values": {"temperature": 21.5, "humidity": 40}}),
                    **common,
                ),
                "poll": wrk(
                    server,
                    "/device/v1/provision",
                    method="POST",
                    auth_lines=basic,
                    body=json.dumps({"attempt": 3}),
                    **common,
                ),
            }
    bare = results["bare"]["rps"]
    print(f"{'endpoint':<12}{'req/s':>10}{'× bare':>9}{'cpu ms/req':>12}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, result in results.items():
        print(
            f"{name:<12}{result['rps']:>10.0f}{result['rps'] / bare:>9.2f}{result['cpu_ms_per_request']:>12.3f}"
            f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}{result['non2xx']:>9}"
        )
    goals = {"checkin": 0.25, "poll": 0.4}
    for name, goal in goals.items():
        ratio = results[name]["rps"] / bare
        print(f"{name}: {ratio:.2f}× bare (goal ≥ {goal}×) {'met' if ratio >= goal else 'NOT met'}")


if __name__ == "__main__":
    main()
