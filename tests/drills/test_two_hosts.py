"""The two-hosts drill: nothing in the portal assumes a single process (DESIGN.md, "Running").

Two web servers (gunicorn on two ports), two Celery workers (two names), beat, and a second beat
started by mistake halfway, all on one PostgreSQL and one Redis, as two hosts behind a load balancer
run them. Threads check devices in and race claims for the same devices at both web servers; halfway
one web server and one worker are killed (SIGKILL, as when their host dies) and the drive goes on at
the survivors. Once the queue has drained:

- every check-in answered 200 is stored as a Reading, none twice;
- every DeviceEvent reached each application that hears it: exactly one successful Delivery per
  (event, application), and the receiver got each of them by webhook-id. Delivery is at least once
  (DESIGN.md, "Delivery guarantees"): a worker killed between a POST and recording its success makes
  the portal send it again with the same webhook-id, so a repeat is allowed only for a delivery the
  portal attempted more than once, and no more often than it attempted it;
- no contested device has two claim winners: one `claimed` OwnershipEvent each, its owner the winner;
- the beat work is not doubled: both beats sent the stale sweep, and each silent device got exactly
  one `device.offline` event.

`make drills` runs it with its figures printed (`-s`). Its length is the portal's own recovery bound:
what the killed worker held waits for its lease (`fanout.ENQUEUE_LEASE`, two minutes) and then for
the next beat run of `deliveries_send_due` (every 30 s, from either beat).
"""

import itertools
import logging
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.db import connection
from django.utils import timezone
from pytest_httpserver import HTTPServer
from redis import Redis
from werkzeug import Response

from apps.models import Application, AppLink, Connection, Delivery, DeliveryStatus
from apps.selectors import event_audiences
from bench.harness import CeleryBeat, CeleryWorker, Gunicorn, bench_env, manage, wait_for
from claiming.models import OwnershipEvent, OwnershipEventKind
from devices.models import Device, DeviceEvent, DeviceEventType, DeviceStatus, Reading
from devices.services import token_digest

from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.services

# Enough devices that none comes near its own rate limit (60 a minute) however fast the machine.
CHECKIN_DEVICES = 600
CHECKIN_THREADS = 6
CONTESTED = 30
RACERS = 4  # per contested device, spread over the web servers that are up
SILENT = 20  # online devices that stopped checking in an hour ago: the stale sweep's work
PHASE_SECONDS = 5  # driving before the kill, and again after it
DRAIN_DEADLINE = 300  # bounds a hang only; the lease and the beat interval set the real time

SWEEP_SENT = re.compile(rb"Sending due task mark-stale-devices")
SWEEP_RAN = re.compile(rb"Task devices\.tasks\.mark_stale_devices\[[^\]]+\] succeeded in [\d.]+s: (\d+)")


def _own_redis_db(url):
    """The suite's Redis server, another of its 16 databases: the drill's queue (where a killed
    worker's unacknowledged messages stay for the visibility timeout), its rate-limit counters and
    its sweep lock never meet the rest of the suite's."""
    parts = urlsplit(url)
    db = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(db + 8) % 16}"))


@pytest.fixture
def drill_env(transactional_db, requires_postgres, redis_url, settings, tmp_path):
    """Production settings (bench_env: DEBUG off, its own secrets) on the test database and the
    drill's Redis; digests and encrypted secrets made in this process are the ones they check."""
    secrets = bench_env("")
    settings.SECRET_KEY = secrets["SECRET_KEY"]
    settings.SECRET_PEPPER = secrets["SECRET_PEPPER"]
    settings.FERNET_KEYS = [secrets["FERNET_KEYS"]]
    drill_redis = _own_redis_db(redis_url)
    Redis.from_url(drill_redis).flushdb()
    db = connection.settings_dict
    env = bench_env(
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=drill_redis,
        CELERY_BROKER_URL=drill_redis,
        PORTAL_VAR_DIR=str(tmp_path / "var"),
        # Each device and each racer comes from its own address, as through the load balancer.
        TRUSTED_PROXY_IP_HEADER="HTTP_X_FORWARDED_FOR",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="True",
    )
    manage(env, "collectstatic", "--noinput", "-v0")
    yield env
    Redis.from_url(drill_redis).flushdb()


