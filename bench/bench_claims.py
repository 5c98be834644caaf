"""200 owners claiming at once through the real claim form, served by gunicorn on PostgreSQL.

    .venv/bin/python bench/bench_claims.py [--owners 200]

Two rounds, each started by a barrier so the requests arrive together:
- every owner claims their own device by its code: all must succeed (claims/s reported);
- every owner claims the same device: exactly one wins, the rest are told "already claimed" (409).
Any other answer counts as an error. Each owner comes from its own address (X-Forwarded-For
through the trusted-proxy setting), as 200 people would.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, Gunicorn, bench_env, create_database, prepare, print_rows  # noqa: E402

CSRF = "b" * 32  # an unmasked CSRF secret: the cookie and the form field carry the same value

SEED = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from allauth.account.models import EmailAddress
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from devices import codes
from devices.models import ClaimCode, Device, Product
from portal.secrets import encrypt

owners = int(sys.argv[1])
product = Product.objects.create(name="Bench", slug="bench")


def code_for(device):
    raw = codes.generate()
    code = ClaimCode.objects.create(digest=codes.digest(raw), code_encrypted=encrypt(raw))
    device.claim_code = code
    device.save(update_fields=["claim_code"])
    return raw


contested = Device.objects.create(serial="CONTESTED", product=product, factory_key_digest="x")
rows = {"contested": code_for(contested), "owners": []}
for i in range(owners):
    user = get_user_model().objects.create(username=f"owner{i}", email=f"owner{i}@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    device = Device.objects.create(serial=f"OWN-{i:05d}", product=product, factory_key_digest="x")
    rows["owners"].append({"session": session.session_key, "code": code_for(device)})
json.dump(rows, sys.stdout)
"""


def _claim(base_url, owner, code, index, barrier):
    session = requests.Session()
    session.trust_env = False
    session.cookies.set("sessionid", owner["session"])
    session.cookies.set("csrftoken", CSRF)
    barrier.wait()
    started = time.perf_counter()
    response = session.post(
        f"{base_url}/claim/",
        data={"method": "code", "code": code, "csrfmiddlewaretoken": CSRF},
        headers={"X-Forwarded-For": f"10.1.{index // 250}.{index % 250 + 1}", "Referer": f"{base_url}/claim/"},
        allow_redirects=False,
        timeout=120,
    )
    return response.status_code, time.perf_counter() - started


def _round(base_url, owners, codes_):
    barrier = threading.Barrier(len(owners))
    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        started = time.perf_counter()
        futures = [
            pool.submit(_claim, base_url, o, c, i, barrier) for i, (o, c) in enumerate(zip(owners, codes_, strict=True))
        ]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - started
    statuses = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    return statuses, elapsed


def run(*, owners=200, admin_url, redis_url):
    database_url = create_database(admin_url, "bench_claims")
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(
            database_url, REDIS_URL=redis_url, PORTAL_VAR_DIR=var_dir, TRUSTED_PROXY_IP_HEADER="HTTP_X_FORWARDED_FOR"
        )
        prepare(env)
        seeded = json.loads(
            subprocess.run(
                [PYTHON, "-c", SEED, str(owners)], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True
            ).stdout
        )
        with Gunicorn(env, workers=2) as server:
            own, own_seconds = _round(server.url, seeded["owners"], [o["code"] for o in seeded["owners"]])
            race, _ = _round(server.url, seeded["owners"], [seeded["contested"]] * owners)
    own_ok = own.get(302, 0)
    own_errors = owners - own_ok
    race_won, race_lost = race.get(302, 0), race.get(409, 0)
    race_errors = owners - race_won - race_lost
    return [
        {
            "benchmark": f"claim by code, {owners} owners, own devices",
            "measure": "claims/s",
            "value": round(own_ok / own_seconds, 1),
            "errors": own_errors,
            "statuses": own,
            "goal": "0 errors",
            "met": own_errors == 0,
        },
        {
            "benchmark": f"claim by code, {owners} owners, one device",
            "measure": "winners",
            "value": race_won,
            "already_claimed": race_lost,
            "errors": race_errors,
            "statuses": race,
            "goal": "1 winner, 0 other errors",
            "met": race_won == 1 and race_errors == 0,
        },
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owners", type=int, default=200)
    parser.add_argument(
        "--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    print_rows(run(owners=args.owners, admin_url=args.admin_url, redis_url=args.redis_url))


if __name__ == "__main__":
    main()
