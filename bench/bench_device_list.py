"""The device list with shared devices (issue 18) against the same list of own devices only, in the
same run.

    .venv/bin/python bench/bench_device_list.py [--seconds 10] [--devices 10000]

gunicorn (2 sync workers) on PostgreSQL. "mixed" owns half of --devices and has the other half shared
with it (by "sharer", as viewer or operator); "own" owns --devices itself (the baseline: the list as it
was before sharing); "small" owns 5 and has 5 shared. Measures, with one connection, the p50 server time
of /devices/ for each (goal: mixed < 100 ms) and the queries of each page (the same for 5 + 5 and for
--devices).
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
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from devices.models import Device, DeviceStatus, Product, Share

count = int(sys.argv[1])
User = get_user_model()
product = Product.objects.create(name="Bench", slug="bench")
users = {name: User.objects.create(username=name, email=f"{name}@example.com")
         for name in ("mixed", "own", "small", "sharer")}
statuses = [DeviceStatus.ONLINE, DeviceStatus.OFFLINE, DeviceStatus.NEVER_SEEN]


def fleet(owner, prefix, n, start=0, step=1):
    # Serials interleave a person's own and shared devices, so every page holds both.
    return Device.objects.bulk_create(
        [Device(serial=f"{prefix}-{start + i * step:08d}", product=product, owner=owner, factory_key_digest="x",
                status=statuses[i % 3], values={"temperature": 20 + i % 10}) for i in range(n)],
        batch_size=5000,
    )


half = count // 2
fleet(users["mixed"], "MIX", count - half, start=0, step=2)
shared = fleet(users["sharer"], "MIX", half, start=1, step=2)
fleet(users["own"], "OWN", count)
fleet(users["small"], "SMALL", 5, start=0, step=2)
shared_small = fleet(users["sharer"], "SMALL", 5, start=1, step=2)
Share.objects.bulk_create(
    [Share(device=d, user=users["mixed"], role="viewer" if i % 2 else "operator") for i, d in enumerate(shared)]
    + [Share(device=d, user=users["small"], role="viewer") for d in shared_small],
    batch_size=5000,
)


def session_cookie(user):
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"sessionid={session.session_key}"


with connection.cursor() as cursor:
    cursor.execute("ANALYZE")  # the planner must know the tables' sizes, as it would in production
json.dump({name: session_cookie(users[name]) for name in ("mixed", "own", "small")}, sys.stdout)
"""

QUERIES = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

cookies = json.loads(sys.argv[1])
client = Client()
counts = {}
for who, cookie in cookies.items():
    client.cookies["sessionid"] = cookie.split("=", 1)[1]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/devices/")
    assert response.status_code == 200
    if who != "own":
        assert b"shared by" in response.content, who
    counts[who] = len(ctx)
json.dump(counts, sys.stdout)
"""


def run(*, seconds=10, devices=10000, admin_url, redis_url):
    database_url = create_database(admin_url, "bench_device_list")
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(database_url, REDIS_URL=redis_url, PORTAL_VAR_DIR=var_dir)
        prepare(env)
        cookies = json.loads(
            subprocess.run([PYTHON, "-c", SEED, str(devices)], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.PIPE, text=True).stdout
        )
        queries = json.loads(
            subprocess.run([PYTHON, "-c", QUERIES, json.dumps(cookies)], cwd=ROOT, env={**env, "ALLOWED_HOSTS": "*"},
                           check=True, stdout=subprocess.PIPE, text=True).stdout
        )
        with Gunicorn(env) as server:
            one = {"seconds": seconds, "connections": 1, "auth_header": "Cookie"}
            wrk(server, "/devices/", auth_lines=[cookies["own"]], seconds=2, connections=1, auth_header="Cookie")
            own = wrk(server, "/devices/", auth_lines=[cookies["own"]], **one)
            mixed = wrk(server, "/devices/", auth_lines=[cookies["mixed"]], **one)
            small = wrk(server, "/devices/", auth_lines=[cookies["small"]], **one)
    half = devices // 2
    return [
        {"benchmark": f"device list, {devices:,} own (baseline)", "measure": "p50 ms (1 connection)",
         "value": own["p50_ms"], "queries": queries["own"], "non2xx": own["non2xx"]},
        {"benchmark": "device list, 5 own + 5 shared", "measure": "p50 ms (1 connection)",
         "value": small["p50_ms"], "queries": queries["small"], "non2xx": small["non2xx"]},
        {"benchmark": f"device list, {devices - half:,} own + {half:,} shared", "measure": "p50 ms (1 connection)",
         "value": mixed["p50_ms"], "queries": queries["mixed"], "× baseline": round(mixed["p50_ms"] / own["p50_ms"], 2),
         "goal": "< 100 ms, same queries as 5 + 5",
         "met": mixed["p50_ms"] < 100 and queries["mixed"] == queries["small"] and mixed["non2xx"] == 0},
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