class Receiver:
    """An integrator's HTTP server: counts every request by (application, webhook-id)."""

    def __init__(self):
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.received = Counter()
        self._lock = threading.Lock()

    def url(self, application_name):
        return f"http://127.0.0.1:{self.server.port}/hook/{application_name}"

    def _handle(self, request):
        key = (request.path.rsplit("/", 1)[1], request.headers["webhook-id"])
        with self._lock:
            self.received[key] += 1
        return Response("ok")

    def __enter__(self):
        # Thousands of requests: werkzeug's line for each would drown the drill's figures.
        self._werkzeug_level = logging.getLogger("werkzeug").level
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server.start()
        self.server.expect_request(re.compile("^/hook/"), method="POST").respond_with_handler(self._handle)
        return self

    def __exit__(self, *exc):
        self.server.stop()
        logging.getLogger("werkzeug").setLevel(self._werkzeug_level)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@dataclass
class Fleet:
    checkin: list  # (token, address) of owned devices that check in
    contested: list  # (device, raw claim code, racers)
    silent: list  # devices the sweep must mark offline, once
    claim_app: Application
    links: dict = field(default_factory=dict)  # device id -> application ids linked before the drill


@pytest.fixture
def fleet(drill_env, receiver):
    """Two owners with three applications, devices linked to none, one or two of them; unclaimed
    devices with claim codes and the users who will race for them through an integrator's app."""
    owners = UserFactory.create_batch(2)
    integrator = UserFactory()
    apps = {
        name: ApplicationFactory(
            owner=owner, app_id=f"app_drill_{name}", callback_url=receiver.url(f"app_drill_{name}")
        )
        for name, owner in (("a", owners[0]), ("b", owners[0]), ("c", owners[1]), ("claims", integrator))
    }
    live = ProductFactory(slug="drill-live", name="Drill live", offline_after=3600)
    quiet = ProductFactory(slug="drill-quiet", name="Drill quiet", offline_after=60)
    links = []
    checkin = []
    for i in range(CHECKIN_DEVICES):
        owner = owners[i % 2]
        device = DeviceFactory(product=live, owner=owner, token_digest=token_digest(f"drill-token-{i}"))
        heard_by = {0: [], 1: [apps["a"]], 2: [apps["a"], apps["b"]], 3: [apps["a"], apps["b"]]}[i % 4]
        links += [AppLink(application=app, device=device) for app in (heard_by if owner == owners[0] else [apps["c"]])]
        checkin.append((f"drill-token-{i}", f"10.3.{i // 250}.{i % 250 + 1}"))
    an_hour_ago = timezone.now() - timedelta(hours=1)
    silent = [
        DeviceFactory(
            product=quiet, owner=owners[0], status=DeviceStatus.ONLINE, last_seen_at=an_hour_ago,
            stale_check_at=an_hour_ago + timedelta(seconds=quiet.offline_after),
        )
        for _ in range(SILENT)
    ]
    links += [AppLink(application=app, device=device) for device in silent for app in (apps["a"], apps["b"])]
    AppLink.objects.bulk_create(links)
    contested = []
    for _ in range(CONTESTED):
        code = ClaimCodeFactory()
        racers = UserFactory.create_batch(RACERS)
        Connection.objects.bulk_create([Connection(application=apps["claims"], user=user) for user in racers])
        contested.append((DeviceFactory(product=live, claim_code=code), code.raw_code, racers))
    by_device = {}
    for link in links:
        by_device.setdefault(link.device_id, set()).add(link.application_id)
    return Fleet(checkin=checkin, contested=contested, silent=silent, claim_app=apps["claims"], links=by_device)


