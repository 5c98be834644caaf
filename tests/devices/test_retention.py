"""Retention (devices.retention): what the daily prune deletes, and what it keeps."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.models import Delivery, DeliveryStatus
from devices.models import DeviceEvent, DeviceEventType, Reading
from devices.retention import data_prune
from devices.tasks import prune_old_data
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def reading(device, days_ago):
    return Reading.objects.create(device=device, recorded_at=NOW - timedelta(days=days_ago), values={"t": 1})


def event(device, days_ago, *, handled=True):
    at = NOW - timedelta(days=days_ago)
    return DeviceEvent.objects.create(
        device=device, type=DeviceEventType.DATA, created_at=at, handled_at=at if handled else None
    )


def left(model):
    return set(model.objects.values_list("pk", flat=True))


def test_readings_past_the_retention_period_go(device):
    old = reading(device, 31)
    kept = reading(device, 29)

    assert data_prune(now=NOW)["readings"] == 1

    assert left(Reading) == {kept.pk}
    assert old.pk not in left(Reading)


def test_the_reading_retention_is_a_setting(device, settings):
    settings.READING_RETENTION_DAYS = 7
    reading(device, 8)
    kept = reading(device, 6)

    data_prune(now=NOW)

    assert left(Reading) == {kept.pk}


def test_handled_events_past_14_days_go(device):
    event(device, 15)
    kept = event(device, 13)

    assert data_prune(now=NOW)["events"] == 1

    assert left(DeviceEvent) == {kept.pk}


def test_events_not_yet_handled_stay_however_old(device):
    unhandled = event(device, 30, handled=False)

    data_prune(now=NOW)

    assert left(DeviceEvent) == {unhandled.pk}


def test_an_event_a_delivery_still_refers_to_stays(device):
    referred = event(device, 30)
    delivery = Delivery.objects.create(
        application=ApplicationFactory(),
        event=referred,
        event_type=referred.type,
        status=DeliveryStatus.PENDING,
        next_attempt_at=NOW,
    )

    data_prune(now=NOW)
    assert left(DeviceEvent) == {referred.pk}
    assert Delivery.objects.filter(pk=delivery.pk).exists()  # never deleted through a cascade

    delivery.delete()  # the apps app's own retention
    data_prune(now=NOW)
    assert left(DeviceEvent) == set()


def test_rows_go_in_batches(device):
    for _ in range(5):
        reading(device, 40)
        event(device, 40)

    assert data_prune(now=NOW, batch_size=2) == {"readings": 5, "events": 5}

    assert not Reading.objects.exists() and not DeviceEvent.objects.exists()


def test_a_run_out_of_time_leaves_the_rest_for_the_next_day(device):
    reading(device, 40)

    assert data_prune(now=NOW, max_seconds=0) == {"readings": 0, "events": 0}

    assert Reading.objects.count() == 1


def test_the_daily_task_prunes(device):
    reading(device, 400)

    assert prune_old_data() == {"readings": 1, "events": 0}
