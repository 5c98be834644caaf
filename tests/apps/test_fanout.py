"""Fan-out: each relayed event becomes one Delivery row per application that hears the device and has a
callback; idempotent, a few queries a batch, sends queued after commit."""

import pytest
from django.utils import timezone

from apps.models import Delivery, DeliveryStatus
from apps.services import fanout
from devices.models import DeviceEvent
from devices.outbox import event_record, relay_pending

from ..factories import ApplicationFactory, DeviceFactory
from .conftest import hook_url, record_and_relay

pytestmark = pytest.mark.django_db


def test_fan_out_writes_one_delivery_per_hearing_application_with_a_callback(owner, receiver, private_targets):
    device = DeviceFactory(owner=owner)
    with_callback = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    without_callback = ApplicationFactory(owner=owner)
    paused = ApplicationFactory(owner=owner, callback_url=hook_url(receiver), paused_at=timezone.now())
    unlinked = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    for application in (with_callback, without_callback, paused):
        application.links.create(device=device)
    record_and_relay(device, n=3)
    assert set(Delivery.objects.values_list("application_id", flat=True)) == {with_callback.pk, paused.pk}
    assert with_callback.deliveries.count() == 3
    # A paused application's are held: pending, with no attempt planned until it is resumed.
    assert list(paused.deliveries.values_list("status", "next_attempt_at")) == [(DeliveryStatus.PENDING, None)] * 3
    assert not unlinked.deliveries.exists()


def test_fan_out_is_idempotent(hooked_app):
    event_record(device=hooked_app.device, type="device.online")
    events = list(DeviceEvent.objects.select_related("device"))
    fanout.deliveries_fan_out(events)
    fanout.deliveries_fan_out(events)
    assert Delivery.objects.count() == 1


def test_fan_out_is_a_few_queries_for_a_batch(hooked_app, django_assert_num_queries):
    for _ in range(50):
        event_record(device=hooked_app.device, type="device.data")
    events = list(DeviceEvent.objects.select_related("device"))
    # the links of the devices, current and ended (one UNION); one INSERT for the batch
    # (ignore_conflicts); the fresh rows' ids
    with django_assert_num_queries(3):
        fanout.deliveries_fan_out(events)
    assert Delivery.objects.count() == 50


def test_fan_out_queues_the_sends_after_commit(hooked_app, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(fanout, "_deliveries_publish", lambda ids, lease, **options: queued.append(ids))
    event_record(device=hooked_app.device, type="device.online")
    with django_capture_on_commit_callbacks(execute=True):
        relay_pending()
    assert queued == [[Delivery.objects.get().pk]]


def test_a_broker_outage_does_not_fail_the_fan_out(hooked_app, monkeypatch, django_capture_on_commit_callbacks, caplog):
    from kombu.exceptions import OperationalError

    from apps import tasks

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.deliveries_send, "apply_async", down)
    event_record(device=hooked_app.device, type="device.online")
    with django_capture_on_commit_callbacks(execute=True):
        assert relay_pending() == 1
    assert Delivery.objects.get().status == DeliveryStatus.PENDING
    assert "delivery.publish_failed" in caplog.text
