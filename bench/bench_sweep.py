"""The stale sweep on PostgreSQL at 10k, 100k and 1M devices, of which 1 % are stale.

    .venv/bin/python bench/bench_sweep.py [--sizes 10000,100000,1000000] [--database bench_sweep]
    (or `make bench`, which runs it with the others through bench.run)

The database is dropped and created on the server of --admin-url, migrated, and filled with raw
`INSERT … SELECT generate_series` (seconds for a million rows). Every device is online; 1 % last
checked in an hour ago (past the product's 10-minute threshold), the rest 30 s ago; half are
owned, spread over --owners owners with status emails on (the locmem email backend), so the
timed sweep includes the grouped emails. For each size it times:
- the sweep (`devices_mark_stale`: mark offline, record the events, mail the owners);
- the marking alone (the same devices made stale again: their owners heard within the hour, so
  no email goes);
- an empty sweep (nothing stale), the median and the worst of several runs.
Goals: the sweep under 5 s at 1M, and an empty sweep under 50 ms.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, bench_env, create_database, manage, print_rows  # noqa: E402

GOAL_SWEEP_SECONDS = 5.0
GOAL_EMPTY_MS = 50.0
EMPTY_RUNS = 7
OFFLINE_AFTER = 600  # the product's threshold: 10 minutes
WARM_UP_SIZE = 1000


def device_columns(product_id, owner_first_id, owners, stale_every):
    """Column → SQL expression of generated row `i`, checked against the model so a new column
    fails loudly instead of being silently left out."""
    from devices.models import Device

    columns = {
        "id": "gen_random_uuid()",
        "serial": "'BENCH-' || lpad(i::text, 9, '0')",
        "product_id": str(int(product_id)),
        "name": "''",
        "factory_key_digest": "''",
        "claim_code_id": "NULL",
        # Half the fleet is owned, alternating in runs of `stale_every` devices, so half the stale
        # devices are owned too, spread over every owner.
        "owner_id": f"CASE WHEN (i / {int(stale_every)}) %% 2 = 0 "
        f"THEN {int(owner_first_id)} + (i / {int(stale_every)} / 2) %% {int(owners)} END",
        "owned_since": f"CASE WHEN (i / {int(stale_every)}) %% 2 = 0 THEN now() END",
        "preclaim_email": "''",
        "claimable": "false",
        "pin_digest": "''",
        "status": "'online'",
        "last_seen_at": f"now() - CASE WHEN i %% {int(stale_every)} = 0 THEN interval '1 hour' "
        "ELSE interval '30 seconds' END",
        # As their check-ins left it: due when they would turn stale under the product's threshold.
        "stale_check_at": f"now() - CASE WHEN i %% {int(stale_every)} = 0 THEN interval '1 hour' "
        f"ELSE interval '30 seconds' END + {int(OFFLINE_AFTER)} * interval '1 second'",
        "last_ip": "NULL",
        "values": "'{}'::jsonb",
        "token_digest": "NULL",
        "token_issued_at": "NULL",
        "token_issued_ip": "NULL",
        "token_used_at": "NULL",
        "certificate_pem": "''",
        "certificate_serial": "''",
        "created_at": "now()",
    }
    expected = {field.column for field in Device._meta.concrete_fields}
    if set(columns) != expected:
        raise SystemExit(f"bench_sweep: device columns changed: {sorted(expected ^ set(columns))}")
    return columns


def load(cursor, size, *, product_id, owner_first_id, owners, stale_every):
    cursor.execute("TRUNCATE devices_device CASCADE")
    columns = device_columns(product_id, owner_first_id, owners, stale_every)
    names = ", ".join(f'"{name}"' for name in columns)
    cursor.execute(
        f"INSERT INTO devices_device ({names}) SELECT {', '.join(columns.values())} "  # noqa: S608
        "FROM generate_series(1, %s) AS i",
        [size],
    )
    cursor.execute("VACUUM ANALYZE devices_device")
    # Flush what the load wrote, so the timings that follow do not pay for it.
    cursor.execute("CHECKPOINT")


def run(
    *, sizes=(10_000, 100_000, 1_000_000), admin_url, redis_url, stale_percent=1.0, owners=1000, database="bench_sweep"
):
    """Runs the measurements in a child process (Django set up for the bench database, apart
    from whatever the caller runs) and returns the runner's rows."""
    database_url = create_database(admin_url, database)
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(
            database_url,
            PORTAL_VAR_DIR=var_dir,
            DJANGO_SETTINGS_MODULE="portal.settings",
            # The lock and the heartbeat in Redis, as in production; tasks the sweep publishes
            # (the outbox relay) stay in the process.
            REDIS_URL=redis_url,
            CELERY_BROKER_URL="memory://",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        )
        manage(env, "migrate", "-v0")
        child = subprocess.run(
            [PYTHON, __file__, "--measure", ",".join(map(str, sizes)), str(stale_percent), str(owners)],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    rows = []
    for size, stale, load_seconds, sweep_seconds, emails, mark_seconds, empty_ms in measured:
        name = f"stale sweep, {size:,} devices, {stale:,} stale"
        at_goal_size = size >= 1_000_000
        empty = statistics.median(empty_ms)
        rows += [
            {
                "benchmark": name,
                "measure": "sweep s",
                "value": round(sweep_seconds, 3),
                "emails": emails,
                "load_s": round(load_seconds, 1),
                **(
                    {"goal": f"< {GOAL_SWEEP_SECONDS:g} s", "met": sweep_seconds < GOAL_SWEEP_SECONDS}
                    if at_goal_size
                    else {}
                ),
            },
            {"benchmark": name, "measure": "mark only s", "value": round(mark_seconds, 3)},
            {
                "benchmark": name,
                "measure": "empty sweep ms",
                "value": round(empty, 2),
                "max_ms": round(max(empty_ms), 2),
                **({"goal": f"< {GOAL_EMPTY_MS:g} ms", "met": empty < GOAL_EMPTY_MS} if at_goal_size else {}),
            },
        ]
    return rows


def measure(sizes, stale_percent, owners):
    """The child process: loads each size, times the sweeps; returns one tuple per size."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core import mail
    from django.core.cache import cache
    from django.db import connection
    from django.utils import timezone

    from devices.models import Device, DeviceStatus, Product
    from devices.stale import devices_mark_stale

    stale_every = round(100 / stale_percent)
    product = Product.objects.create(name="Bench", slug="bench", offline_after=OFFLINE_AFTER)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
            "is_active, date_joined) SELECT '', false, 'owner' || i, '', '', 'owner' || i || '@example.com', "
            "false, true, now() FROM generate_series(1, %s) AS i",
            [owners],
        )
    owner_first_id = get_user_model().objects.order_by("pk").values_list("pk", flat=True).first()

    def one_size(size):
        cache.clear()
        started = time.perf_counter()
        with connection.cursor() as cursor:
            load(
                cursor,
                size,
                product_id=product.pk,
                owner_first_id=owner_first_id,
                owners=owners,
                stale_every=stale_every,
            )
        load_seconds = time.perf_counter() - started
        stale = size // stale_every

        mail.outbox = []
        started = time.perf_counter()
        marked = devices_mark_stale()
        sweep_seconds = time.perf_counter() - started
        emails = len(mail.outbox)
        assert marked == stale, (marked, stale)

        # The same devices stale again: their owners heard within the hour, so no email goes and
        # this times the marking and the events (the notifier only holds the changes back).
        Device.objects.filter(status=DeviceStatus.OFFLINE).update(status=DeviceStatus.ONLINE)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE devices_device")
        started = time.perf_counter()
        assert devices_mark_stale() == stale
        mark_seconds = time.perf_counter() - started

        # The steady state: every device fresh, no email held back.
        now = timezone.now()
        Device.objects.filter(status=DeviceStatus.OFFLINE).update(
            status=DeviceStatus.ONLINE, last_seen_at=now, stale_check_at=now + timedelta(seconds=OFFLINE_AFTER)
        )
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE devices_notificationstate")
            cursor.execute("ANALYZE devices_device")
        empty_ms = []
        for _ in range(EMPTY_RUNS):
            started = time.perf_counter()
            assert devices_mark_stale() == 0
            empty_ms.append((time.perf_counter() - started) * 1000)
        print(f"… {size} devices done", file=sys.stderr, flush=True)
        return size, stale, load_seconds, sweep_seconds, emails, mark_seconds, empty_ms

    one_size(WARM_UP_SIZE)  # imports, templates, connections: a worker is warm; not reported
    return [one_size(size) for size in sizes]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--stale-percent", type=float, default=1.0)
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument(
        "--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--database", default="bench_sweep", help="dropped and created for the run")
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        sizes, stale_percent, owners = args.measure
        result = measure([int(size) for size in sizes.split(",")], float(stale_percent), int(owners))
        print(json.dumps(result))
        return
    print_rows(
        run(
            sizes=[int(size) for size in args.sizes.split(",")],
            admin_url=args.admin_url,
            redis_url=args.redis_url,
            stale_percent=args.stale_percent,
            owners=args.owners,
            database=args.database,
        )
    )


if __name__ == "__main__":
    main()
