"""Pages and API lists that must not grow with the data, against the bare view in the same run.

    .venv/bin/python bench/bench_pages.py [--seconds 10] [--devices 10000]

gunicorn (2 sync workers) on PostgreSQL. One owner has --devices devices, another has 10; an
application is linked to all of the first owner's devices. Measures:
- the owner's device list (/devices/) for both owners: queries per page (same for 10 and 10,000)
  and p50 server time with one connection (goal < 100 ms);
- the integrator's GET /api/v1/devices?limit=100: req/s against the bare view (goal ≥ 0.3×), the two
  taking turns in short rounds; web and database CPU per request, and the bare view's CPU as a
  fraction of it (cpu_ratio, steadier than req/s on shared cores); queries per page at 10 and 100
  rows (flat).
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

from bench.harness import (  # noqa: E402
    PYTHON,
    ROOT,
    Gunicorn,
    bench_env,
    cpu_ratio,
    create_database,
    prepare,
    print_rows,
    take_turns,
    wrk,
)

SEED = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from apps.models import AppLink
from apps.services.applications import application_create
from devices.models import Device, DeviceStatus, Product

count = int(sys.argv[1])
User = get_user_model()
product = Product.objects.create(name="Bench", slug="bench")
big = User.objects.create(username="big", email="big@example.com")
small = User.objects.create(username="small", email="small@example.com")
statuses = [DeviceStatus.ONLINE, DeviceStatus.OFFLINE, DeviceStatus.NEVER_SEEN]
devices = Device.objects.bulk_create(
    [Device(serial=f"BIG-{i:08d}", product=product, owner=big, status=statuses[i % 3], factory_key_digest="x",
            values={"temperature": 20 + i % 10}) for i in range(count)]
    + [Device(serial=f"SMALL-{i:04d}", product=product, owner=small, factory_key_digest="x") for i in range(10)],
    batch_size=5000,
)
application, secret = application_create(owner=big, name="Bench app")
AppLink.objects.bulk_create([AppLink(application=application, device=d) for d in devices[:count]], batch_size=5000)


def session_cookie(user):
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"sessionid={session.session_key}"


with connection.cursor() as cursor:
    cursor.execute("ANALYZE")  # the planner must know the tables' sizes, as it would in production
json.dump({"big": session_cookie(big), "small": session_cookie(small),
           "app_id": application.app_id, "secret": secret}, sys.stdout)
"""

QUERIES = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

seeded = json.loads(sys.argv[1])
client = Client()
counts = {}
for who in ("small", "big"):
    client.cookies["sessionid"] = seeded[who].split("=", 1)[1]
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/devices/").status_code == 200
    counts[f"list_{who}"] = len(ctx)
auth = seeded["basic"]
for limit in (10, 100):
    with CaptureQueriesContext(connection) as ctx:
        assert Client().get(f"/api/v1/devices?limit={limit}", HTTP_AUTHORIZATION=auth).status_code == 200
    counts[f"api_{limit}"] = len(ctx)
json.dump(counts, sys.stdout)
"""


def run(*, seconds=10, devices=10000, admin_url, redis_url):
    database_url = create_database(admin_url, "bench_pages")
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(database_url, REDIS_URL=redis_url, PORTAL_VAR_DIR=var_dir, API_THROTTLE_RATE="100000000/minute")
        prepare(env)
        seeded = json.loads(
            subprocess.run([PYTHON, "-c", SEED, str(devices)], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.PIPE, text=True).stdout
        )
        seeded["basic"] = "Basic " + base64.b64encode(f"{seeded['app_id']}:{seeded['secret']}".encode()).decode()
        queries = json.loads(
            subprocess.run([PYTHON, "-c", QUERIES, json.dumps(seeded)], cwd=ROOT, env={**env, "ALLOWED_HOSTS": "*"},
                           check=True, stdout=subprocess.PIPE, text=True).stdout
        )
        with Gunicorn(env) as server:
            wrk(server, "/bench/constant", seconds=2)
            one = {"seconds": seconds, "connections": 1, "auth_header": "Cookie"}
            list_small = wrk(server, "/devices/", auth_lines=[seeded["small"]], **one)
            list_big = wrk(server, "/devices/", auth_lines=[seeded["big"]], **one)
            turns = take_turns(server, {
                "bare": ("/bench/constant", {}),
                "api": ("/api/v1/devices?limit=100", {"auth_lines": [seeded["basic"]]}),
            }, seconds=seconds, database=database_url.rsplit("/", 1)[1])
    bare, api = turns["bare"], turns["api"]
    return [
        {"benchmark": "bare view", "measure": "req/s", "value": bare["rps"], "cpu_ms": bare["cpu_ms_per_request"]},
        {"benchmark": "owner device list, 10 devices", "measure": "p50 ms (1 connection)",
         "value": list_small["p50_ms"], "queries": queries["list_small"]},
        {"benchmark": f"owner device list, {devices:,} devices", "measure": "p50 ms (1 connection)",
         "value": list_big["p50_ms"], "queries": queries["list_big"], "goal": "< 100 ms, same queries as 10",
         "met": list_big["p50_ms"] < 100 and queries["list_big"] == queries["list_small"]},
        {"benchmark": "integrator GET /api/v1/devices, 100 a page", "measure": "req/s × bare",
         "value": round(api["rps"] / bare["rps"], 3), "rps": api["rps"], "cpu_ms": api["cpu_ms_per_request"],
         "db_cpu_ms": api["pg_cpu_ms_per_request"], "cpu_ratio": cpu_ratio(bare, api), "non2xx": api["non2xx"],
         "queries": f"{queries['api_10']} at 10 rows, {queries['api_100']} at 100", "goal": "≥ 0.3×, flat queries",
         "met": api["rps"] / bare["rps"] >= 0.3 and queries["api_10"] == queries["api_100"]},
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL",
                                                         "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    print_rows(run(seconds=args.seconds, devices=args.devices, admin_url=args.admin_url, redis_url=args.redis_url))


if __name__ == "__main__":
    main()
