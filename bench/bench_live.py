"""The live pages' cost per open page (portal/live.py) against the bare view, in the same run.

    .venv/bin/python bench/bench_live.py [--seconds 10]

gunicorn (2 sync workers) on PostgreSQL. An owner's device with values, 200 readings and 20
commands, among 100 devices of theirs. Measures, taking turns in short rounds (a fresh ETag each
round: the ETag moves with the minute):
- the bare view;
- the device page's live endpoint answering "nothing changed" (If-None-Match: 304): what every open
  page costs every 2.5 s (goal ≥ 0.5× the bare view's req/s);
- the same endpoint answering the rendered live panels (no If-None-Match: a change);
- the full device page, for scale; and the device list's "nothing changed".
Queries of each answer are counted with Django's test client.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    PYTHON,
    ROOT,
    Gunicorn,
    bench_env,
    combine,
    cpu_ratio,
    create_database,
    measure,
    prepare,
    print_rows,
    wrk,
)

SEED = r"""
import json, os, sys
from datetime import timedelta
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.utils import timezone
from devices.models import Command, Device, DeviceStatus, Product, Reading

owner = get_user_model().objects.create(username="live", email="live@example.com")
product = Product.objects.create(name="Bench", slug="bench", commands=["reboot", "identify"])
now = timezone.now()
devices = Device.objects.bulk_create(
    [Device(serial=f"LIVE-{i:05d}", product=product, owner=owner, factory_key_digest="x",
            owned_since=now - timedelta(days=9), status=DeviceStatus.ONLINE, last_seen_at=now,
            values={"temperature": 21.5, "humidity": 40 + i % 9})
     for i in range(100)]
)
device = devices[0]
Reading.objects.bulk_create(
    [Reading(device=device, recorded_at=now - timedelta(minutes=i), values={"temperature": 20 + i % 7, "humidity": 40})
     for i in range(200)]
)
for i in range(20):
    Command.objects.create(device=device, name="reboot", status="succeeded", expires_at=now + timedelta(hours=1))

session = SessionStore()
session[SESSION_KEY] = str(owner.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = owner.get_session_auth_hash()
session.create()
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
json.dump({"cookie": f"sessionid={session.session_key}", "device": str(device.pk)}, sys.stdout)
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
client.cookies["sessionid"] = seeded["cookie"].split("=", 1)[1]
live = f"/devices/{seeded['device']}/live"
counts = {}
with CaptureQueriesContext(connection) as ctx:
    full = client.get(live)
assert full.status_code == 200, full.status_code
counts["full"] = len(ctx)
with CaptureQueriesContext(connection) as ctx:
    assert client.get(live, HTTP_IF_NONE_MATCH=full["ETag"]).status_code == 304
counts["not_modified"] = len(ctx)
with CaptureQueriesContext(connection) as ctx:
    assert client.get(f"/devices/{seeded['device']}/").status_code == 200
counts["page"] = len(ctx)
json.dump(counts, sys.stdout)
"""


def _etag(server, path, cookie):
    """The ETag the server gives `path` now, checked to answer 304 when sent back."""
    request = urllib.request.Request(server.url + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        tag = response.headers["ETag"]
    again = urllib.request.Request(server.url + path, headers={"Cookie": cookie, "If-None-Match": tag})
    try:
        urllib.request.urlopen(again, timeout=10).close()
    except urllib.error.HTTPError as exc:
        assert exc.code == 304, exc.code
    else:
        raise AssertionError(f"{path}: no 304 for its own ETag")
    return tag


def run(*, seconds=10, admin_url, redis_url):
    database_url = create_database(admin_url, "bench_live")
    database = database_url.rsplit("/", 1)[1]
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(database_url, REDIS_URL=redis_url, PORTAL_VAR_DIR=var_dir)
        prepare(env)
        seed = subprocess.run([PYTHON, "-c", SEED], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True)
        seeded = json.loads(seed.stdout)
        queries = json.loads(
            subprocess.run([PYTHON, "-c", QUERIES, json.dumps(seeded)], cwd=ROOT, env={**env, "ALLOWED_HOSTS": "*"},
                           check=True, stdout=subprocess.PIPE, text=True).stdout
        )
        cookie = seeded["cookie"]
        live, page = f"/devices/{seeded['device']}/live", f"/devices/{seeded['device']}/"
        with Gunicorn(env) as server:
            wrk(server, "/bench/constant", seconds=2)
            rounds = max(1, min(4, seconds // 2))
            per_round = {"seconds": max(1, seconds // rounds), "connections": 16}
            results = {name: [] for name in ("bare", "not_modified", "full", "page", "list_not_modified")}
            for _ in range(rounds):
                # A fresh ETag each round (it moves with the minute); a round is a few seconds.
                tag, list_tag = _etag(server, live, cookie), _etag(server, "/devices/live", cookie)
                session = {"auth_lines": [cookie], "auth_header": "Cookie"}
                turns = {
                    "bare": ("/bench/constant", {}),
                    "not_modified": (live, {**session, "headers": {"If-None-Match": tag}}),
                    "full": (live, session),
                    "page": (page, session),
                    "list_not_modified": ("/devices/live", {**session, "headers": {"If-None-Match": list_tag}}),
                }
                for name, (path, kwargs) in turns.items():
                    results[name].append(measure(server, path, database=database, **kwargs, **per_round))
    results = {name: combine(runs) for name, runs in results.items()}
    bare = results["bare"]

    def row(name, label, **extra):
        result = results[name]
        return {"benchmark": label, "measure": "req/s × bare", "value": round(result["rps"] / bare["rps"], 3),
                "rps": result["rps"], "cpu_ms": result["cpu_ms_per_request"],
                "db_cpu_ms": result["pg_cpu_ms_per_request"], "cpu_ratio": cpu_ratio(bare, result),
                "non2xx": result["non2xx"], **extra}

    not_modified = results["not_modified"]["rps"] / bare["rps"]
    return [
        {"benchmark": "bare view (live run)", "measure": "req/s", "value": bare["rps"],
         "cpu_ms": bare["cpu_ms_per_request"]},
        row("not_modified", "device page live, nothing changed (304)", queries=queries["not_modified"],
            goal="≥ 0.5×", met=not_modified >= 0.5 and results["not_modified"]["non2xx"] == 0),
        row("full", "device page live, changed (fragments)", queries=queries["full"]),
        row("page", "device page, full (for scale)", queries=queries["page"]),
        row("list_not_modified", "device list live, nothing changed (304)"),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL",
                                                         "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    print_rows(run(seconds=args.seconds, admin_url=args.admin_url, redis_url=args.redis_url))


if __name__ == "__main__":
    main()
