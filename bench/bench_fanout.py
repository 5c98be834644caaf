"""Webhook fan-out through the real path against a plain requests loop, in one run.

    .venv/bin/python bench/bench_fanout.py [--events 2000] [--rounds 3] [--pool prefork --concurrency <cores>]

The real path: 2,000 DeviceEvents recorded in one transaction (as check-ins would), the outbox
relay on a Celery worker fanning them out into Delivery rows, and the worker's sends (signed, through
the SSRF guard, one connection pool per process) to one local receiver, until every row is
`succeeded`. The baseline: one `requests.Session` posting the same bodies to the same receiver in
a loop. The figure is the real path's rate over the baseline's (goal ≥ 0.5×).

The database is a fresh one, `bench_fanout`, on the server of --admin-url.
"""

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, bench_env, create_database, free_port, manage, print_rows  # noqa: E402

# A keep-alive HTTP/1.1 receiver answering 204 at once, in its own process so it never competes
# with the measured code for the GIL.
RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def wait_port(port, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def process(args, env, *, ready=None, log=None):
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        if ready:
            ready()
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def seed(callback_url):
    from django.contrib.auth import get_user_model

    from apps.models import AppLink
    from apps.services.applications import application_create
    from devices.models import Device, Product

    owner = get_user_model().objects.create(username="bench", email="bench@example.com")
    product = Product.objects.create(name="Bench", slug="bench")
    device = Device.objects.create(serial="FANOUT-0001", product=product, owner=owner, factory_key_digest="x")
    application, _ = application_create(owner=owner, name="Bench receiver", callback_url=callback_url)
    AppLink.objects.create(application=application, device=device)
    return device, application


def record_events(device, count):
    from django.db import transaction

    from devices.models import DeviceEvent, DeviceEventType
    from devices.outbox import events_record

    with transaction.atomic():
        events_record(
            [
                DeviceEvent(device=device, type=DeviceEventType.DATA, data={"temperature": 20 + i % 10})
                for i in range(count)
            ]
        )


def wait_delivered(count, seconds):
    from apps.models import Delivery, DeliveryStatus

    deadline = time.monotonic() + seconds
    done = 0
    while time.monotonic() < deadline:
        done = Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()
        if done >= count:
            return done
        time.sleep(0.02)
    return done


def phase_times(started_at, *, skip):
    """Seconds from the start to the first and last fanned-out row and to the last success."""
    from django.db.models import Max, Min

    from apps.models import Delivery

    ids = Delivery.objects.order_by("pk").values_list("pk", flat=True)[skip:]
    times = Delivery.objects.filter(pk__in=list(ids)).aggregate(
        first_row=Min("created_at"), last_row=Max("created_at"), last_sent=Max("delivered_at")
    )
    return {name: round(moment.timestamp() - started_at, 2) for name, moment in times.items() if moment}


def baseline(url, requests_to_send):
    import requests

    session = requests.Session()
    started = time.perf_counter()
    for body, headers in requests_to_send:
        response = session.post(url, data=body, headers=headers, timeout=15, allow_redirects=False)
        response.raise_for_status()
    return time.perf_counter() - started


def run(*, events=2000, rounds=3, pool="prefork", concurrency=None, admin_url, redis_url):
    """The real path against the plain loop, `rounds` times; returns the benchmark rows."""
    database_url = create_database(admin_url, "bench_fanout")
    receiver_port = free_port()
    callback_url = f"http://127.0.0.1:{receiver_port}/hook"
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(
            database_url,
            REDIS_URL=redis_url,
            CELERY_BROKER_URL=redis_url,
            PORTAL_VAR_DIR=var_dir,
            WEBHOOK_ALLOW_PRIVATE_TARGETS="True",
        )
        manage(env, "migrate", "-v0")
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
        import django

        django.setup()
        from redis import Redis

        Redis.from_url(redis_url).flushdb()  # no stale tasks or relay debounce keys from earlier runs
        device, application = seed(callback_url)

        worker_log = Path(var_dir, "worker.log")
        worker_args = [PYTHON, "-m", "celery", "-A", "portal", "worker", "--pool", pool]
        worker_args += ["--concurrency", str(concurrency or os.cpu_count() or 2), "--without-gossip"]
        worker_args += ["--without-mingle", "--without-heartbeat", "-l", "warning"]
        with (
            process([PYTHON, "-c", RECEIVER, str(receiver_port)], env, ready=lambda: wait_port(receiver_port)),
            open(worker_log, "wb") as log,
            process(worker_args, env, log=log),
        ):
            # Warm-up (imports, connections, the worker's pool), which also waits for the worker.
            record_events(device, 20)
            if wait_delivered(20, 120) < 20:
                raise RuntimeError("the worker delivered nothing:\n" + worker_log.read_text()[-2000:])
            results = [one_round(device, callback_url, events, skip=20 + i * events) for i in range(rounds)]

    ratio = statistics.median((r["delivered"] / r["real_seconds"]) / (r["sent"] / r["base_seconds"]) for r in results)
    # How much of the gap is the outbox relay's debounce window (the relay task waits for it to close).
    phase_ratio = statistics.median(
        (r["delivered"] / (r["phases"]["last_sent"] - r["phases"]["first_row"])) / (r["sent"] / r["base_seconds"])
        for r in results
    )
    best = results[-1]
    return [
        {
            "benchmark": f"webhook fan-out, {events:,} events",
            "measure": "deliveries/s × loop",
            "value": round(ratio, 2),
            "deliveries_per_s": round(best["delivered"] / best["real_seconds"]),
            "loop_per_s": round(best["sent"] / best["base_seconds"]),
            "after_relay_ratio": round(phase_ratio, 2),
            "delivered": f"{sum(r['delivered'] for r in results)}/{events * rounds}",
            "goal": "≥ 0.5× (median of rounds)",
            "met": ratio >= 0.5 and all(r["delivered"] == events for r in results),
        }
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    # One process per core, as a production worker runs: sending is Python work, so threads of one
    # process share one core.
    parser.add_argument("--pool", default="prefork", choices=["threads", "prefork"])
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2, help="worker processes or threads")
    parser.add_argument("--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL",
                                                         "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    print_rows(run(events=args.events, rounds=args.rounds, pool=args.pool, concurrency=args.concurrency,
                   admin_url=args.admin_url, redis_url=args.redis_url))


def one_round(device, callback_url, events, *, skip):
    """The real path for `events` fresh events, then the baseline posting the same bodies."""
    from apps.models import Delivery
    from apps.services.webhooks import webhook_request

    started = time.perf_counter()
    started_at = time.time()
    record_events(device, events)
    delivered = wait_delivered(skip + events, 600) - skip
    real_seconds = time.perf_counter() - started
    phases = phase_times(started_at, skip=skip)
    rows = Delivery.objects.select_related("application", "event__device__product").order_by("pk")[skip : skip + events]
    bodies = [webhook_request(delivery) for delivery in rows]
    baseline(callback_url, bodies[:20])  # warm-up
    base_seconds = baseline(callback_url, bodies)
    return {
        "delivered": delivered,
        "real_seconds": real_seconds,
        "phases": phases,
        "sent": len(bodies),
        "base_seconds": base_seconds,
    }


if __name__ == "__main__":
    main()