@dataclass
class Hosts:
    webs: list
    workers: list
    beats: list
    celery_env: dict
    tmp_path: object
    stack: ExitStack

    def beat_start(self):
        beat = CeleryBeat(
            self.celery_env, self.tmp_path / f"beat-{len(self.beats) + 1}.log",
            schedule_path=self.tmp_path / f"beat-{len(self.beats) + 1}-schedule",
        )
        beat.start()
        self.stack.callback(beat.stop)
        self.beats.append(beat)
        return beat


@pytest.fixture
def hosts(drill_env, fleet, tmp_path):
    """Two web servers, two workers and one beat: what two hosts run, sharing PostgreSQL and Redis."""
    celery_env = {**drill_env, "LOG_LEVEL": "INFO"}  # the worker's task lines are the drill's evidence
    with ExitStack() as stack:
        webs = [
            stack.enter_context(
                Gunicorn(drill_env, workers=2, app="portal.wsgi:application", log_path=tmp_path / f"web-{n}.log")
            )
            for n in (1, 2)
        ]
        workers = []
        for n in (1, 2):
            worker = CeleryWorker(celery_env, tmp_path / f"worker-{n}.log", name=f"drill-{n}")
            worker.start()
            stack.callback(worker.stop)
            workers.append(worker)
        # Each gunicorn worker loads the portal on its first request: done here (requests at once,
        # so that every worker takes some), not in the drive.
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda web: _session().get(f"{web.url}/healthz", timeout=30), webs * 8))
        # MQTT bridges: once the bridge exists (DESIGN.md, "MQTT beside HTTP"), two start here, the
        # drive also checks devices in through the broker, and one bridge is killed with the others.
        running = Hosts(webs=webs, workers=workers, beats=[], celery_env=celery_env, tmp_path=tmp_path, stack=stack)
        running.beat_start()
        yield running


class Balancer:
    """Round robin over the web servers that are up, as a load balancer in front of two hosts."""

    def __init__(self, servers):
        self.up = list(servers)
        self._turn = itertools.count()

    def pick(self):
        up = self.up
        return up[next(self._turn) % len(up)]

    def take_out(self, server):
        self.up = [s for s in self.up if s is not server]


def _session():
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between the drill and 127.0.0.1
    return session


def _post(session, server, path, **kwargs):
    """The status code, or the name of the error when no answer came (the server was killed)."""
    try:
        return session.post(f"{server.url}{path}", timeout=30, **kwargs).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


def _check_in_loop(stop, balancer, devices, seq, log):
    session = _session()
    for token, address in itertools.cycle(devices):
        if stop.is_set():
            return
        n, server = next(seq), balancer.pick()
        # A sensor's usual values (so the bytes per reading are a real one's), and a number to find it by.
        values = {"seq": n, "temperature": 20 + n % 50 / 10, "humidity": 30 + n % 40, "battery": 100 - n % 60}
        outcome = _post(
            session, server, "/device/v1/checkin", json={"values": values},
            headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": address},
        )
        log.append((n, server.port, outcome))


