"""The device page's 30-day charts (issue 19) against the bare view, in the same run.

    .venv/bin/python bench/bench_charts.py [--seconds 10] [--minutes 43200]

gunicorn (2 sync workers) on PostgreSQL. One owned device of a product declaring two number fields
(temperature, humidity) reported every minute for 30 days (--minutes readings, 43,200 by default).
Measures, with one connection, the p50 server time of its device page with the 30-day range
(`/devices/<id>/?range=30d`: both charts, each range's readings bucketed in one statement; goal
< 100 ms) and of the 1-hour range, the bare view's p50, and the page's queries for each range (the same).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, Gunicorn, bench_env, create_database, prepare, print_rows, wrk  # noqa: E402

SEED = r"""
import json, math, os, sys
from datetime import timedelta
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.utils import timezone
from devices.models import Device, DeviceStatus, Product, ProductField, Reading

minutes = int(sys.argv[1])
now = timezone.now()
owner = get_user_model().objects.create(username="owner", email="owner@example.com")
product = Product.objects.create(name="Bench", slug="bench")
ProductField.objects.create(product=product, key="temperature", label="Temperature", unit="°C", primary=True)
ProductField.objects.create(product=product, key="humidity", label="Humidity", unit="%", decimals=0, order=1)
device = Device.objects.create(
    serial="BENCH-CHARTS", product=product, owner=owner, owned_since=now - timedelta(days=60),
    factory_key_digest="x", status=DeviceStatus.ONLINE, last_seen_at=now,
    values={"temperature": 21.0, "humidity": 50, "uptime": 1},
)
Reading.objects.bulk_create(
    [Reading(device=device, recorded_at=now - timedelta(minutes=m),
             values={"temperature": round(20 + 2 * math.sin(m / 240), 2), "humidity": round(50 + math.cos(m / 500), 1),
                     "uptime": m})
     for m in range(minutes)],
    batch_size=5000,
)
session = SessionStore()
session[SESSION_KEY] = str(owner.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = owner.get_session_auth_hash()
session.create()
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")  # the planner must know the tables' sizes, as it would in production
json.dump({"cookie": f"sessionid={session.session_key}", "path": f"/devices/{device.pk}/"}, sys.stdout)
"""

QUERIES = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

seed = json.loads(sys.argv[1])
client = Client()
client.cookies["sessionid"] = seed["cookie"].split("=", 1)[1]
counts = {}
for range_key in ("1h", "30d"):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(seed["path"] + "?range=" + range_key)
    assert response.status_code == 200 and b"chart-temperature-t" in response.content
    counts[range_key] = len(ctx)
json.dump(counts, sys.stdout)
"""


def run(*, seconds=10, minutes=43_200, admin_url, redis_url):
    database_url = create_database(admin_url, "bench_charts")
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(database_url, REDIS_URL=redis_url, PORTAL_VAR_DIR=var_dir)
        prepare(env)
        seed = json.loads(
            subprocess.run([PYTHON, "-c", SEED, str(minutes)], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.PIPE, text=True).stdout
        )
        queries = json.loads(
            subprocess.run([PYTHON, "-c", QUERIES, json.dumps(seed)], cwd=ROOT, env={**env, "ALLOWED_HOSTS": "*"},
                           check=True, stdout=subprocess.PIPE, text=True).stdout
        )
        with Gunicorn(env) as server:
            one = {"seconds": seconds, "connections": 1, "auth_header": "Cookie", "auth_lines": [seed["cookie"]]}
            wrk(server, seed["path"] + "?range=30d", **{**one, "seconds": 2})  # warm up
            bare = wrk(server, "/bench/constant", **one)
            hour = wrk(server, seed["path"] + "?range=1h", **one)
            month = wrk(server, seed["path"] + "?range=30d", **one)
    return [
        {"benchmark": "bare view", "measure": "p50 ms (1 connection)", "value": bare["p50_ms"]},
        {"benchmark": "device page, 1-hour charts", "measure": "p50 ms (1 connection)", "value": hour["p50_ms"],
         "queries": queries["1h"], "non2xx": hour["non2xx"]},
        {"benchmark": f"device page, 30-day charts of {minutes:,} readings", "measure": "p50 ms (1 connection)",
         "value": month["p50_ms"], "queries": queries["30d"], "× 1 hour": round(month["p50_ms"] / hour["p50_ms"], 2),
         "goal": "< 100 ms, the same queries as 1 hour",
         "met": month["p50_ms"] < 100 and queries["30d"] == queries["1h"] and month["non2xx"] == 0},
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--minutes", type=int, default=43_200)
    parser.add_argument("--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL",
                                                         "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    print_rows(run(seconds=args.seconds, minutes=args.minutes, admin_url=args.admin_url, redis_url=args.redis_url))


if __name__ == "__main__":
    main()
