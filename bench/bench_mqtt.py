"""MQTT ingest and command push, against the bare HTTP view in the same run.

    .venv/bin/python bench/bench_mqtt.py [--messages 20000] [--devices 2000] [--bridges 2]

Mosquitto runs the portal's generated configuration; `--bridges` bridge processes (`manage.py
mqtt_bridge`) share the subscription; PostgreSQL with Redis as the cache (rate limits on, high
enough not to bind). Measures, in this order:
1. the bare constant view under wrk (the same gunicorn baseline as the HTTP benchmarks);
2. command push latency: `command_send`, the outbox relay as the worker runs it, the publish, until
   a subscriber on the bridge listener has the message (the relay task's one-second debounce in
   production is not included: it is the worker's scheduling, not the push);
3. ingest: simulated devices publish check-ins (QoS 1) as fast as the broker takes them, through
   the bridge listener on behalf of many serials (the TLS handshakes of real devices are the
   broker's cost, not the portal's); each check-in carries its publish time, so the Reading's
   `recorded_at` gives publish → stored for every message.
Goals (issue #20): stored check-ins per second ≥ 1.0× the bare view's requests per second, p99
publish → stored < 1 s, command push p50 < 100 ms.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PYTHON, ROOT, Gunicorn, bench_env, create_database, free_port, manage, print_rows, wrk  # noqa: E402

DATABASE = "bench_mqtt"
PASSWORD = "bench-bridge-password"

SEED = r"""
import os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from devices.models import Device, DeviceStatus, Product

count = int(sys.argv[1])
now = timezone.now()
product = Product.objects.create(name="Bench", slug="bench", checkin_interval=60, commands=["reboot"])
owner = get_user_model().objects.create(username="bench", email="bench@example.com")
Device.objects.bulk_create(
    Device(serial=f"MQTT-{i:08d}", product=product, factory_key_digest="-", owner=owner, certificate_serial="bench",
           token_used_at=now, status=DeviceStatus.ONLINE, last_seen_at=now, values={"temperature": 21.0},
           stale_check_at=now + timedelta(seconds=product.offline_after))
    for i in range(count)
)
"""

PUBLISH = r"""
import json, sys, threading, time
import paho.mqtt.client as mqtt

port, password, devices, messages, connections = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
rate, phase = float(sys.argv[6]), sys.argv[7]  # rate 0: as fast as the broker takes them
done = threading.Semaphore(0)
clients = []
for n in range(connections):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-device-{n}", protocol=mqtt.MQTTv5)
    client.username_pw_set("portal-bridge", password)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.on_publish = lambda *args: done.release()
    client.connect("127.0.0.1", int(port))
    client.loop_start()
    clients.append(client)
time.sleep(0.5)
started = time.time()
for i in range(messages):
    if rate and (wait := started + i / rate - time.time()) > 0:
        time.sleep(wait)
    body = json.dumps({"id": f"{phase}-{i}", "values": {"temperature": 21.5, "sent": time.time(), "phase": phase}})
    clients[i % connections].publish(f"devices/MQTT-{i % devices:08d}/checkin", body, qos=1)
for _ in range(messages):
    done.acquire()
print(json.dumps({"started": started, "acknowledged": time.time()}))
for client in clients:
    client.disconnect()
    client.loop_stop()
"""

PUSH = r"""
import json, os, queue, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
import paho.mqtt.client as mqtt
from django.conf import settings
from devices import outbox
from devices.command_queue import command_send
from devices.models import Device

count = int(sys.argv[1])
arrived = queue.Queue()
listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-command-listener", protocol=mqtt.MQTTv5)
listener.username_pw_set(settings.MQTT_BRIDGE_USERNAME, settings.MQTT_BRIDGE_PASSWORD)
listener.on_message = lambda c, u, m: arrived.put(time.perf_counter())
listener.connect(settings.MQTT_HOST, settings.MQTT_PORT)
listener.loop_start()
listener.subscribe("devices/+/commands", qos=1)
time.sleep(0.5)
devices = list(Device.objects.order_by("serial")[:count])
latencies = []
for n, device in enumerate(devices):
    started = time.perf_counter()
    command_send(device=device, name="reboot")
    outbox.relay_all()
    latencies.append((arrived.get(timeout=10) - started) * 1000)
