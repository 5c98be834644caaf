"""Device protocol throughput against the bare baselines, in one run.

    .venv/bin/python bench/bench_device.py [--seconds 10] [--devices 2000]

gunicorn (2 sync workers) on PostgreSQL with Redis as the cache (rate limits and the relay
debounce are on, as in production). Measures, in this order: the bare constant view, one ORM
UPDATE, a check-in (values of two sensors) and an unclaimed provisioning poll, each device taking
its turn so the per-device limits never bind. The checking-in devices are a fleet in its steady
state: provisioned and online already, as nearly every check-in finds its device.
Goals: check-in ≥ 0.25× and poll ≥ 0.4× the bare view's requests per second.
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

from bench import harness  # noqa: E402
from bench.harness import (  # noqa: E402
    PYTHON,
    ROOT,
    Gunicorn,
    bench_env,
    cpu_ratio,
    create_database,
    manage,
    print_rows,
    take_turns,
    wrk,
)

DATABASE = "bench_device"

# Each wrk thread starts at its own place in the credentials list: otherwise every thread sends the
# same device at the same moment, and check-ins wait on each other's row lock, which no fleet of
# real devices (each checking in once a minute) ever does.
harness.WRK_SCRIPT = harness.WRK_SCRIPT.replace(
    "request = function()",
    """local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end

request = function()""",
).replace("lines[(i % #lines) + 1]", "lines[((i + (offset or 0)) % #lines) + 1]")


SEED = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.contrib.auth import get_user_model
from datetime import timedelta
from django.utils import timezone
from devices.models import Device, DeviceStatus, Product
from devices.services import factory_key_digest, token_digest

count = int(sys.argv[1])
now = timezone.now()
product = Product.objects.create(name="Bench", slug="bench", checkin_interval=60)
owner = get_user_model().objects.create(username="bench", email="bench@example.com")
key_digest = factory_key_digest("bench-factory-key")
Device.objects.bulk_create(
    [Device(serial=f"BENCH-{i:08d}", product=product, factory_key_digest=key_digest) for i in range(count)]
    + [
        Device(serial=f"OWNED-{i:08d}", product=product, factory_key_digest=key_digest, owner=owner,
               token_digest=token_digest(f"bench-token-{i}"), token_used_at=now, status=DeviceStatus.ONLINE,
               last_seen_at=now, last_ip="127.0.0.1", values={"temperature": 21.0, "humidity": 41},
               stale_check_at=now + timedelta(seconds=product.offline_after))
        for i in range(count)
    ]
)
json.dump({"polls": [f"BENCH-{i:08d}" for i in range(count)], "tokens": [f"bench-token-{i}" for i in range(count)]},
          sys.stdout)
"""


def measure_all(*, seconds, devices, connections, admin_url, redis_url):
    """Runs the four measurements in turns; returns {name: combined wrk results with pg_cpu_ms_per_request}."""
    database_url = create_database(admin_url, DATABASE)
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(
            database_url,
            REDIS_URL=redis_url,
            PORTAL_VAR_DIR=var_dir,
            # Limits stay on (their cost is part of the figure) but high enough not to bind.
            DEVICE_RATE_LIMIT_PER_DEVICE="1000000",
            DEVICE_RATE_LIMIT_PER_IP="100000000",
            # The relay task is published (about once a second per worker) to an in-process broker:
            # no worker runs here, and messages left in the shared Redis would be relayed by none.
            CELERY_BROKER_URL="memory://",
        )
        manage(env, "migrate", "-v0")
        seeded = json.loads(
            subprocess.run(
                [PYTHON, "-c", SEED, str(devices)], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True
            ).stdout
        )
        bearer = [f"Bearer {token}" for token in seeded["tokens"]]
        basic = [
            "Basic " + base64.b64encode(f"{serial}:bench-factory-key".encode()).decode() for serial in seeded["polls"]
        ]
        values = json.dumps({"values": {"temperature": 21.5, "humidity": 40}})
        requests = {
            "bare": ("/bench/constant", {}),
            "orm_update": ("/bench/update", {}),
            "checkin": ("/device/v1/checkin", {"method": "POST", "auth_lines": bearer, "body": values}),
            "poll": ("/device/v1/provision", {"method": "POST", "auth_lines": basic, "body": '{"attempt": 3}'}),
        }
        with Gunicorn(env) as server:
            wrk(server, "/bench/constant", seconds=2)  # warm-up: imports, connections
            return take_turns(server, requests, seconds=seconds, connections=connections,
                              database=database_url.rsplit("/", 1)[1])


GOALS = {"checkin": 0.25, "poll": 0.4}
LABELS = {
    "orm_update": "one ORM UPDATE view (baseline)",
    "checkin": "device check-in",
    "poll": "provisioning poll, unclaimed",
}


def run(*, seconds=10, devices=2000, connections=16, admin_url, redis_url):
    """Rows for bench/run.py: each endpoint's req/s as a ratio of the bare view's."""
    results = measure_all(
        seconds=seconds, devices=devices, connections=connections, admin_url=admin_url, redis_url=redis_url
    )
    bare = results["bare"]
    rows = [
        {
            "benchmark": "bare view (device run)",
            "measure": "req/s",
            "value": bare["rps"],
            "cpu_ms": bare["cpu_ms_per_request"],
        }
    ]
    for name, label in LABELS.items():
        r = results[name]
        ratio = round(r["rps"] / bare["rps"], 3)
        row = {
            "benchmark": label,
            "measure": "req/s × bare",
            "value": ratio,
            "rps": r["rps"],
            "cpu_ms": r["cpu_ms_per_request"],
            "db_cpu_ms": r["pg_cpu_ms_per_request"],
            "cpu_ratio": cpu_ratio(bare, r),
            "p99_ms": r["p99_ms"],
            "non2xx": r["non2xx"],
        }
        if name in GOALS:
            row["goal"] = f"≥ {GOALS[name]}×"
            row["met"] = ratio >= GOALS[name]
        rows.append(row)
    return rows


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
    print_rows(
        run(
            seconds=args.seconds,
            devices=args.devices,
            connections=args.connections,
            admin_url=args.admin_url,
            redis_url=args.redis_url,
        )
    )


if __name__ == "__main__":
    main()