def _claim_rounds(balancer, fleet, spread_seconds, log):
    """One round per contested device, spread over the drive: its racers released together, each
    sent to the next web server that is up."""
    app = fleet.claim_app
    started = time.monotonic()
    for index, (device, code, racers) in enumerate(fleet.contested):
        time.sleep(max(0.0, started + index * spread_seconds / len(fleet.contested) - time.monotonic()))
        barrier = threading.Barrier(len(racers))

        def race(user, server, number, device=device, code=code, barrier=barrier):
            session = _session()
            barrier.wait()
            outcome = _post(
                session, server, "/api/v1/claims", json={"user_email": user.email, "code": code},
                auth=(app.app_id, app.raw_secret),
                headers={"X-Forwarded-For": f"10.4.{number // 250}.{number % 250 + 1}"},
            )
            log.append((device.pk, user.pk, server.port, outcome))

        threads = [
            threading.Thread(target=race, args=(user, balancer.pick(), index * RACERS + n))
            for n, user in enumerate(racers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _sweep_runs(workers):
    """What each stale sweep run by the workers returned (devices marked offline)."""
    return [int(n) for worker in workers for n in SWEEP_RAN.findall(worker.log_path.read_bytes())]


def _bytes_per_row(model):
    """Table, TOAST and indexes over rows: what a row costs on disk, free space included."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
        size = cursor.fetchone()[0]
    return round(size / max(model.objects.count(), 1))


def test_two_hosts_lose_nothing_and_double_nothing(hosts, fleet, receiver):
    balancer = Balancer(hosts.webs)
    stop = threading.Event()
    seq = itertools.count()
    checkins, claims = [], []
    drivers = [
        threading.Thread(target=_check_in_loop, args=(stop, balancer, fleet.checkin[k::CHECKIN_THREADS], seq, checkins))
        for k in range(CHECKIN_THREADS)
    ]
    drivers.append(threading.Thread(target=_claim_rounds, args=(balancer, fleet, 2 * PHASE_SECONDS - 2, claims)))
    drive_started = time.monotonic()
    for driver in drivers:
        driver.start()

    time.sleep(PHASE_SECONDS)
    dead_web, dead_worker = hosts.webs[0], hosts.workers[0]
    # Out of the balancer first, as its health check would take it out: what fails is only what
    # was in flight when the host died (one request per driver at most).
    balancer.take_out(dead_web)
    dead_web.kill()
    dead_worker.kill()
    killed_at = time.monotonic()
    time.sleep(PHASE_SECONDS / 2)
    hosts.beat_start()  # by mistake: a second host configured like the first
    time.sleep(PHASE_SECONDS / 2)
    stop.set()
    for driver in drivers:
        driver.join()
    drive_seconds = time.monotonic() - drive_started

    def beats_swept():
        sent = [len(SWEEP_SENT.findall(beat.log_path.read_bytes())) for beat in hosts.beats]
        return min(sent) >= 1 and len(_sweep_runs(hosts.workers)) >= sum(sent)

    def drained():
        return (
            not DeviceEvent.objects.filter(handled_at__isnull=True).exists()
            and not Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists()
        )

    assert wait_for(beats_swept, seconds=DRAIN_DEADLINE, step=1), "both beats did not get their sweeps run"
    assert wait_for(drained, seconds=DRAIN_DEADLINE, step=1), (
        f"not drained: {DeviceEvent.objects.filter(handled_at__isnull=True).count()} events unhandled, "
        f"{Counter(Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).values_list('status', flat=True))}"
    )
    drained_at = time.monotonic()
    drain_seconds = drained_at - drive_started - drive_seconds

    # Every check-in answered 200 is stored, none twice; nothing failed but what was in flight at the dead server.
    stored = list(Reading.objects.values_list("values__seq", flat=True))
    answered = {n for n, _, outcome in checkins if outcome == 200}
    unanswered = [(port, outcome) for _, port, outcome in checkins if outcome != 200]
    assert len(stored) == len(set(stored))
    assert answered <= set(stored)
    assert set(stored) <= {n for n, _, _ in checkins}
    assert all(port == dead_web.port and isinstance(outcome, str) for port, outcome in unanswered), unanswered
    assert len(unanswered) <= CHECKIN_THREADS

    # Every event reached each application that hears it: one successful Delivery, at least one receipt.
    events = list(DeviceEvent.objects.all())
    heard = event_audiences(events, applications=Application.objects.exclude(callback_url=""))
    expected = {(event_id, app) for event_id, apps in heard.items() for app in apps}
    data_events = [event for event in events if event.type == DeviceEventType.DATA]
    assert len(data_events) == len(stored)
    # Read apart from the selector: a check-in of a linked device is heard by each of its links.
    assert {(e.pk, app) for e in data_events for app in fleet.links.get(e.device_id, ())} <= expected
    deliveries = list(
        Delivery.objects.filter(event__isnull=False).values_list("event_id", "application_id", "attempts")
    )
    assert len(deliveries) == len({(event_id, app) for event_id, app, _ in deliveries}) == len(expected)
    assert {(event_id, app) for event_id, app, _ in deliveries} == expected
    app_ids = dict(Application.objects.values_list("pk", "app_id"))
    attempts = {(app_ids[app], str(event_id)): n for event_id, app, n in deliveries}
    assert set(receiver.received) == set(attempts)
    repeated = {key: count for key, count in receiver.received.items() if count > 1}
    assert all(count <= attempts[key] for key, count in repeated.items()), repeated

    # No contested device has two winners; the winner owns it; losers heard 409.
    for device, _, _ in fleet.contested:
        won = list(OwnershipEvent.objects.filter(device=device, kind=OwnershipEventKind.CLAIMED))
        assert len(won) == 1, device.serial
        assert Device.objects.get(pk=device.pk).owner_id == won[0].owner_id == won[0].actor_id
        answers = [(user, port, outcome) for pk, user, port, outcome in claims if pk == device.pk]
        assert len(answers) == RACERS
        created = [user for user, _, outcome in answers if outcome == 201]
        assert created in ([], [won[0].owner_id])
        assert all(
            outcome in (201, 409) or (port == dead_web.port and isinstance(outcome, str))
            for _, port, outcome in answers
        ), answers
    claimed_at = Counter(port for _, _, port, outcome in claims if outcome in (201, 409))
    assert set(claimed_at) == {web.port for web in hosts.webs}, "claims were not answered at both web servers"

    # The beat work is not doubled: both beats sent the sweep; each silent device went offline once.
    sent = [len(SWEEP_SENT.findall(beat.log_path.read_bytes())) for beat in hosts.beats]
    runs = _sweep_runs(hosts.workers)
    assert min(sent) >= 1 and len(runs) >= 2
    assert sum(runs) == SILENT
    offline = Counter(e.device_id for e in events if e.type == DeviceEventType.OFFLINE)
    assert offline == Counter({device.pk: 1 for device in fleet.silent})

    per_server = Counter(port for _, port, outcome in checkins if outcome == 200)
    print(
        f"\ntwo-hosts drill: 2 web servers (2 workers each), 2 Celery workers, {len(hosts.beats)} beats, one "
        f"PostgreSQL, one Redis; web server :{dead_web.port} and a worker killed at {PHASE_SECONDS} s"
        f"\n  check-ins: {len(checkins)} sent in {drive_seconds:.1f} s, {len(answered)} answered 200 "
        f"({len(answered) / drive_seconds:.0f}/s; per server {dict(per_server)}), {len(unanswered)} lost in flight "
        f"at the killed server, {len(stored)} stored"
        f"\n  claims: {CONTESTED} devices x {RACERS} racers: {CONTESTED} winners, "
        f"{sum(outcome == 409 for *_, outcome in claims)} told 409, "
        f"{sum(isinstance(outcome, str) for *_, outcome in claims)} lost in flight; answered at {dict(claimed_at)}"
        f"\n  deliveries: {len(deliveries)} (one per event and application), {sum(receiver.received.values())} "
        f"received, {sum(count - 1 for count in repeated.values())} repeats of {len(repeated)} after the kill; "
        f"drained {drain_seconds:.0f} s after the drive, {drained_at - killed_at:.0f} s after the kill (what the "
        f"killed worker held waited for its lease, then for beat)"
        f"\n  beat: the sweep sent {sent} times by the beats, run {len(runs)} times, marking {runs}"
        f"\n  bytes per row (with indexes): reading {_bytes_per_row(Reading)}, event {_bytes_per_row(DeviceEvent)}, "
        f"delivery {_bytes_per_row(Delivery)}"
    )
