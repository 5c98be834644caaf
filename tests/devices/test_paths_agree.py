"""The check-in and the stale sweep each have two implementations: one PostgreSQL statement, and a
portable ORM path that the embedded default (SQLite) runs. Here both run on PostgreSQL on the same
inputs and the same clock, and what they wrote and answered is compared field by field (ids aside),
so the two cannot drift apart unnoticed."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from devices import stale
from devices.command_queue import COMMANDS_PER_ANSWER, commands_open
from devices.models import Command, CommandStatus, Device, DeviceEvent, DeviceStatus, Reading
from devices.protocol import services
from devices.services import token_digest
from tests.factories import DeviceFactory, ProductFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db]

START = datetime(2026, 3, 2, 9, 0, 0, 250_000, tzinfo=UTC)  # fractional seconds on purpose
DEVICE_FIELDS = (
    "status", "last_seen_at", "last_ip", "values", "token_used_at", "stale_check_at", "name", "owner_id",
    "product_id",
)  # fmt: skip


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def product(db):
    return ProductFactory(slug="agree", offline_after=600, checkin_interval=60)


def _twin(product, owner, token):
    device = DeviceFactory(product=product, owner=owner, name="Kitchen", token_digest=token_digest(token))
    # An open command, a fulfilled one and an expired one: the answer lists only the first.
    # Sent by an application, so its command.updated event names it (compared in _row).
    Command.objects.create(
        device=device, name="reboot", params={"delay": 5}, expires_at=START + timedelta(days=1), sent_by_app="app-7"
    )
    Command.objects.create(device=device, name="old", status="succeeded", expires_at=START + timedelta(days=1))
    Command.objects.create(device=device, name="late", expires_at=START - timedelta(seconds=1))
    return device


def _row(device):
    values = Device.objects.filter(pk=device.pk).values(*DEVICE_FIELDS).get()
    readings = list(Reading.objects.filter(device=device).order_by("recorded_at").values_list("recorded_at", "values"))
    rows = DeviceEvent.objects.filter(device=device).values_list(
        "type", "data", "device_name", "created_at", "handled_at"
    )
    events = sorted(((t, _ids_out(data), *rest) for t, data, *rest in rows), key=lambda event: (event[3], event[0]))
    commands = sorted(Command.objects.filter(device=device).values_list("name", "status"))
    return {"device": values, "readings": readings, "events": events, "commands": commands}


def _ids_out(data):
    return {k: ("<id>" if k.endswith("_id") else v) for k, v in data.items()}


def _without_ids(answer):
    return {**answer, "commands": [{k: v for k, v in c.items() if k != "id"} for c in answer["commands"]]}


def _checkin_both(monkeypatch, values, ip="203.0.113.7"):
    answers = {}
    for token, path in (
        ("token-statement", services._checkin_postgresql),
        ("token-portable", services._checkin_portable),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(services, "checkin_path", lambda path=path: path)
            answers[path] = _without_ids(services.device_checkin(token=token, values=values, ip=ip))
    return answers[services._checkin_postgresql], answers[services._checkin_portable]


def test_both_check_in_paths_write_and_answer_the_same(requires_postgres, clock, monkeypatch, owner, product):
    assert services.checkin_path() is services._checkin_postgresql
    statement = _twin(product, owner, "token-statement")
    portable = _twin(product, owner, "token-portable")

    steps = [
        ("first check-in: never seen, goes online", 0, {"temperature": 21.5, "door": "open", "ok": True, "none": None}),
        (
            "again soon: stays online, next look kept",
            30,
            {"temperature": 21.75, "label": "Küche ✓", "count": 12345678901234},
        ),
        ("past half the threshold: next look moves", 301, {"temperature": 22}),
    ]
    for label, seconds, values in steps:
        clock.shift(seconds)
        answer_statement, answer_portable = _checkin_both(monkeypatch, values)
        assert answer_statement == answer_portable, label
        assert answer_statement["commands"] == [
            {"name": "reboot", "params": {"delay": 5}, "expires_at": (START + timedelta(days=1)).isoformat()}
        ]
        assert _row(statement) == _row(portable), label

    # Both go offline (the sweep, as in production), then check in again.
    clock.shift(601)
    assert stale.devices_mark_stale() == 2
    assert statuses(statement, portable) == [DeviceStatus.OFFLINE, DeviceStatus.OFFLINE]
    clock.shift(5)
    answer_statement, answer_portable = _checkin_both(monkeypatch, {"temperature": 19}, ip="2001:db8::1")
    assert answer_statement == answer_portable
    assert _row(statement) == _row(portable)

    after = _row(statement)
    assert after["device"]["status"] == DeviceStatus.ONLINE
    assert after["device"]["last_ip"] == "2001:db8::1"
    assert after["device"]["token_used_at"] == START  # the first check-in's
    assert [e[0] for e in after["events"]].count("device.online") == 2  # never_seen → online, offline → online
    assert len(after["readings"]) == 4


def test_both_paths_reject_an_unknown_token_alike(requires_postgres, monkeypatch, product):
    for path in (services._checkin_postgresql, services._checkin_portable):
        with pytest.raises(services.Unauthenticated):
            path(digest=token_digest("nobody's"), values={}, ip=None, now=timezone.now())
    assert not Reading.objects.exists()
    assert not DeviceEvent.objects.exists()


def _many_commands(product, owner, token):
    """More open commands than an answer holds, inserted out of order, among closed ones."""
    device = DeviceFactory(product=product, owner=owner, name="Busy", token_digest=token_digest(token))
    later = START + timedelta(days=1)
    for age in (*range(0, COMMANDS_PER_ANSWER + 5, 2), *range(1, COMMANDS_PER_ANSWER + 5, 2)):
        command = Command.objects.create(device=device, name=f"open-{age:02}", params={"age": age}, expires_at=later)
        # auto_now_add ignores a given time; distinct times make the order the answer's to keep.
        Command.objects.filter(pk=command.pk).update(created_at=START - timedelta(seconds=age))
    for name, status, expires_at in (
        ("oldest but done", CommandStatus.SUCCEEDED, later),
        ("oldest but failed", CommandStatus.FAILED, later),
        ("oldest but voided", CommandStatus.EXPIRED, later),
        ("oldest but late", CommandStatus.PENDING, START),  # expires now: no longer open
    ):
        command = Command.objects.create(device=device, name=name, status=status, expires_at=expires_at)
        Command.objects.filter(pk=command.pk).update(created_at=START - timedelta(hours=1))
    return device


def test_both_check_in_paths_hand_over_the_same_open_commands(requires_postgres, clock, monkeypatch, owner, product):
    statement = _many_commands(product, owner, "token-statement")
    portable = _many_commands(product, owner, "token-portable")
    oldest_first = [f"open-{age:02}" for age in range(COMMANDS_PER_ANSWER + 4, 4, -1)]
    assert [c.name for c in commands_open(device_id=statement.pk, now=START)] == oldest_first

    for label in ("first answer: pending ones", "again: now delivered, still open"):
        answer_statement, answer_portable = _checkin_both(monkeypatch, {"n": 1})
        assert answer_statement == answer_portable, label
        assert [c["name"] for c in answer_statement["commands"]] == oldest_first, label
        assert _row(statement) == _row(portable), label
    delivered = Command.objects.filter(device=statement, status=CommandStatus.DELIVERED)
    assert sorted(delivered.values_list("name", flat=True)) == sorted(oldest_first)


def statuses(*devices):
    return [Device.objects.get(pk=d.pk).status for d in devices]


def _fleet(product, fast, owner):
    """Devices as check-ins leave them (stale_check_at a threshold after the last check-in, or
    earlier for one that checked in after the sweep last looked), keyed by name."""

    def online(name, seconds_ago, *, of=product, owner=owner, stale_check_at=None):
        last_seen = START - timedelta(seconds=seconds_ago)
        DeviceFactory(
            product=of, owner=owner, name=name, status=DeviceStatus.ONLINE, last_seen_at=last_seen,
            stale_check_at=stale_check_at or last_seen + timedelta(seconds=of.offline_after),
        )  # fmt: skip

    online("quiet", 601)
    online("quiet, fractional seconds", 600.5)
    online("quiet, whole seconds", 600.25)  # last seen at 08:50:00 sharp: no fraction at all
    online("quiet, no owner", 900, owner=None)
    online("exactly at the threshold", 600)
    online("recent", 100)
    online("checked in since the last look", 100, stale_check_at=START - timedelta(seconds=1))
    online("fast product, quiet", 61, of=fast)
    online("fast product, recent", 59, of=fast)
    DeviceFactory(product=product, owner=owner, name="offline", status=DeviceStatus.OFFLINE,
                  last_seen_at=START - timedelta(hours=1))  # fmt: skip
    DeviceFactory(product=product, owner=owner, name="never seen")


def _sweep_with(mark, product, fast, owner):
    _fleet(product, fast, owner)
    went_offline, looked_at = mark(START, limit=stale.SWEEP_BATCH)
    names = dict(Device.objects.values_list("pk", "name"))
    result = {
        "went offline": sorted(
            (names[device_id], owner_id, last_seen) for device_id, owner_id, last_seen in went_offline
        ),
        "devices": {d["name"]: d for d in Device.objects.values("name", "status", "last_seen_at", "owner_id")},
        "events": sorted(DeviceEvent.objects.values_list("device_name", "type", "data", "created_at")),
    }
    Device.objects.all().delete()  # and their events: the other path starts from the same fleet
    return result


def test_both_sweep_paths_mark_the_same_devices_and_record_the_same_events(requires_postgres, clock, owner, product):
    assert stale.mark_path() is stale._mark_postgresql
    fast = ProductFactory(slug="agree-fast", offline_after=60)

    statement = _sweep_with(stale._mark_postgresql, product, fast, owner)
    portable = _sweep_with(stale._mark_sqlite, product, fast, owner)

    # stale_check_at is the statement's own bookkeeping (the portable path reads last_seen_at);
    # everything an owner or a consumer can see must agree.
    assert statement == portable
    data = {name: data for name, _, data, _ in statement["events"]}
    assert data["quiet, whole seconds"]["last_seen_at"] == "2026-03-02T08:50:00+00:00"
    assert data["quiet"]["last_seen_at"] == "2026-03-02T08:49:59.250000+00:00"
    assert [name for name, _, _ in statement["went offline"]] == [
        "fast product, quiet", "quiet", "quiet, fractional seconds", "quiet, no owner", "quiet, whole seconds",
    ]  # fmt: skip
    assert {name for name, d in statement["devices"].items() if d["status"] == DeviceStatus.OFFLINE} == {
        "fast product, quiet", "quiet", "quiet, fractional seconds", "quiet, no owner", "quiet, whole seconds",
        "offline",
    }  # fmt: skip


def test_both_paths_check_in_by_certificate_alike(requires_postgres, clock, owner, product):
    # MQTT (issue #20): the device named by its serial while it has a certificate; last_ip kept.
    devices = {}
    paths = (("CERT-STATEMENT", services._checkin_postgresql), ("CERT-PORTABLE", services._checkin_portable))
    for serial, path in paths:
        devices[path] = device = _twin(product, owner, f"token-{serial}")
        Device.objects.filter(pk=device.pk).update(serial=serial, certificate_serial="ab12", last_ip="192.0.2.1")
        checked_in = path(serial=serial, values={"t": 1.5}, ip=None, now=START)
        assert checked_in[1:4] == (DeviceStatus.NEVER_SEEN, True, product.checkin_interval)
    statement, portable = devices[services._checkin_postgresql], devices[services._checkin_portable]
    assert _row(statement) == _row(portable)
    assert _row(statement)["device"]["last_ip"] == "192.0.2.1"


def test_both_paths_refuse_a_device_without_a_certificate_alike(requires_postgres, owner, product):
    DeviceFactory(product=product, owner=owner, serial="NO-CERT", certificate_serial="")
    for path in (services._checkin_postgresql, services._checkin_portable):
        with pytest.raises(services.Unauthenticated):
            path(serial="NO-CERT", values={}, ip=None, now=timezone.now())
    assert not Reading.objects.exists()


def test_the_batch_statement_writes_and_answers_as_the_single_one(requires_postgres, clock, owner, product):
    # MQTT's batches (devices.sql.checkin_batch_sql) against one check-in by certificate.
    single = _twin(product, owner, "token-single")
    batched = _twin(product, owner, "token-batched")
    other = _twin(product, owner, "token-other")
    for device, serial in ((single, "BATCH-A"), (batched, "BATCH-B"), (other, "BATCH-C")):
        Device.objects.filter(pk=device.pk).update(serial=serial, certificate_serial="ab12")
    for seconds, values in ((0, {"t": 1}), (30, {"t": 2}), (301, {"t": 3})):
        clock.shift(seconds)
        alone = _without_ids(services.device_checkin_by_certificate(serial="BATCH-A", values=values))
        together = services.devices_checkin_by_certificate(
            checkins=[("BATCH-C", {"t": 0}), ("BATCH-B", values), ("NOBODY", values), ("BATCH-B", values)]
        )
        assert isinstance(together[2], services.Unauthenticated)
        assert _without_ids(together[1]) == alone == _without_ids(together[3])  # a repeat: its own statement
        assert _row(single)["device"] == _row(batched)["device"]
    assert len(_row(batched)["readings"]) == 2 * len(_row(single)["readings"])
