"""The stale sweep (devices.stale), on a frozen clock."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.urls import reverse

from devices import sql, stale
from devices.models import LOOK_AT_ONCE, Device, DeviceEvent, DeviceEventType, DeviceStatus
from devices.sql import stale_check_next
from devices.stale import devices_mark_stale
from devices.tasks import mark_stale_devices
from tests.factories import DeviceFactory, ProductFactory

from .protocol_support import checkin, provision_token

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def slow_product():
    return ProductFactory(slug="slow", offline_after=600)


@pytest.fixture
def fast_product():
    return ProductFactory(slug="fast", offline_after=60)


def online(product, seconds_ago, **kwargs):
    return DeviceFactory(
        product=product, status=DeviceStatus.ONLINE, last_seen_at=START - timedelta(seconds=seconds_ago), **kwargs
    )


def statuses(*devices):
    return [Device.objects.get(pk=d.pk).status for d in devices]


def offline_events():
    return DeviceEvent.objects.filter(type=DeviceEventType.OFFLINE)


def test_each_product_has_its_own_threshold(clock, slow_product, fast_product):
    slow_quiet = online(slow_product, 601)
    slow_recent = online(slow_product, 599)
    fast_quiet = online(fast_product, 61)
    fast_recent = online(fast_product, 59)

    assert devices_mark_stale() == 2

    assert statuses(slow_quiet, slow_recent, fast_quiet, fast_recent) == ["offline", "online", "offline", "online"]


def test_only_online_devices_are_marked(clock, slow_product):
    never_seen = DeviceFactory(product=slow_product)
    already_offline = DeviceFactory(
        product=slow_product, status=DeviceStatus.OFFLINE, last_seen_at=START - timedelta(days=1)
    )

    assert devices_mark_stale() == 0

    assert statuses(never_seen, already_offline) == ["never_seen", "offline"]
    assert not offline_events().exists()


def test_one_offline_event_per_device_with_when_it_was_last_seen(clock, slow_product):
    quiet = [online(slow_product, 700 + i) for i in range(3)]

    devices_mark_stale()

    events = {e.device_id: e for e in offline_events()}
    assert set(events) == {d.pk for d in quiet}
    event = events[quiet[0].pk]
    assert event.created_at == START
    assert event.data == {"last_seen_at": (START - timedelta(seconds=700)).isoformat(), "previous_status": "online"}


def test_a_second_sweep_marks_nothing_again(clock, slow_product):
    online(slow_product, 700)
    devices_mark_stale()

    assert devices_mark_stale() == 0
    assert offline_events().count() == 1


def test_a_device_goes_offline_then_online_again(clock, client, owner, slow_product):
    device = DeviceFactory(product=slow_product, owner=owner)
    token = provision_token(client, device)
    assert checkin(client, token).status_code == 200

    clock.shift(601)
    assert devices_mark_stale() == 1
    clock.shift(30)
    assert checkin(client, token).status_code == 200

    device.refresh_from_db()
    assert device.status == DeviceStatus.ONLINE
    kinds = list(
        DeviceEvent.objects.filter(device=device)
        .exclude(type=DeviceEventType.DATA)
        .order_by("created_at")
        .values_list("type", "data")
    )
    assert kinds == [
        ("device.online", {"previous_status": "never_seen"}),
        ("device.offline", {"last_seen_at": START.isoformat(), "previous_status": "online"}),
        ("device.online", {"previous_status": "offline"}),
    ]


def test_check_ins_move_the_next_look_only_once_half_the_threshold_has_passed(clock, client, owner, slow_product):
    # Most check-ins must change no indexed column (PostgreSQL then updates the row in place).
    device = DeviceFactory(product=slow_product, owner=owner)
    token = provision_token(client, device)

    def next_look():
        device.refresh_from_db()
        return device.stale_check_at

    checkin(client, token)
    assert next_look() == START + timedelta(seconds=600)
    clock.shift(299)
    checkin(client, token)
    assert next_look() == START + timedelta(seconds=600)
    clock.shift(2)
    checkin(client, token)
    assert next_look() == START + timedelta(seconds=301 + 600)


def test_a_due_device_that_checked_in_meanwhile_is_looked_at_again_later(clock, owner, slow_product, requires_postgres):
    recent = online(slow_product, 100, owner=owner, stale_check_at=START - timedelta(seconds=1))

    assert devices_mark_stale() == 0

    recent.refresh_from_db()
    assert recent.status == DeviceStatus.ONLINE
    assert recent.stale_check_at == START + timedelta(seconds=500)  # when it would turn stale
    assert not offline_events().exists()


def test_a_device_not_due_yet_is_left_alone(clock, slow_product, requires_postgres):
    # PostgreSQL's sweep reads only due devices (SQLite's, for small fleets, reads them all).
    online(slow_product, 700, stale_check_at=START + timedelta(seconds=1))

    assert devices_mark_stale() == 0


def test_a_lower_threshold_applies_at_the_next_sweep(clock, client, staff, slow_product):
    device = online(slow_product, 120, stale_check_at=START + timedelta(seconds=480))
    client.force_login(staff)
    url = reverse("admin:devices_product_change", args=[slow_product.pk])
    form = {"name": slow_product.name, "slug": slow_product.slug, "description": "", "offline_after": 60,
            "checkin_interval": 30, "poll_cap": 300, "certificate_days": 365, "commands": "[]",
            "fields-TOTAL_FORMS": "0", "fields-INITIAL_FORMS": "0"}  # the product fields' inline, none declared
    assert client.post(url, form).status_code == 302

    assert devices_mark_stale() == 1
    assert statuses(device) == ["offline"]


def test_a_run_that_finds_the_lock_taken_does_nothing(clock, slow_product):
    quiet = online(slow_product, 700)
    cache.add(stale.SWEEP_LOCK_KEY, "another run", timeout=60)

    assert devices_mark_stale() == 0

    assert statuses(quiet) == ["online"]
    assert stale.last_sweep_at() is None
    assert cache.get(stale.SWEEP_LOCK_KEY) == "another run"  # not released by the run that lost


def test_the_lock_is_released_after_a_run(clock, slow_product):
    devices_mark_stale()

    assert cache.get(stale.SWEEP_LOCK_KEY) is None


def test_the_last_sweep_time_is_kept_for_the_health_check(clock):
    assert stale.last_sweep_at() is None

    devices_mark_stale()

    assert stale.last_sweep_at() == START


def test_large_sweeps_go_in_batches(clock, slow_product, monkeypatch):
    monkeypatch.setattr(stale, "SWEEP_BATCH", 2)
    quiet = [online(slow_product, 700) for _ in range(5)]

    assert devices_mark_stale() == 5

    assert set(statuses(*quiet)) == {"offline"}
    assert offline_events().count() == 5


def test_an_empty_sweep_is_two_queries(clock, slow_product, django_assert_num_queries):
    online(slow_product, 30)
    with django_assert_num_queries(2):
        # 1. the stale devices: UPDATE … RETURNING on PostgreSQL (a SELECT on SQLite), none found
        # 2. the notifier: emails held back earlier, or devices back from offline (none)
        devices_mark_stale()


def test_marking_with_nothing_due_is_one_query_on_either_path(clock, slow_product, django_assert_num_queries):
    online(slow_product, 30, stale_check_at=START + timedelta(seconds=570))
    with django_assert_num_queries(1):
        # UPDATE … RETURNING on PostgreSQL (a SELECT on SQLite): nothing marked, no event written.
        assert stale.mark_path()(START, limit=stale.SWEEP_BATCH) == ([], 0)


def test_marking_records_every_event_in_one_insert(clock, slow_product, django_assert_num_queries):
    quiet = [online(slow_product, 700, name=f"Quiet {n}") for n in range(3)]
    # PostgreSQL: the UPDATE … RETURNING, then one INSERT of the events (the names came back with
    # the rows). SQLite: the SELECT, the UPDATE, the INSERT.
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 3):
        went_offline, looked_at = stale.mark_path()(START, limit=stale.SWEEP_BATCH)
    assert looked_at == len(went_offline) == 3
    events = offline_events().order_by("device_name")
    assert [e.device_name for e in events] == ["Quiet 0", "Quiet 1", "Quiet 2"]
    assert [e.data for e in events] == [
        stale.offline_event_data(last_seen_at=START - timedelta(seconds=700)) for _ in quiet
    ]
    assert events[0].data == {"last_seen_at": "2026-03-02T08:48:20+00:00", "previous_status": "online"}


def test_the_sweep_can_use_the_partial_index(requires_postgres, slow_product):
    with connection.cursor() as cursor:
        # Tiny test tables are cheaper to scan; forbid that to see whether the index qualifies.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql.sweep_sql(), {"now": START, "limit": stale.SWEEP_BATCH})
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "device_online_stale_check" in plan


def test_the_beat_task_runs_the_sweep(clock, slow_product):
    online(slow_product, 700)

    assert mark_stale_devices() == 1


# stale_check_next: when the sweep looks at a device that checks in now (the portable check-in
# calls it; the PostgreSQL statement computes the same, compared in test_paths_agree).
HALF = timedelta(seconds=300)  # of slow_product's 600


@pytest.mark.parametrize(
    ("old_status", "stale_check_at", "expected"),
    [
        # Online, at least half the threshold left: kept, so the check-in touches no index.
        (DeviceStatus.ONLINE, START + timedelta(seconds=600), START + timedelta(seconds=600)),
        (DeviceStatus.ONLINE, START + HALF + timedelta(microseconds=1), START + HALF + timedelta(microseconds=1)),
        (DeviceStatus.ONLINE, START + HALF, START + HALF),  # exactly half: still kept
        # Less than half left: a full threshold from now.
        (DeviceStatus.ONLINE, START + HALF - timedelta(microseconds=1), START + timedelta(seconds=600)),
        (DeviceStatus.ONLINE, START, START + timedelta(seconds=600)),
        (DeviceStatus.ONLINE, LOOK_AT_ONCE, START + timedelta(seconds=600)),
        # Not online (never seen, offline): always a full threshold from now, whatever was stored.
        (DeviceStatus.NEVER_SEEN, LOOK_AT_ONCE, START + timedelta(seconds=600)),
        (DeviceStatus.NEVER_SEEN, START + timedelta(days=1), START + timedelta(seconds=600)),
        (DeviceStatus.OFFLINE, START + timedelta(seconds=599), START + timedelta(seconds=600)),
        (DeviceStatus.OFFLINE, START - timedelta(hours=1), START + timedelta(seconds=600)),
    ],
)
def test_stale_check_next(old_status, stale_check_at, expected):
    next_look = stale_check_next(old_status=old_status, stale_check_at=stale_check_at, now=START, offline_after=600)
    assert next_look == expected


def test_stale_check_next_halves_an_odd_threshold_exactly():
    kept = START + timedelta(seconds=30.5)
    assert stale_check_next(old_status=DeviceStatus.ONLINE, stale_check_at=kept, now=START, offline_after=61) == kept
    moved = stale_check_next(
        old_status=DeviceStatus.ONLINE, stale_check_at=kept - timedelta(microseconds=1), now=START, offline_after=61
    )
    assert moved == START + timedelta(seconds=61)