print(json.dumps({"latencies_ms": latencies[1:] or latencies}))  # the first one opens the publisher's connection
"""


def _percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _readings(database_url, phase):
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT (\"values\"->>'sent')::float8, extract(epoch FROM recorded_at)::float8 FROM devices_reading"
            " WHERE \"values\"->>'phase' = %s",
            [phase],
        ).fetchall()


def _publish_and_wait(env, database_url, *, devices, messages, connections, rate, phase):
    """Publishes `messages` check-ins (at `rate` a second, 0: flat out) and waits until they are all
    stored, or none more for 15 s (a lost message would show as a shortfall); returns the publish
    start and the (sent, recorded) time of each stored one."""
    published = json.loads(
        subprocess.run(
            [PYTHON, "-c", PUBLISH, env["MQTT_PORT"], PASSWORD, str(devices), str(messages), str(connections),
             str(rate), phase],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600,
        ).stdout.strip().splitlines()[-1]
    )
    last_growth, count = time.time(), -1
    while len(rows := _readings(database_url, phase)) < messages and time.time() - last_growth < 15:
        if len(rows) > count:
            last_growth, count = time.time(), len(rows)
        time.sleep(0.5)
    return published, rows


def measure(*, messages, devices, bridges, connections, seconds, commands, admin_url, redis_url):
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise RuntimeError("needs Mosquitto: apt-get install mosquitto")
    database_url = create_database(admin_url, DATABASE)
    with tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(
            database_url,
            REDIS_URL=redis_url,
            PORTAL_VAR_DIR=var_dir,
            DEVICE_RATE_LIMIT_PER_DEVICE="1000000",
            CELERY_BROKER_URL="memory://",
            MQTT_DIR=str(Path(var_dir) / "mqtt"),
            MQTT_BRIDGE_PASSWORD=PASSWORD,
            MQTT_PORT=str(free_port()),
            MQTT_TLS_PORT=str(free_port()),
        )
        manage(env, "migrate", "-v0")
        subprocess.run([PYTHON, "-c", SEED, str(devices)], cwd=ROOT, env=env, check=True)
        user = os.environ.get("USER") or "root"
        written = subprocess.run(
            [PYTHON, "manage.py", "mqtt_broker_config", "--broker-user", user],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout
        conf = next(line for line in written.splitlines() if line.endswith("mosquitto.conf"))
        processes = [subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            with Gunicorn(env) as server:
                wrk(server, "/bench/constant", seconds=1)  # warm-up
                bare = wrk(server, "/bench/constant", seconds=seconds)
            for n in range(bridges):
                processes.append(
                    subprocess.Popen(
                        [PYTHON, "manage.py", "mqtt_bridge", "--client-id", f"bench-bridge-{n}", "--no-watch"],
                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                    )
                )
            time.sleep(2)  # the bridges connected and subscribed
            pushed = json.loads(
                subprocess.run(
                    [PYTHON, "-c", PUSH, str(commands)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
                ).stdout.strip().splitlines()[-1]
            )
            kwargs = {"devices": devices, "connections": connections}
            published, flood = _publish_and_wait(env, database_url, messages=messages, rate=0, phase="flood", **kwargs)
            span = max(recorded for _sent, recorded in flood) - published["started"]
            stored_per_s = len(flood) / span
            # Latency at a steady rate the bridges keep up with (70 % of what they just stored):
            # flat out, every message waits behind the backlog, and the tail says only that.
            _published, steady = _publish_and_wait(
                env, database_url, messages=max(messages // 4, 1), rate=0.7 * stored_per_s, phase="steady", **kwargs
            )
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=15)
    latencies = [recorded - sent for sent, recorded in steady]
    return {
        "bare_rps": bare["rps"],
        "stored": len(flood),
        "lost": messages - len(flood),
        "stored_per_s": round(stored_per_s, 1),
        "steady_rate": round(0.7 * stored_per_s, 1),
        "p50_s": round(_percentile(latencies, 0.5), 3),
        "p99_s": round(_percentile(latencies, 0.99), 3),
        "publish_acknowledged_per_s": round(messages / (published["acknowledged"] - published["started"]), 1),
        "push_p50_ms": round(_percentile(pushed["latencies_ms"], 0.5), 1),
        "push_p99_ms": round(_percentile(pushed["latencies_ms"], 0.99), 1),
    }


def run(*, messages=20000, devices=2000, bridges=2, connections=4, seconds=10, commands=50, admin_url, redis_url):
    """Rows for bench/run.py."""
    r = measure(
        messages=messages, devices=devices, bridges=bridges, connections=connections, seconds=seconds,
        commands=commands, admin_url=admin_url, redis_url=redis_url,
    )
    ratio = round(r["stored_per_s"] / r["bare_rps"], 3)
    return [
        {"benchmark": "bare view (MQTT run)", "measure": "req/s", "value": r["bare_rps"]},
        {
            "benchmark": f"MQTT check-ins stored ({bridges} bridges)",
            "measure": "per s × bare",
            "value": ratio,
            "goal": "≥ 1.0×",
            "met": ratio >= 1.0 and r["lost"] == 0,
            "per_s": r["stored_per_s"],
            "stored": r["stored"],
            "lost": r["lost"],
            "broker_acks_per_s": r["publish_acknowledged_per_s"],
        },
        {
            "benchmark": "MQTT publish → stored, at 70 % of that rate",
            "measure": "p99 s",
            "value": r["p99_s"],
            "goal": "< 1 s",
            "met": r["p99_s"] < 1.0,
            "p50_s": r["p50_s"],
            "per_s": r["steady_rate"],
        },
        {
            "benchmark": "MQTT command push (send → at the device)",
            "measure": "p50 ms",
            "value": r["push_p50_ms"],
            "goal": "< 100 ms",
            "met": r["push_p50_ms"] < 100,
            "p99_ms": r["push_p99_ms"],
        },
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--bridges", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument(
        "--admin-url", default=os.getenv("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.getenv("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    print_rows(
        run(
            messages=args.messages, devices=args.devices, bridges=args.bridges, connections=args.connections,
            seconds=args.seconds, commands=args.commands, admin_url=args.admin_url, redis_url=args.redis_url,
        )
    )


if __name__ == "__main__":
    main()
